"""tfvae's contender in the side-by-side benchmark (DESIGN.md's FMNIST-bin protocol).

Trains one tfvae VAE in this process and prints one result line (see common.report):
training images/s (median epoch after the first), peak RSS, test -ELBO (whole test set),
test NLL by importance sampling (k samples, first N test images) and evaluation images/s;
with --compare-eval also the same NLL by the straightforward loop over samples.

    python benchmarks/protocol.py --posterior full_covariance --epochs 10 --jit
    python benchmarks/protocol.py --config apps/vae_iaf.toml --set posterior.num_steps=4

With --config, the model (with the app's KL warm-up, --set kl_warmup=...), the optimizer
(learning-rate schedule, clipping), XLA and steps_per_execution come from a train-app preset
and `--set` overrides, built by the train app's own code; the data stay the protocol's (all
60k training images, no validation split).
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import common  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--posterior", default="full_covariance")
    p.add_argument("--dataset", default="fashion_mnist")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--limit", type=int, default=None, help="train on the first N images")
    p.add_argument("--jit", action="store_true", help="XLA-compile the train step")
    p.add_argument("--steps-per-execution", type=int, default=16,
                   help="as the train app's default")
    p.add_argument("--plain", action="store_true",
                   help="model.compile(optimizer=Adam(1e-3)) and nothing else (the defaults: "
                        "jit_compile='auto', one step per call); --jit and "
                        "--steps-per-execution are ignored")
    p.add_argument("--nll-samples", type=int, default=1000)
    p.add_argument("--nll-examples", type=int, default=1000)
    p.add_argument("--compare-eval", action="store_true",
                   help="also time the straightforward loop over samples on this model")
    p.add_argument("--compare-eval-examples", type=int, default=100,
                   help="test images the loop runs on (it takes ~1 s per image at k=1000); "
                        "the chunked estimator is compared on the same images")
    p.add_argument("--offdiag-scale", type=float, default=None,
                   help="full-covariance head: multiplier of the off-diagonal outputs")
    p.add_argument("--config", metavar="TOML",
                   help="build the model and optimizer from this train-app preset; "
                        "--posterior, --jit, --steps-per-execution are then ignored")
    p.add_argument("--set", metavar="PATH=VALUE", action="append", default=[],
                   help="with --config: a train-app --set override (repeatable)")
    p.add_argument("--label", help="the contender's name in the table")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    common.TURNS.begin()  # under a lockstep coordinator: nothing heavy before this turn

    import numpy as np
    import tfvae
    from tfvae._tf import tf, tfk
    tfk.utils.set_random_seed(args.seed)
    train = tfvae.data.load(args.dataset, "train", 128, binarize="static", seed=args.seed,
                            limit=args.limit)
    test = tfvae.data.load(args.dataset, "test", 1000, binarize="static")
    n_train = min(args.limit or 10**9, len(tfvae.data.load_arrays(args.dataset, "train")[0]))
    posterior = {"name": args.posterior}
    if args.offdiag_scale is not None:
        posterior["offdiag_scale"] = args.offdiag_scale
    if args.config:  # built and compiled as the train app does
        model = _from_preset(args, n_train)
    else:
        model = tfvae.VAE(latent_dim=32, posterior=posterior, likelihood="bernoulli",
                          hidden_units=(512, 256), seed=args.seed)
        if args.plain:  # the public contract as a user writes it: the library's defaults
            model.compile(optimizer=tfk.optimizers.Adam(1e-3))
        else:
            model.compile(optimizer=tfk.optimizers.Adam(1e-3), jit_compile=args.jit,
                          steps_per_execution=args.steps_per_execution)
    timer = common.epoch_timer(tfk.callbacks.Callback)
    history = model.fit(train, epochs=args.epochs, verbose=0, callbacks=[timer]).history

    result = model.evaluate(test, verbose=0, return_dict=True)
    x_eval = np.concatenate(list(test.as_numpy_iterator()))[:args.nll_examples]
    # Warm-up on one batch: tracing is a one-off cost, not throughput.
    tfvae.evaluation.log_likelihood(model, x_eval[:100], num_samples=args.nll_samples)
    t0 = time.perf_counter()
    log_px = tfvae.evaluation.log_likelihood(model, x_eval, num_samples=args.nll_samples,
                                             seed=args.seed)
    eval_s = time.perf_counter() - t0
    fields = {}
    if args.compare_eval:
        def one_sample_log_w(xb):
            q = model.encode(xb)

            def draw():
                z = q.sample()
                return model.decode(z).log_prob(xb) + model.prior.log_prob(z) - q.log_prob(z)
            return draw
        x_loop = x_eval[:args.compare_eval_examples]
        t0 = time.perf_counter()
        loop = common.straightforward_iwae(tf, one_sample_log_w, x_loop, args.nll_samples)
        loop_s = time.perf_counter() - t0
        fields = {"loop_eval_images_per_s": len(x_loop) / loop_s,
                  "loop_examples": len(x_loop), "loop_test_nll": float(-loop.mean()),
                  "chunked_test_nll_same_examples": float(-tf.reduce_mean(log_px[:len(x_loop)]))}
    name = "full-cov" if args.posterior == "full_covariance" else args.posterior
    label = " plain compile (defaults)" if args.plain else (" +XLA" if args.jit else "")
    common.report(contender=args.label or f"tfvae {name}" + label,
                  train_images_per_s=common.steady_images_per_s(timer.times, n_train),
                  epoch_s=[round(t, 2) for t in timer.times],
                  train_neg_elbo_last_epoch=-history["elbo"][-1],
                  test_neg_elbo=-result["elbo"], test_kl=result["kl"],
                  test_nll=float(-tf.reduce_mean(log_px)),
                  eval_images_per_s=len(x_eval) / eval_s,
                  images_per_step=n_train / timer.steps if timer.steps else None, **fields)
    return 0


def _from_preset(args, n_train):
    """The model of `--config` and `--set`, compiled with the train app's optimizer."""
    import math
    from tfvae.apps import _build, _train_controls
    from tfvae.apps import train as train_app
    argv = ["--config", args.config, "--epochs", str(args.epochs), "--seed", str(args.seed)]
    for item in args.set:
        argv += ["--set", item]
    cfg, recipe, _ = train_app.parse(argv)
    if cfg.batch_size != 128 or cfg.binarize not in (None, "static"):
        raise SystemExit(f"{args.config}: the protocol is batch 128, binarize static")
    steps = math.ceil(n_train / cfg.batch_size) * cfg.epochs
    recipe = _build.with_kl_warmup(cfg, recipe, steps)  # the app's KL warm-up, as it builds
    model = recipe.build((28, 28, 1), cfg.seed, dataset_size=n_train)
    model.compile(optimizer=_train_controls.optimizer(cfg, steps), jit_compile=cfg.jit,
                  steps_per_execution=cfg.steps_per_execution)
    return model


if __name__ == "__main__":
    sys.exit(main())

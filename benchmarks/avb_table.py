"""AVB, AVB + adaptive contrast (diagonal and full r) and the full-covariance VAE, one table.

    nice -n 10 .venv/bin/python benchmarks/avb_table.py            # 5 models x 10 epochs
    .venv/bin/python benchmarks/avb_table.py --epochs 1 --limit 2048 --nll-examples 100
    .venv/bin/python benchmarks/avb_table.py --models avb_ac_basis,vae \
        --set model.gaussian_part=analytic

Each model is trained with its preset in apps/ (avb, avb_ac, avb_ac_full,
avb_ac_basis, vae; AVB's with the `--set` overrides given), built from
its recipe (without the train app's KL warm-up: the VAE row trains the plain ELBO), on the
DESIGN.md benchmark protocol (Fashion-MNIST 60k/10k, pixels thresholded at 0.5, Bernoulli
decoder, latent 32, MLP 784-512-256, Adam 1e-3, batch 128, 10 epochs), one model after the
other in this process. Measured:

```none
NLL       -log p(x) by importance sampling, k = 1000, first 1000 test images, nats
          (VAE: q(z|x) as proposal; AVB: the fitted Gaussian of the implicit posterior's proposal)
img/s     training images/s, the median epoch after the first
ELBO      test ELBO (VAE: exact in expectation; AVB: the critic's estimate, no bound)
KL        test KL (VAE: analytic; AVB: the critic's estimate)
acc q/p   the discriminator's accuracy on q(z|x) samples / on p(z) (AC: N(0, I)) samples,
          last training epoch (mean over its steps) and on the test split (fresh samples)
sweep     AVB's NLL at proposal_scale 1.0, 1.2, 1.5, 2.0 on the first `--sweep-examples` images
```
Results are appended to `--out`/results.jsonl as each model finishes and the table is
printed at the end. The machine may be shared: images/s are indicative only.
"""

import argparse
import os
import sys
import time

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
sys.path.insert(0, ROOT)

from benchmarks import common  # noqa: E402
import tfvae  # noqa: E402
from tfvae._tf import tfk  # noqa: E402
from tfvae.apps import train as train_app  # noqa: E402

MODELS = ("avb", "avb_ac", "avb_ac_full", "avb_ac_basis", "vae")
SWEEP_SCALES = (1.0, 1.2, 1.5, 2.0)


def build(name, epochs, sets=(), seed=0):
    """The model of apps/<name>.toml with `--set` overrides and `seed`, built by the train
    app's own code."""
    cfg, recipe, _ = train_app.parse(
        ["--config", os.path.join(ROOT, "apps", f"{name}.toml"), "--epochs", str(epochs),
         "--seed", str(seed)] + [arg for item in sets for arg in ("--set", item)])
    tfk.utils.set_random_seed(cfg.seed)
    model = recipe.build((28, 28, 1), cfg.seed, dataset_size=60000)
    return cfg, model, recipe.to_dict()


def nll(model, x, k, seed=0):
    """-mean log p(x) (nats) and its standard error over the examples."""
    log_px = tfvae.evaluation.log_likelihood(model, x, num_samples=k, seed=seed).numpy()
    return float(-log_px.mean()), float(log_px.std() / np.sqrt(len(log_px)))


def measure(name, args, train_ds, test_ds, x_nll):
    sets = args.set if name.startswith("avb") else []
    cfg, model, model_kwargs = build(name, args.epochs, sets, args.seed)
    model.compile(optimizer=tfk.optimizers.Adam(cfg.learning_rate), jit_compile=cfg.jit)
    timer = common.epoch_timer(tfk.callbacks.Callback)
    history = model.fit(train_ds, epochs=cfg.epochs, verbose=2, callbacks=[timer]).history
    n_train = sum(int(b.shape[0]) for b in train_ds)
    test = {k: float(v) for k, v in model.evaluate(test_ds, return_dict=True,
                                                   verbose=0).items()}
    t0 = time.perf_counter()
    value, stderr = nll(model, x_nll, args.nll_samples)
    row = {"model": " ".join([name, *sets]), "model_kwargs": model_kwargs, "jit": cfg.jit,
           "epochs": cfg.epochs, "seed": args.seed,
           "nll": value, "nll_stderr": stderr, "nll_k": args.nll_samples,
           "nll_examples": len(x_nll), "nll_seconds": time.perf_counter() - t0,
           "train_images_per_s": n_train / float(np.median(timer.times[1:] or timer.times)),
           "epoch_seconds": [round(t, 1) for t in timer.times],
           "test": test, "last_epoch": {k: float(v[-1]) for k, v in history.items()}}
    if hasattr(model.posterior, "proposal_scale") and args.sweep_examples:
        row["sweep"] = {}
        for scale in SWEEP_SCALES:
            model.posterior.proposal_scale = scale
            model.__dict__.pop("_tfvae_eval_functions", None)  # the scale is traced in
            row["sweep"][str(scale)] = nll(model, x_nll[:args.sweep_examples],
                                           args.nll_samples)[0]
    return row


def table(rows):
    lines = [f"| model | test NLL (k={rows[0]['nll_k']}) | train img/s | test ELBO | test KL | "
             "disc. acc q / p (last epoch) | disc. acc q / p (test) | NLL at scale "
             + " / ".join(map(str, SWEEP_SCALES)) + " |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        t, last = r["test"], r["last_epoch"]
        acc = lambda d: (f"{d['avb_critic_accuracy_positive']:.3f} / "  # noqa: E731
                         f"{d['avb_critic_accuracy_negative']:.3f}"
                         if "avb_critic_accuracy_positive" in d else "-")
        sweep = " / ".join(f"{v:.2f}" for v in r["sweep"].values()) if "sweep" in r else "-"
        estimated = "~" if "avb_critic_accuracy_positive" in t else ""
        lines.append(f"| {r['model']} | {r['nll']:.2f} ± {r['nll_stderr']:.2f} | "
                     f"{r['train_images_per_s']:.0f} | {estimated}{t['elbo']:.2f} | "
                     f"{estimated}{t['kl']:.2f} | {acc(last)} | {acc(t)} | {sweep} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--limit", type=int, default=None, help="train on the first N images")
    p.add_argument("--nll-samples", type=int, default=1000)
    p.add_argument("--nll-examples", type=int, default=1000)
    p.add_argument("--sweep-examples", type=int, default=200)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a train-app --set override for every AVB model of the run (the VAE "
                   "row keeps its preset)")
    p.add_argument("--seed", type=int, default=0,
                   help="every model's seed (initialization, noise) and the data order's")
    p.add_argument("--out", default=os.path.join(ROOT, "runs", "avb_table"))
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    train_ds = tfvae.data.load("fashion_mnist", "train", 128, binarize="static",
                               seed=args.seed, limit=args.limit)
    test_ds = tfvae.data.load("fashion_mnist", "test", 500, binarize="static")
    x_nll = np.concatenate([b.numpy() for b in test_ds])[:args.nll_examples]
    rows = []
    for name in args.models.split(","):
        row = measure(name, args, train_ds, test_ds, x_nll)
        rows.append(row)
        common.append_row(args.out, row)
    common.write_table(args.out, table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""One contender of the FMNIST-bin benchmark protocol (DESIGN.md), in its own process.

Prints one JSON line: training images/s (median epoch after the first), peak RSS, test
-ELBO (whole test set) and test NLL (importance sampling, k samples, first N test images).

    python benchmarks/protocol.py --posterior full_covariance --epochs 10 --jit
"""

import argparse
import json
import resource
import sys
import time

import numpy as np


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--posterior", default="full_covariance")
    p.add_argument("--dataset", default="fashion_mnist")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--latent-dim", type=int, default=32)
    p.add_argument("--jit", action="store_true", help="XLA-compile the train step")
    p.add_argument("--nll-samples", type=int, default=1000)
    p.add_argument("--nll-examples", type=int, default=1000)
    p.add_argument("--limit", type=int, default=None, help="train on the first N images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--offdiag-scale", type=float, default=None)
    p.add_argument("--init-scale", type=float, default=None)
    args = p.parse_args(argv)

    import tfvae
    from tfvae._tf import tf, tfk
    tfk.utils.set_random_seed(args.seed)
    train = tfvae.data.load(args.dataset, "train", args.batch_size, binarize="static",
                            seed=args.seed, limit=args.limit)
    test = tfvae.data.load(args.dataset, "test", args.batch_size, binarize="static")
    posterior = {"name": args.posterior}
    if args.offdiag_scale is not None:
        posterior["offdiag_scale"] = args.offdiag_scale
    if args.init_scale is not None:
        posterior["init_scale"] = args.init_scale
    model = tfvae.VAE(latent_dim=args.latent_dim, posterior=posterior, likelihood="bernoulli",
                      hidden_units=(512, 256), seed=args.seed)
    model.compile(optimizer=tfk.optimizers.Adam(1e-3), jit_compile=args.jit)

    times = []

    class Timer(tfk.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.t0)

    n_train = sum(int(b.shape[0]) for b in train)
    model.fit(train, epochs=args.epochs, verbose=0, callbacks=[Timer()])
    steady = times[1:] or times
    result = model.evaluate(test, verbose=0, return_dict=True)
    x_test = np.concatenate([b.numpy() for b in test])[:args.nll_examples]
    t0 = time.perf_counter()
    log_px = tfvae.evaluation.log_likelihood(model, x_test, num_samples=args.nll_samples,
                                             seed=args.seed)
    eval_s = time.perf_counter() - t0
    out = {"contender": f"tfvae {args.posterior}" + (" +XLA" if args.jit else ""),
           "train_images_per_s": n_train / float(np.median(steady)),
           "epoch_s": [round(t, 2) for t in times],
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "test_neg_elbo": -result["elbo"], "test_kl": result["kl"],
           "test_nll": float(-tf.reduce_mean(log_px)),
           "eval_images_per_s": len(x_test) / eval_s}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

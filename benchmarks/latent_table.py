"""pPCA and Gaussian mixtures on grey-level Fashion-MNIST, in nats per test image.

    nice -n 10 .venv/bin/python benchmarks/latent_table.py
    .venv/bin/python benchmarks/latent_table.py --limit 5000 --components 10   # quicker

Data: Fashion-MNIST 60k/10k grey levels, dequantized exactly as `tfvae.apps.latent` does it
(x = (pixel + u)/256, u ~ U(0, 1), seeds 0 and 1 for train and test), so the numbers are
exact log-densities of the dequantized 8-bit data y = pixel + u in [0, 256)^784 under each
fitted model (log p(x) - 784 log 256), and match the app's output. bits/dim = -log p / (784 ln 2).

Models: pPCA with K = 32 by the closed form and by EM (from a random W, until the mean
log-likelihood rises by less than `--em-tol` nats per image); Gaussian mixtures with diagonal
covariances by EM (full covariances cost O(K N D^2) per iteration, ~1e11 flops at K = 10 on
this data: too slow for 2 cores). Times are wall-clock on a possibly shared machine.
"""

import argparse
import json
import os
import sys
import time

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
sys.path.insert(0, ROOT)

from tfvae import data, latent  # noqa: E402
from tfvae.apps.latent import dequantize, per_image  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="fashion_mnist")
    p.add_argument("--limit", type=int, default=None, help="first N training images")
    p.add_argument("--latent-dim", type=int, default=32)
    p.add_argument("--components", type=int, nargs="+", default=[10, 50])
    p.add_argument("--em-tol", type=float, default=1e-3, help="pPCA EM tolerance, nats/image")
    p.add_argument("--gmm-tol", type=float, default=0.1, help="GMM EM tolerance, nats/image")
    p.add_argument("--gmm-max-iter", type=int, default=100)
    p.add_argument("--out", default=None, help="append JSON lines here")
    args = p.parse_args(argv)

    train = data.load_arrays(args.dataset, "train")[0][:args.limit].astype(np.float64)
    test = data.load_arrays(args.dataset, "test")[0].astype(np.float64)
    x_train, x_test = dequantize(train, 0), dequantize(test, 1)
    dim = int(np.prod(train.shape[1:]))
    del train, test
    print(f"{args.dataset}: {len(x_train)} train / {len(x_test)} test images, dequantized "
          f"x = (pixel + u)/256; log p = exact log-density of the dequantized 8-bit data")
    rows = []

    def run(name, make, fit, detail):
        start = time.perf_counter()
        model = fit(make())
        seconds = time.perf_counter() - start
        tr, te = per_image(model, x_train, dim), per_image(model, x_test, dim)
        row = {"model": name, "train_nats": tr[0], "test_nats": te[0], "test_bits_per_dim": te[1],
               "fit_seconds": seconds, **detail(model)}
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.out:
            with open(args.out, "a") as f:
                f.write(json.dumps(row) + "\n")

    k = args.latent_dim
    run(f"pPCA K={k}, closed form", lambda: latent.PPCA(k), lambda m: m.fit(x_train),
        lambda m: {"noise_variance": m.noise_variance})
    run(f"pPCA K={k}, EM", lambda: latent.PPCA(k),
        lambda m: m.fit(x_train, method="em", tol=args.em_tol, max_iter=5000),
        lambda m: {"noise_variance": m.noise_variance,
                   "iterations": len(m.log_likelihood_history) - 1})
    for c in args.components:
        run(f"GMM K={c}, diagonal, EM", lambda: latent.GaussianMixture(c, "diag"),
            lambda m: m.fit(x_train, max_iter=args.gmm_max_iter, tol=args.gmm_tol),
            lambda m: {"iterations": len(m.log_likelihood_history) - 1,
                       "converged": m.converged})

    print("\n| model | train nats/image | test nats/image | test bits/dim | fit time |")
    print("| --- | --- | --- | --- | --- |")
    for r in rows:
        extra = f", {r['iterations']} iterations" if "iterations" in r else ""
        print(f"| {r['model']} | {r['train_nats']:.1f} | {r['test_nats']:.1f} | "
              f"{r['test_bits_per_dim']:.3f} | {r['fit_seconds']:.1f} s{extra} |")


if __name__ == "__main__":
    main()

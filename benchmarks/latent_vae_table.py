"""The linear VAE and Normal-likelihood VAEs on dequantized Fashion-MNIST: log-likelihoods,
ELBO-gradient variance of three estimators, and the inference gaps.

    nice -n 10 .venv/bin/python benchmarks/latent_vae_table.py
    .venv/bin/python benchmarks/latent_vae_table.py --limit 2048 --epochs 1 --examples 20

Data as in benchmarks/latent_table.py (x = (pixel + u)/256, seeds 0 and 1), so nats per
image are log p(x) - 784 log 256: densities of the dequantized 8-bit data.

- linear VAE (K = 32, one learned s2): analytic test ELBO and the exact log p(x) of its own
  linear-Gaussian generative model, beside the pPCA MLE (all three exact, no sampling).
- Normal-likelihood VAEs (MLP 784-512-256, latent 32, per-pixel learned sigma >= 0.01
  starting at `--init-sigma`, diagonal and full-covariance q): test ELBO (estimate, 10
  samples) and log p(x) by importance sampling (`tfvae.evaluation.log_likelihood`,
  k = `--iwae`, first `--nll-examples` test images; an estimate, biased low).
- The ELBO gradient wrt the encoder of the diagonal VAE, on a batch of 64 test images: total
  variance (sum over parameters) of one draw, per estimator (estimates over `--draws`).
- `tfvae.latent.refine_posterior` on the first `--examples` test images of both VAEs.
"""

import argparse
import json
import math
import os
import sys
import time

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
sys.path.insert(0, ROOT)

import tfvae  # noqa: E402
from tfvae import latent  # noqa: E402
from tfvae._tf import tfk  # noqa: E402
from tfvae.apps.latent import dequantize  # noqa: E402

JACOBIAN = 784 * math.log(256)


def train_vae(posterior, x_train, epochs, seed, sigma):
    model = tfvae.VAE(latent_dim=32, posterior=posterior, input_shape=(28, 28, 1),
                      likelihood={"name": "normal", "scale": "per_pixel", "sigma": sigma},
                      hidden_units=(512, 256), seed=seed)
    model.compile(optimizer=tfk.optimizers.Adam(1e-3), jit_compile=True,
                  steps_per_execution=16)
    start = time.perf_counter()
    model.fit(x_train, batch_size=128, epochs=epochs, verbose=0, shuffle=True)
    return model, time.perf_counter() - start


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--linear-epochs", type=int, default=20)
    p.add_argument("--iwae", type=int, default=1000)
    p.add_argument("--nll-examples", type=int, default=1000)
    p.add_argument("--draws", type=int, default=200)
    p.add_argument("--examples", type=int, default=50)
    p.add_argument("--refine-steps", type=int, default=200)
    p.add_argument("--init-sigma", type=float, default=1.0,
                   help="initial per-pixel sigma of the Normal VAEs")
    p.add_argument("--skip-linear", action="store_true", help="no linear VAE")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    tfk.utils.set_random_seed(args.seed)

    train = tfvae.data.load_arrays("fashion_mnist", "train")[0][:args.limit]
    test = tfvae.data.load_arrays("fashion_mnist", "test")[0]
    x_train = dequantize(train.astype(np.float64), 0).astype(np.float32)
    x_test = dequantize(test.astype(np.float64), 1).astype(np.float32)
    print(f"{len(x_train)} train / {len(x_test)} test images; nats per image of the "
          "dequantized 8-bit data (log p(x) - 784 log 256)", flush=True)

    if not args.skip_linear:
        linear_vae_row(args, x_train, x_test)
    models = normal_vaes(args, x_train, x_test)
    estimator_rows(args, models, x_test)
    gap_rows(args, models, x_test)


def linear_vae_row(args, x_train, x_test):
    ppca = latent.PPCA(32).fit(x_train)
    linear = latent.build_linear_vae((28, 28, 1), 32, variance=0.05, seed=args.seed)
    start = time.perf_counter()
    steps = args.linear_epochs * (len(x_train) // 128)
    latent.train_linear_vae(linear, x_train, steps=steps, learning_rate=3e-3, batch_size=128)
    seconds = time.perf_counter() - start
    report = latent.compare_with_ppca(linear, x_test, ppca)
    print(json.dumps({"model": "linear VAE", "train_seconds": seconds, "steps": steps,
                      "test_elbo_nats_exact": report["elbo"] - JACOBIAN,
                      "test_log_px_nats_exact": report["log_px"] - JACOBIAN,
                      "ppca_mle_test_log_px_nats_exact": report["log_px_mle"] - JACOBIAN,
                      "subspace_distance": report["subspace_distance"],
                      "noise_variance": report["noise_variance"],
                      "noise_variance_mle": report["noise_variance_mle"]}), flush=True)


def normal_vaes(args, x_train, x_test):
    models = {}
    for posterior in ("diagonal", "full_covariance"):
        model, seconds = train_vae(posterior, x_train, args.epochs, args.seed, args.init_sigma)
        models[posterior] = model
        xs = x_test[:args.nll_examples]
        elbo = float(np.mean(model.elbo(x_test, num_samples=10, seed=1).numpy()))
        log_px = tfvae.evaluation.log_likelihood(model, xs, num_samples=args.iwae, seed=2)
        print(json.dumps({"model": f"Normal VAE, {posterior} q", "train_seconds": seconds,
                          "epochs": args.epochs, "init_sigma": args.init_sigma,
                          "test_elbo_nats_estimate": elbo - JACOBIAN,
                          "test_log_px_nats_iwae_estimate": float(np.mean(log_px)) - JACOBIAN,
                          "iwae_k": args.iwae, "iwae_examples": len(xs)}), flush=True)
    return models


def estimator_rows(args, models, x_test):
    batch = x_test[:64]
    for estimator in latent.ESTIMATORS:
        start = time.perf_counter()
        stats = latent.gradient_variance(models["diagonal"], batch, estimator,
                                         num_draws=args.draws, seed=3)
        print(json.dumps({"estimator": estimator, "total_variance_estimate":
                          stats.total_variance, "mean_gradient_norm_estimate":
                          float(np.linalg.norm(stats.flat_mean())), "draws": args.draws,
                          "seconds": time.perf_counter() - start}), flush=True)


def gap_rows(args, models, x_test):
    for posterior, model in models.items():
        start = time.perf_counter()
        gaps = latent.refine_posterior(model, x_test[:args.examples], steps=args.refine_steps,
                                       num_samples=8, seed=4)
        summary = {k: v[0] - (JACOBIAN if k in ("amortized_elbo", "refined_elbo", "log_px")
                              else 0.0) for k, v in gaps.summary().items()}
        print(json.dumps({"gaps": posterior, **summary, "examples": args.examples,
                          "kept_initial": gaps.kept_initial,
                          "seconds": time.perf_counter() - start}), flush=True)


if __name__ == "__main__":
    main()

"""Fit probabilistic PCA or a Gaussian mixture to grey-level images, report exact log p(x).

    python -m tfvae.apps.latent --model ppca --dataset fashion_mnist --latent-dim 32 \\
        --method closed_form --out runs/ppca32
    python -m tfvae.apps.latent --model gmm --dataset fashion_mnist --num-components 10 \\
        --covariance diag --out runs/gmm10
    python -m tfvae.apps.latent --model ppca --load runs/ppca32/model.npz --out runs/eval

Data: 8-bit grey levels with uniform dequantization, x = (pixel + u) / 256 with u ~ U(0, 1)
(one seeded draw per split), so both models are continuous densities. The log-likelihoods
printed are of the dequantized 8-bit data y = pixel + u in [0, 256)^D: log p(y) = log p(x) -
D log 256, exact for the fitted model; bits/dim = -log p(y) / (D ln 2). `--dataset` is a
dataset name or a .npy file of grey levels [N, H, W(, C)] in [0, 255] (its last sixth is
the test split).

Writes to --out: model.npz (reloaded and checked before exit), results.json, and PNGs:
components.png + samples.png (pPCA), means.png + samples.png (GMM), loglik.png (EM, online
EM or gradient curve). Exit codes: 0 done, 2 bad input (one line on stderr).
"""

import json
import math
import os
import sys
import time

import numpy as np

from tfvae.apps import _cli

PROG = "tfvae-latent"
METHODS = {"ppca": ("closed_form", "em", "gradient"), "gmm": ("em", "online")}


def build_parser():
    p = _cli.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, choices=sorted(METHODS))
    p.add_argument("--dataset", default="fashion_mnist",
                   help="fashion_mnist, mnist, synthetic, or a .npy file of grey levels")
    p.add_argument("--latent-dim", type=int, default=None, help="pPCA: K latent dimensions")
    p.add_argument("--num-components", type=int, default=None, help="GMM: K components")
    p.add_argument("--method", default=None,
                   help="pPCA: closed_form (default), em, gradient; GMM: em (default), online")
    p.add_argument("--covariance", default="diag", choices=["diag", "full"],
                   help="GMM covariances (default diag: full is O(K D^3) per iteration)")
    p.add_argument("--max-iter", type=int, default=200, help="EM iterations at most")
    p.add_argument("--tol", type=float, default=1e-4,
                   help="EM stops when the mean log p(x) rises less (nats per image)")
    p.add_argument("--steps", type=int, default=1000, help="pPCA gradient: Adam steps")
    p.add_argument("--learning-rate", type=float, default=0.02, help="pPCA gradient: Adam rate")
    p.add_argument("--batch-size", type=int, default=None,
                   help="pPCA gradient / GMM online: examples per step (default: all / 1000)")
    p.add_argument("--limit", type=int, default=None, help="use the first N training images")
    p.add_argument("--test-limit", type=int, default=None, help="use the first N test images")
    p.add_argument("--load", default=None, help="evaluate this saved model.npz instead of fitting")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output folder")
    return p


def _check(args):
    """Checks that need no data, before TensorFlow is imported."""
    method = args.method or METHODS[args.model][0]
    if method not in METHODS[args.model]:
        raise _cli.UsageError(f"--method {method!r} is not one of {list(METHODS[args.model])} "
                              f"for --model {args.model}")
    args.method = method
    size_flag = "--latent-dim" if args.model == "ppca" else "--num-components"
    size = args.latent_dim if args.model == "ppca" else args.num_components
    if args.load is None and size is None:
        raise _cli.UsageError(f"--model {args.model} needs {size_flag}")
    for flag in ("latent_dim", "num_components", "max_iter", "steps", "batch_size", "limit",
                 "test_limit"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise _cli.UsageError(f"--{flag.replace('_', '-')} must be >= 1; got {value}")
    if not (args.tol >= 0 and args.learning_rate > 0):
        raise _cli.UsageError("--tol must be >= 0 and --learning-rate > 0")
    if args.load is not None and not os.path.isfile(args.load):
        raise _cli.UsageError(f"--load {args.load!r} is not a file")
    _cli.check_writable_dir(args.out, "--out")


def load_grey_levels(dataset, split, limit=None):
    """8-bit grey levels [N, H, W, C] as float64, from a dataset name or a .npy file."""
    if dataset.endswith(".npy"):
        images = np.load(dataset, allow_pickle=False)
        if images.ndim == 3:
            images = images[..., None]
        if images.ndim != 4 or not np.issubdtype(images.dtype, np.number):
            raise ValueError(f"{dataset!r} must hold numbers [N, H, W] or [N, H, W, C]; got "
                             f"{images.dtype} {list(images.shape)}.")
        images = images.astype(np.float64)
        if not np.all(np.isfinite(images)):
            raise ValueError(f"{dataset!r} contains NaN or Inf; clean the data first.")
        if images.min() < 0 or images.max() > 255:
            raise ValueError(f"{dataset!r} must hold grey levels in [0, 255]; got values in "
                             f"[{images.min():g}, {images.max():g}].")
        cut = len(images) - max(1, len(images) // 6)
        images = images[:cut] if split == "train" else images[cut:]
    else:
        from tfvae import data  # noqa: PLC0415  (imports TensorFlow)
        images = data.load_arrays(dataset, split)[0].astype(np.float64)
    return images[:limit] if limit else images


def dequantize(images, seed):
    """x = (pixel + u) / 256, u ~ U(0, 1): a continuous version of 8-bit data in [0, 1)."""
    return (np.floor(images) + np.random.default_rng(seed).uniform(size=images.shape)) / 256.0


def fit(args, x):
    from tfvae import latent  # noqa: PLC0415
    if args.model == "ppca":
        model = latent.PPCA(args.latent_dim)
        return model.fit(x, method=args.method, max_iter=args.max_iter, tol=args.tol,
                         steps=args.steps, learning_rate=args.learning_rate,
                         batch_size=args.batch_size, seed=args.seed)
    model = latent.GaussianMixture(args.num_components, args.covariance)
    if args.method == "em":
        return model.fit(x, max_iter=args.max_iter, tol=args.tol, seed=args.seed)
    size = args.batch_size or 1000
    order = np.random.default_rng(args.seed).permutation(len(x))
    return model.fit_online((x[order[i:i + size]] for i in range(0, len(x), size)),
                            seed=args.seed)


def per_image(model, x, dim):
    """(nats per image, bits/dim) of the dequantized 8-bit data: both exact for the model."""
    log_py = float(np.mean(model.log_prob(x))) - dim * math.log(256)
    return log_py, -log_py / (dim * math.log(2))


def write_figures(model, out, shape, seed):
    import matplotlib  # noqa: PLC0415
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415
    from tfvae.callbacks import image_grid  # noqa: PLC0415

    def save_grid(name, images):
        grid = image_grid(np.asarray(images).reshape(-1, *shape))
        plt.imsave(os.path.join(out, name), grid[..., 0] if grid.shape[-1] == 1 else grid,
                   cmap="gray", vmin=0, vmax=1)
        return name

    written = [save_grid("samples.png", model.sample(64, seed=seed))]
    if hasattr(model, "components"):
        directions, _ = model.components()
        flat = directions.reshape(len(directions), -1)
        scaled = 0.5 + 0.5 * flat / np.abs(flat).max(1, keepdims=True)  # 0.5 = zero weight
        written.append(save_grid("components.png", scaled))
    else:
        written.append(save_grid("means.png", model.means[np.argsort(-model.weights)]))
    history = model.log_likelihood_history
    if len(history) > 1:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.plot(np.arange(len(history)), history)
        ax.set_xlabel("iteration" if getattr(model, "method", "em") != "gradient" else "step")
        ax.set_ylabel("mean log p(x) on [0,1]^D, nats")
        ax.set_title("training log-likelihood (online EM: per-batch estimate)", fontsize=8)
        fig.tight_layout()
        fig.savefig(os.path.join(out, "loglik.png"), dpi=100)
        plt.close(fig)
        written.append("loglik.png")
    return written


def _main(argv):
    args = build_parser().parse_args(argv)
    _check(args)
    with _cli.user_errors():
        train = load_grey_levels(args.dataset, "train", args.limit)
        test = load_grey_levels(args.dataset, "test", args.test_limit)
    shape, dim = train.shape[1:], int(np.prod(train.shape[1:]))
    x_train, x_test = dequantize(train, args.seed), dequantize(test, args.seed + 1)
    del train, test
    print(f"data: {args.dataset}, {len(x_train)} train / {len(x_test)} test images of "
          f"{list(shape)}; dequantized x = (pixel + u)/256, u ~ U(0,1); log-likelihoods are "
          f"exact densities of the dequantized 8-bit data (log p(x) - {dim} log 256 per image)")
    from tfvae import latent  # noqa: PLC0415
    cls = latent.PPCA if args.model == "ppca" else latent.GaussianMixture
    start = time.perf_counter()
    with _cli.user_errors():
        model = cls.load(args.load) if args.load else fit(args, x_train)
        results = {"train": per_image(model, x_train, dim), "test": per_image(model, x_test, dim)}
    seconds = time.perf_counter() - start
    size = model.latent_dim if args.model == "ppca" else model.num_components
    what = (f"{args.model} K={size}" + (f" {args.method}" if not args.load else " (loaded)")
            + (f" {model.covariance} covariances" if args.model == "gmm" else ""))
    print(f"{what}: {'fit and ' if not args.load else ''}evaluated in {seconds:.1f} s")
    for split, (nats, bpd) in results.items():
        print(f"  {split:5s} log p = {nats:10.2f} nats/image (exact), {bpd:.4f} bits/dim")
    path = os.path.join(args.out, "model.npz")
    model.save(path)
    reloaded = cls.load(path)
    same = per_image(reloaded, x_test, dim) == results["test"]
    print(f"saved {path}; reloaded: test log p {'identical' if same else 'DIFFERS'}")
    figures = write_figures(model, args.out, shape, args.seed)
    print(f"wrote {', '.join(figures)} in {args.out}")
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"settings": vars(args), "fit_seconds": seconds, "dimension": dim,
                   "units": "nats per image of dequantized 8-bit data (exact); bits/dim",
                   **{f"{s}_log_p_nats": r[0] for s, r in results.items()},
                   **{f"{s}_bits_per_dim": r[1] for s, r in results.items()}}, f, indent=2)
    return 0 if same else 1


def main(argv=None):
    return _cli.run_main(PROG, _main, argv)


if __name__ == "__main__":
    sys.exit(main())

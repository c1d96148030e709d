"""The objective family on Fashion-MNIST: test ELBO and the rate decomposition, one table.

    nice -n 10 .venv/bin/python benchmarks/objectives_table.py            # 7 models x 10 epochs
    .venv/bin/python benchmarks/objectives_table.py --epochs 1 --limit 2048 --test-limit 1000

Each model is trained with the settings of its preset in apps/ (vae, beta_vae, capacity,
beta_tcvae, info_vae, factor_vae, ae), built exactly as the train app builds it (same flag
parsing, `dataset_size` = the training split), on FMNIST-bin (60k/10k, static threshold at
0.5), then measured on the whole test split:

```none
ELBO          E[log p(x|z)] - KL(q(z|x) || p(z)), nats per image (point mass: -inf)
MI, TC, dimKL minibatch stratified sampling over the test split (N = 10000, M = 500);
              kNN entropies for the AE (tfvae.evaluation.elbo_decomposition)
KL_agg        KL(q(z) || p(z)) = TC + dimKL (density estimate) | kNN estimate on one code
              per test image | the moment-matched Gaussian lower bound
AU            active units, Var_x E[z_d|x] > 0.01 (Burda et al.)
```
It also writes a grid of 64 decoded prior samples for the VAE and the AE side by side
(`prior_samples_vae_vs_ae.png`), and every number as JSON, to `--out` (default
runs/objectives_table/, git-ignored). Models run one after another; results are appended
as each finishes, so an interrupted run keeps what it measured.
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

from benchmarks import common  # noqa: E402
import tfvae  # noqa: E402
from tfvae._tf import tf, tfk  # noqa: E402
from tfvae.apps import train as train_app  # noqa: E402
from tfvae.evaluation import elbo_decomposition  # noqa: E402

MODELS = ("vae", "beta_vae", "capacity", "beta_tcvae", "info_vae", "factor_vae", "ae")




def build(name, epochs, n_train):
    """The model of apps/<name>.toml, built by the train app's own code."""
    cfg, recipe, _ = train_app.parse(
        ["--config", os.path.join(ROOT, "apps", f"{name}.toml"), "--epochs", str(epochs)])
    tfk.utils.set_random_seed(cfg.seed)
    model = recipe.build((28, 28, 1), cfg.seed, dataset_size=n_train)
    return cfg, model, recipe.to_dict()


def measure(name, args, train_ds, test_images, n_train):
    cfg, model, model_kwargs = build(name, args.epochs, n_train)
    model.compile(optimizer=tfk.optimizers.Adam(cfg.learning_rate), jit_compile=cfg.jit)
    timer = common.epoch_timer(tfk.callbacks.Callback)
    model.fit(train_ds, epochs=cfg.epochs, verbose=2, callbacks=[timer])
    test = tf.data.Dataset.from_tensor_slices(test_images).batch(500)
    metrics = {k: float(v) for k, v in model.evaluate(test, return_dict=True,
                                                      verbose=0).items()}
    t0 = time.perf_counter()
    density = elbo_decomposition(model, test_images, batch_size=500, seed=1)
    knn = elbo_decomposition(model, test_images, method="knn", batch_size=500, seed=1)
    row = {"model": name, "model_kwargs": model_kwargs, "epochs": cfg.epochs,
           "test": metrics, "elbo": metrics.get("elbo", -math.inf),
           "reconstruction": metrics["reconstruction"],
           "kl": density["kl"], "mi": density["mi"], "tc": density["tc"],
           "dim_kl": density["dim_kl"], "aggregate_kl": density["aggregate_kl"],
           "aggregate_kl_knn": knn["aggregate_kl"],
           "gaussian_kl_bound": density["gaussian_kl_bound"],
           "active_units": density["active_units"], "method": density["method"],
           "estimator": density.get("estimator"), "batch_size": density.get("batch_size"),
           "flags": density["flags"] + knn["flags"],
           "epoch_seconds": timer.times,
           "images_per_s": n_train / float(np.median(timer.times[1:] or timer.times)),
           "decomposition_seconds": time.perf_counter() - t0}
    return model, row


def fmt(value, digits=2):
    if isinstance(value, float) and math.isinf(value):
        return "+inf" if value > 0 else "-inf"
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def table(rows):
    head = ("| model | test ELBO | recon | KL | MI | TC | dimKL | KL(q(z)‖p) density | "
            "KL(q(z)‖p) kNN | Gaussian bound | AU | img/s |")
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        lines.append("| " + " | ".join([
            r["model"], fmt(r["elbo"]), fmt(r["reconstruction"]), fmt(r["kl"]), fmt(r["mi"]),
            fmt(r["tc"]), fmt(r["dim_kl"]),
            fmt(r["aggregate_kl"]) if r["method"] == "minibatch" else "(kNN) " + fmt(
                r["aggregate_kl"]),
            fmt(r["aggregate_kl_knn"]), fmt(r["gaussian_kl_bound"]), str(r["active_units"]),
            f"{r['images_per_s']:.0f}"]) + " |")
    return "\n".join(lines)


def prior_grid(models, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from tfvae.callbacks import image_grid
    fig, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 5.4))
    for ax, (name, model) in zip(np.atleast_1d(axes), models.items()):
        images = model.sample(64, seed=0).numpy()
        ax.imshow(image_grid(images, cols=8)[..., 0], cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"{name}: E[x|z], z ~ N(0, I)")
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS),
                        help=f"comma-separated subset of {','.join(MODELS)}")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--limit", type=int, default=None, help="first N training images")
    parser.add_argument("--test-limit", type=int, default=None, help="first N test images")
    parser.add_argument("--out", default=os.path.join(ROOT, "runs", "objectives_table"))
    args = parser.parse_args(argv)
    names = [m for m in args.models.split(",") if m]
    unknown = sorted(set(names) - set(MODELS))
    if unknown:
        parser.error(f"unknown models {unknown}; expected a subset of {list(MODELS)}")
    os.makedirs(args.out, exist_ok=True)

    train_ds = tfvae.data.load("fashion_mnist", "train", 128, binarize="static", seed=0,
                               limit=args.limit)
    n_train = int(sum(int(tf.shape(b)[0]) for b in train_ds))
    test_images = tfvae.evaluation.decomposition.collect_images(
        tfvae.data.load("fashion_mnist", "test", 1000, binarize="static"), args.test_limit)
    print(f"FMNIST-bin: {n_train} training, {len(test_images)} test images", flush=True)

    rows, kept = [], {}
    results_path = os.path.join(args.out, "results.json")
    for name in names:
        t0 = time.perf_counter()
        model, row = measure(name, args, train_ds, test_images, n_train)
        row["wall_seconds"] = time.perf_counter() - t0
        rows.append(row)
        if name in ("vae", "ae"):
            kept[name] = model
        with open(results_path, "w") as f:
            json.dump(rows, f, indent=1, default=str)
        shown = {k: row[k] for k in ("elbo", "mi", "tc", "dim_kl", "aggregate_kl",
                                     "aggregate_kl_knn", "gaussian_kl_bound", "active_units")}
        print(f"{name}: {json.dumps(shown, default=str)}", flush=True)
    if kept:
        prior_grid(kept, os.path.join(args.out, "prior_samples_vae_vs_ae.png"))
    text = table(rows)
    with open(os.path.join(args.out, "table.md"), "w") as f:
        f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()

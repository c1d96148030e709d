"""VAE against VAE-GAN on Fashion-MNIST grey levels: sample quality, attributes, speed.

    flock /tmp/tfvae-bench.lock .venv/bin/python benchmarks/vae_gan.py --epochs 3 --limit 10000
    ... --seeds 0,1,2,3      # both models per seed, then mean ± sd and VAE-GAN - VAE, paired
    ... --models vae_gan --seeds 0,1 --set model.gamma=0.1   # probe one of VAE-GAN's settings

Both models: the conv torsos (32, 64, 256), latent 32, a diagonal posterior, the Bernoulli
head's mean as the image, grey levels (no binarization), batch 64, the same training images
in the same order, the same epochs, no XLA (compiling VAE-GAN's step was impractical here).
The VAE trains on the ELBO (Adam 1e-3); VAE-GAN is apps/vae_gan.toml. Measured per model:

```none
prior Fréchet   Fashion-MNIST-feature Fréchet distance, 10,000 prior samples vs the 10,000
                test images, in the judging classifier's features (an estimate; not FID)
recon Fréchet   the same for the reconstructions of the 10,000 test images
attr@1          attribute indicator at alpha = 1 (share of decoded code + v of test images
                lacking the attribute that the judge assigns to it), three attributes,
                vectors from the first --vector-images training images
pixel MSE       mean squared pixel error of the test reconstructions (exact on the test set)
separation      (JSON only) d' of each attribute in the codes: |v| over the pooled spread of
                the codes' projections on v (with / without the attribute)
images/s        training images per second, median epoch after the first (the shared
                2-core machine: others' jobs slow it; compare the two, not the absolutes)
```
Writes JSON to --out (default runs/vae_gan_benchmark.json, git-ignored) and prints a
Markdown table.
"""

import argparse
import json
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
from tfvae.evaluation import attributes, frechet, judge as judge_lib  # noqa: E402

ATTRS = ("trouser", "footwear", "top")


def build(name, seed, overrides=()):
    if name == "vae_gan":
        argv = ["--config", os.path.join(ROOT, "apps", "vae_gan.toml")]
        for item in overrides:
            argv += ["--set", item]
        cfg, recipe, _ = train_app.parse(argv)
        tfk.utils.set_random_seed(seed)
        return recipe.build((28, 28, 1), seed), cfg.learning_rate
    tfk.utils.set_random_seed(seed)
    return tfvae.VAE(latent_dim=32, posterior="diagonal", likelihood="bernoulli",
                     architecture="conv", hidden_units=(32, 64, 256), seed=seed), 1e-3


def measure(name, seed, args, x_train, y_train, x_test, y_test, judge):
    model, lr = build(name, seed, args.set)
    model.compile(optimizer=tfk.optimizers.Adam(lr), steps_per_execution=16, jit_compile=False)
    timer = common.epoch_timer(tfk.callbacks.Callback)
    data = tf.data.Dataset.from_tensor_slices(x_train).shuffle(
        len(x_train), seed=seed, reshuffle_each_iteration=True).batch(64)
    model.fit(data, epochs=args.epochs, verbose=2, callbacks=[timer])

    def encode(x):
        return model.encode(x).mean().numpy()

    def decode(z):
        return model.decode(z).mean().numpy()
    recon = np.concatenate([decode(encode(x_test[i:i + 500])) for i in range(0, len(x_test),
                                                                            500)])
    test_feats = judge.features(x_test)
    sample_seeds = iter(range(10**6))
    prior = frechet.sample_frechet(
        lambda n: model.sample(n, seed=next(sample_seeds)).numpy(), judge, x_test,
        num_samples=args.samples)
    row = {"model": name if name == "vae" or not args.set else
           f"{name} ({', '.join(args.set)})", "seed": seed, "epochs": args.epochs,
           "train_images": len(x_train),
           "prior_frechet": prior["frechet"],
           "recon_frechet": frechet.frechet_distance_of(judge.features(recon), test_feats),
           "pixel_mse": float(np.mean((recon - x_test) ** 2)),
           "images_per_s": common.steady_images_per_s(timer.times, len(x_train)),
           "epoch_seconds": timer.times, "attributes": {}}
    codes = np.concatenate([encode(x_train[i:i + 500])
                            for i in range(0, args.vector_images, 500)])
    for attr in ATTRS:
        wanted = attributes.attribute_classes("fashion_mnist", attr)
        has = np.isin(y_train[:args.vector_images], wanted)
        vector = attributes.attribute_vector(codes, has)
        lack = ~np.isin(y_test, wanted)
        result = attributes.indicator(encode, decode, judge.predict, x_test[lack][:2000],
                                      y_test[lack][:2000], vector, wanted, alphas=(0.0, 1.0))
        judged = judge.predict(result["images"][1.0])
        row["attributes"][attr] = {"ratio_alpha_1": result["ratio"][1.0],
                                   "ratio_alpha_0": result["ratio"][0.0],
                                   "control": result["control"], "n": result["num_images"],
                                   "judged_alpha_1": judged_classes(judged),
                                   "separation": separation(codes, has, vector)}
    return row


def judged_classes(predicted):
    """How many of the alpha = 1 images the judge puts in each class, by class name: where
    the images that miss the attribute go."""
    counts = np.bincount(np.asarray(predicted), minlength=len(attributes.FASHION_MNIST_CLASSES))
    return {name: int(n) for name, n in zip(attributes.FASHION_MNIST_CLASSES, counts)}


def separation(codes, has, vector):
    """d' of the attribute along its vector: |v| over the pooled standard deviation of the
    codes' projections on v / |v| (those with the attribute, those without)."""
    p = codes @ (vector / np.linalg.norm(vector))
    return float(np.linalg.norm(vector) / np.sqrt(0.5 * (p[has].var() + p[~has].var())))


def table(rows, judge_accuracy):
    head = ("| model | prior Fréchet | recon Fréchet | " + " | ".join(
        f"attr@1 {a}" for a in ATTRS) + " | pixel MSE | images/s |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        lines.append(f"| {r['model']} | {r['prior_frechet']:.2f} | {r['recon_frechet']:.2f} | "
                     + " | ".join(f"{r['attributes'][a]['ratio_alpha_1']:.3f}" for a in ATTRS)
                     + f" | {r['pixel_mse']:.4f} | {r['images_per_s']:.0f} |")
    lines.append(f"\njudging classifier test accuracy {judge_accuracy:.4f}")
    return "\n".join(lines)


def seed_summary(rows):
    """Over the seeds: each model's mean +- sample sd of the prior Fréchet distance and of
    attr@1, then VAE-GAN minus the VAE per seed (paired: same seed, same data order) with
    its mean +- sd and the number of seeds where VAE-GAN's indicator is at least the VAE's."""
    models = list(dict.fromkeys(r["model"] for r in rows))

    def stat(values):
        v = np.asarray(values, float)
        return f"{v.mean():.3f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.3f}"
    head = "| model | seeds | prior Fréchet | " + " | ".join(f"attr@1 {a}" for a in ATTRS) + " |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    by = {m: sorted((r for r in rows if r["model"] == m), key=lambda r: r["seed"])
          for m in models}
    for m in models:
        lines.append(f"| {m} | {len(by[m])} | {stat([r['prior_frechet'] for r in by[m]])} | "
                     + " | ".join(stat([r["attributes"][a]["ratio_alpha_1"] for r in by[m]])
                                  for a in ATTRS) + " |")
    base, other = by[models[0]], by[models[-1]]
    if len(models) == 2 and [r["seed"] for r in base] == [r["seed"] for r in other]:
        cells = []
        for a in ATTRS:
            d = [o["attributes"][a]["ratio_alpha_1"] - b["attributes"][a]["ratio_alpha_1"]
                 for b, o in zip(base, other)]
            cells.append(f"{stat(d)} ({sum(x >= 0 for x in d)}/{len(d)} >= 0)")
        lines.append(f"| {models[-1]} - {models[0]}, paired | {len(base)} | | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--limit", type=int, default=None, help="first N training images")
    p.add_argument("--samples", type=int, default=10000)
    p.add_argument("--vector-images", type=int, default=10000)
    p.add_argument("--judge-epochs", type=int, default=2)
    p.add_argument("--seed", type=int, default=0, help="the models' seed (init, data order)")
    p.add_argument("--seeds", type=lambda v: [int(x) for x in v.split(",")], default=None,
                   help="comma-separated model seeds (overrides --seed): each seed trains "
                        "both models, and a table of mean ± sd over seeds follows")
    p.add_argument("--models", type=lambda v: v.split(","), default=["vae", "vae_gan"],
                   help="comma-separated subset of vae,vae_gan (the VAE's rows do not depend "
                        "on --set; a probe of VAE-GAN's settings can skip it)")
    p.add_argument("--judge-seed", type=int, default=0,
                   help="the judging classifier's seed (one judge for every model seed)")
    p.add_argument("--set", metavar="PATH=VALUE", action="append", default=[],
                   help="a train-app --set override of VAE-GAN's preset (repeatable), e.g. "
                        "model.prior_weight=3")
    p.add_argument("--out", default=os.path.join(ROOT, "runs", "vae_gan_benchmark.json"))
    args = p.parse_args(argv)
    if not args.models or set(args.models) - {"vae", "vae_gan"}:
        p.error(f"--models must name vae and/or vae_gan; got {args.models}")
    xs, ys = tfvae.data.load_arrays("fashion_mnist", "train")
    xt, yt = tfvae.data.load_arrays("fashion_mnist", "test")
    t0 = time.perf_counter()
    judge = judge_lib.train_judge(xs, ys, xt, yt, 10, "fashion_mnist",
                                  epochs=args.judge_epochs, seed=args.judge_seed, log=print)
    print(f"judge ready in {time.perf_counter() - t0:.0f} s", flush=True)
    x_train = (xs[:args.limit] / 255.0).astype(np.float32)[..., :]
    y_train = ys[:args.limit]
    x_test = (xt / 255.0).astype(np.float32)
    args.vector_images = min(args.vector_images, len(x_train))
    rows = []
    for seed, name in [(s, n) for s in (args.seeds or [args.seed]) for n in args.models]:
        rows.append(measure(name, seed, args, x_train, y_train, x_test, yt, judge))
        print(json.dumps(rows[-1]), flush=True)
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump({"rows": rows, "judge_test_accuracy": judge.test_accuracy,
                       "args": vars(args)}, f, indent=2)
    print(table(rows, judge.test_accuracy))
    if len(args.seeds or []) > 1:
        print("\n" + seed_summary(rows))


if __name__ == "__main__":
    main()

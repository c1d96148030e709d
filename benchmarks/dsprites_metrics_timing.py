"""Each disentanglement metric at its default settings on dSprites-like data: time and value.

    python -m benchmarks.dsprites_metrics_timing

The encoder is hand-made, not learned: pixel centroid (x, y), sqrt(area) and two N(0, 1)
noise dims (for `mig_chen`, each with scale 0.3). It isolates the metrics' own cost
(drawing factors, rendering, estimators); a trained encoder adds its forward passes:
MIG and DCI encode 10,000-15,000 images, the FactorVAE score 970,000, mig_chen 10,000.
"""

import time

import numpy as np


def moments(x):
    img = np.asarray(x, np.float64)[..., 0]
    grid = np.arange(img.shape[1], dtype=np.float64)
    area = img.sum((1, 2))
    cy = (img.sum(2) * grid).sum(1) / area
    cx = (img.sum(1) * grid).sum(1) / area
    noise = np.random.default_rng(int(area.sum()) % 2**32).normal(size=(len(x), 2))
    return np.stack([cx, cy, np.sqrt(area), *noise.T], 1)


def main():
    from tfvae import dsprites
    from tfvae.evaluation import disentanglement as dis
    data = dsprites.DSprites()
    for name, fn, key in (("mig", dis.mig, "mig"),
                          ("factor_vae_score", dis.factor_vae_score, "factor_vae_score"),
                          ("sap", dis.sap, "sap"), ("dci", dis.dci, "disentanglement")):
        t = time.perf_counter()
        value = fn(moments, data, seed=0)[key]
        print(f"{name}: {key} {value:.3f}, {time.perf_counter() - t:.1f} s", flush=True)
    t = time.perf_counter()
    value = dis.mig_chen(lambda x: (moments(x), np.full((len(x), 5), 0.3)), data)["mig_chen"]
    print(f"mig_chen: {value:.3f}, {time.perf_counter() - t:.1f} s")


if __name__ == "__main__":
    main()

"""The evaluate app's figures: readable sizes, labelled rows and named classes.

```none
reconstructions.png  rows of 8 test images, each row followed by its reconstructions
samples.png          64 decoded prior samples E[x|z], z ~ p(z)
traversals.png       the most informative latent dims, one row each (chosen and labelled by
                     KL_d, the mean KL of q(z_d|x) to N(0, 1); with the dataset's factors,
                     also the factor the dim carries most of): z_d from -3 to 3 around the
                     first test image's code
latents.png          test posterior means (2 principal components when D > 2), coloured by
                     class, with the class names
```
Image tiles are drawn at least 64 px wide (28 px Fashion-MNIST images at 3x). For a
Gaussian posterior KL_d is exact per image and averaged; for other posteriors it is the KL
of the Gaussian with q(z_d|x)'s mean and variance (estimated from samples), an approximation.
"""

import math
import os

import numpy as np

#: the smallest drawn size of one image tile, in pixels
MIN_TILE_PX = 64
#: traversal rows drawn at most
TRAVERSAL_ROWS = 12


def dimension_kl(means, stds):
    """KL_d [D]: the mean over images of KL(N(m_d, s_d^2) || N(0, 1)), in nats."""
    stds = np.maximum(np.asarray(stds, np.float64), 1e-12)
    means = np.asarray(means, np.float64)
    return np.mean(0.5 * (means ** 2 + stds ** 2 - 1.0) - np.log(stds), axis=0)


def _upscaled(grid, tile):
    scale = max(1, math.ceil(MIN_TILE_PX / tile))
    return np.kron(grid, np.ones((scale, scale, 1), grid.dtype)) if scale > 1 else grid


def write_figures(model, x, labels, means, stds, recon, out_dir, seed, label_names=None,
                  dimension_factors=None):
    """Writes the figures above into `out_dir`."""
    import matplotlib  # noqa: PLC0415
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415
    from tfvae.callbacks import image_grid, interleave_rows  # noqa: PLC0415
    tile = int(x.shape[1])

    def save_grid(name, images, cols):
        grid = _upscaled(image_grid(images, cols=cols), tile)
        plt.imsave(os.path.join(out_dir, name), grid[..., 0] if grid.shape[-1] == 1 else grid,
                   cmap="gray", vmin=0, vmax=1)

    save_grid("reconstructions.png", interleave_rows(x[:32], recon[:32], 8), 8)
    save_grid("samples.png", model.sample(64, seed=seed).numpy(), 8)
    _traversals(plt, model, means, stds, tile, dimension_factors,
                os.path.join(out_dir, "traversals.png"))
    _latent_map(plt, means, labels, label_names, os.path.join(out_dir, "latents.png"))


def _traversals(plt, model, means, stds, tile, dimension_factors, path):
    from tfvae.callbacks import image_grid  # noqa: PLC0415
    kl = dimension_kl(means, stds)
    dims = np.argsort(-kl, kind="stable")[:TRAVERSAL_ROWS]
    values = np.linspace(-3, 3, 9)
    z = np.repeat(means[:1], len(dims) * len(values), axis=0).astype(np.float32)
    for row, d in enumerate(dims):
        z[row * len(values):(row + 1) * len(values), d] = values
    images = model.decode(z).mean().numpy()
    scale = max(1, math.ceil(MIN_TILE_PX / tile)) * (tile + 1)
    fig, axes = plt.subplots(len(dims), 1, squeeze=False,
                             figsize=(len(values) * scale / 100 + 2.6, len(dims) * scale / 100))
    for row, d in enumerate(dims):
        strip = image_grid(images[row * len(values):(row + 1) * len(values)], cols=len(values))
        ax = axes[row, 0]
        ax.imshow(strip[..., 0] if strip.shape[-1] == 1 else strip, cmap="gray", vmin=0,
                  vmax=1, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        label = f"z{d}  KL {kl[d]:.2f}"
        if dimension_factors is not None and d < len(dimension_factors) \
                and dimension_factors[d]:
            label += f"\n{dimension_factors[d][0]} ({dimension_factors[d][1]:.2f})"
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    axes[0, 0].set_title("z_d from -3 to 3; dims by KL_d (nats)", fontsize=9)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def _latent_map(plt, means, labels, label_names, path):
    d = means.shape[1]
    if d > 2:
        centered = means - means.mean(0)
        _, _, vt = np.linalg.svd(centered, full_matrices=False)
        points, axes = centered @ vt[:2].T, ("PC 1", "PC 2")
    else:
        points, axes = np.pad(means, [[0, 0], [0, 2 - d]]), ("z1", "z2")
    fig, ax = plt.subplots(figsize=(7, 6))
    labels = np.asarray(labels).astype(int)
    cmap = plt.get_cmap("tab10")
    for i, value in enumerate(np.unique(labels)):
        mask = labels == value
        name = label_names[value] if label_names is not None and 0 <= value < len(
            label_names) else str(value)
        ax.scatter(points[mask, 0], points[mask, 1], s=4, color=cmap(i % 10), label=name)
    ax.legend(markerscale=4, fontsize=8, loc="best")
    ax.set_xlabel(axes[0])
    ax.set_ylabel(axes[1])
    ax.set_title("test posterior means")
    fig.savefig(path, dpi=100)
    plt.close(fig)

"""Image utilities shared by the summaries, the projector sprite and the sample app."""

import math

import numpy as np

from tfvae._tf import tf


def image_grid(images, cols=None, pad=1, pad_value=0.5):
    """Tiles images [N, H, W, C] into one image [rows*(H+pad)-pad, cols*(W+pad)-pad, C].

    Missing tiles of the last row are left at `pad_value`; values are clipped to [0, 1].
    """
    images = np.clip(np.asarray(images, np.float32), 0.0, 1.0)
    n, h, w, c = images.shape
    cols = cols or max(1, math.ceil(math.sqrt(n)))
    rows = max(1, math.ceil(n / cols))
    grid = np.full((rows * (h + pad) - pad, cols * (w + pad) - pad, c), pad_value, np.float32)
    for i in range(n):
        r, k = divmod(i, cols)
        grid[r * (h + pad):r * (h + pad) + h, k * (w + pad):k * (w + pad) + w] = images[i]
    return grid


def interleave_rows(inputs, outputs, cols):
    """[N, ...] inputs and outputs -> rows: `cols` inputs, then their `cols` outputs, ..."""
    n = len(inputs)
    tiles = []
    for start in range(0, n, cols):
        a, b = inputs[start:start + cols], outputs[start:start + cols]
        pad = cols - len(a)
        if pad:
            blank = np.full((pad, *a.shape[1:]), 0.5, np.float32)
            a, b = np.concatenate([a, blank]), np.concatenate([b, blank])
        tiles.extend([a, b])
    return np.concatenate(tiles)


def encode_png(image):
    """float [H, W, C] in [0, 1] -> PNG bytes."""
    pixels = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
    return tf.io.encode_png(pixels).numpy()

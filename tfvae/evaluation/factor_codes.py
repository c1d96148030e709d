"""Codes of a ground-truth source's draws: the shared first step of every metric.

An encoder is a function from observations [B, ...] to an array or tensor [B, D], a
`tfd.Distribution` with batch [B] and event [D], or a (loc, scale) pair of [B, D].
"""

import numpy as np

ENCODE_BATCH = 256

def _array(value):
    return np.asarray(value.numpy() if hasattr(value, "numpy") else value, np.float64)


def loc_scale(out):
    """(loc, scale or None) [B, D] from an encoder's output (array, distribution or pair)."""
    if isinstance(out, (tuple, list)):
        if len(out) != 2:
            raise ValueError(f"an encoder returning a tuple must return (loc, scale); got "
                             f"{len(out)} items.")
        return _array(out[0]), _array(out[1])
    if hasattr(out, "mean") and hasattr(out, "stddev") and callable(out.stddev):
        return _array(out.mean()), _array(out.stddev())  # per-dim marginal of q(z|x)
    return _array(out), None


def encode(encoder, x, with_scale=False, encode_batch=ENCODE_BATCH):
    """Codes [N, D] (and scales [N, D]) of observations x [N, ...], in chunks."""
    locs, scales = [], []
    for start in range(0, len(x), encode_batch):
        chunk = x[start:start + encode_batch]
        loc, scale = loc_scale(encoder(chunk))
        if loc.ndim != 2 or loc.shape[0] != len(chunk):
            raise ValueError(f"the encoder must return codes of shape [B, D] for B = "
                             f"{len(chunk)} observations; got shape {loc.shape}.")
        if with_scale and (scale is None or scale.shape != loc.shape):
            raise ValueError("mig_chen needs q(z|x): an encoder returning a distribution or a "
                             "(loc, scale) pair of shape [B, D].")
        if not np.all(np.isfinite(loc)):
            raise ValueError("the encoder returned non-finite codes.")
        locs.append(loc)
        scales.append(scale)
    loc = np.concatenate(locs)
    return (loc, np.concatenate(scales)) if with_scale else loc


def sample_codes(encoder, data, num_points, rng, with_scale=False, encode_batch=ENCODE_BATCH):
    """(codes [N, D] (, scales [N, D]), factors int64 [N, K]) for N fresh draws of `data`."""
    factors, x = data.sample(num_points, rng)
    codes = encode(encoder, x, with_scale, encode_batch)
    return (*codes, factors) if with_scale else (codes, factors)


def check_count(name, value, minimum, why):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"`{name}` must be an int >= {minimum} ({why}); got {value!r}.")

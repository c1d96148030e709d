"""Input checks and file I/O shared by the classical latent-variable models."""

import json
import os
import tempfile

import numpy as np


def check_data(x, what="x", min_examples=2):
    """Returns `x` as float64 [N, D] (trailing axes flattened) and the per-example shape.

    Raises:
        TypeError: if `x` is not numeric.
        ValueError: fewer than `min_examples` examples, no features, NaN or Inf.
    """
    try:
        x = np.asarray(x)
    except Exception as e:  # noqa: BLE001  (ragged lists and the like)
        raise TypeError(f"`{what}` must be an array of shape [N, ...]; {e}") from None
    if x.dtype == bool or not np.issubdtype(x.dtype, np.number):
        raise TypeError(f"`{what}` must be a numeric array; got dtype {x.dtype}.")
    if x.ndim < 2:
        raise ValueError(f"`{what}` must have shape [N, D] or [N, H, W, C]; got shape "
                         f"{list(x.shape)}.")
    if x.shape[0] < min_examples:
        raise ValueError(f"`{what}` needs at least {min_examples} examples to fit; got "
                         f"{x.shape[0]}.")
    shape = tuple(int(s) for s in x.shape[1:])
    x = x.reshape(len(x), -1).astype(np.float64)
    if x.shape[1] == 0:
        raise ValueError(f"`{what}` has no features (shape {list(shape)}).")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"`{what}` contains NaN or Inf; clean the data first.")
    return x, shape


def check_features(x, dim, what="x"):
    """Flattens `x` [N, ...] to float64 [N, dim] for evaluation (any N >= 1)."""
    x, _ = check_data(x, what, min_examples=1)
    if x.shape[1] != dim:
        raise ValueError(f"`{what}` has {x.shape[1]} features per example; the model was "
                         f"fitted on {dim}.")
    return x


def check_positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"`{name}` must be a positive int; got {value!r}.")
    return int(value)


def check_positive_float(value, name, allow_zero=False):
    try:
        ok = float(value) >= 0 if allow_zero else float(value) > 0
    except (TypeError, ValueError):
        ok = False
    if isinstance(value, bool) or not ok or not np.isfinite(float(value)):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"`{name}` must be a finite number {bound}; got {value!r}.")
    return float(value)


def save_npz(path, kind, config, arrays):
    """Writes `arrays` and a JSON `config` to `path` (.npz) atomically: temp file, rename."""
    path = str(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    meta = json.dumps({"kind": kind, "config": config})
    fd, tmp = tempfile.mkstemp(suffix=".npz", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, __meta__=np.array(meta), **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def load_npz(path, kind):
    """(config, arrays) from a file written by `save_npz`; ValueError if it holds another kind."""
    with np.load(str(path), allow_pickle=False) as f:
        if "__meta__" not in f:
            raise ValueError(f"{path!r} is not a tfvae.latent model file.")
        meta = json.loads(str(f["__meta__"]))
        arrays = {k: f[k] for k in f.files if k != "__meta__"}
    if meta.get("kind") != kind:
        raise ValueError(f"{path!r} holds a {meta.get('kind')!r} model, not a {kind!r}.")
    return meta["config"], arrays

"""Checks of the images a model is given: static checks always, value checks eagerly."""

import numpy as np

from tfvae._tf import tf


def check_images(model, x):
    """`x` as a float tensor of the model's dtype, or a one-line TypeError/ValueError.

    Shape and dtype are checked always; values (NaN/Inf, the likelihood's support) when
    running eagerly, or inside compiled steps when the model has `validate_args`.
    """
    if isinstance(x, (list, tuple)):
        raise TypeError(f"`x` must be one tensor of images [B, H, W, C]; got a "
                        f"{type(x).__name__}.")
    if not tf.is_tensor(x):
        x = np.asarray(x)
    dtype = tf.as_dtype(x.dtype)
    if not dtype.is_floating:
        raise TypeError(f"`x` must be float images in [0, 1]; got dtype {dtype.name} "
                        "(cast to float32 and scale by 1/255).")
    expected = (None, *model.image_shape)
    shape = tuple(x.shape)
    if len(shape) != 4 or any(e is not None and s is not None and s != e
                              for s, e in zip(shape, expected)):
        raise ValueError(f"`x` must have shape [batch, {', '.join(map(str, model.image_shape))}]"
                         f"; got {list(shape)}.")
    x = tf.cast(x, model.compute_dtype)
    if tf.executing_eagerly():
        values = x.numpy()
        if not np.all(np.isfinite(values)):
            raise ValueError("`x` contains NaN or Inf; clean the data first.")
        model.likelihood.check_values(values)
    elif model.validate_args:
        x = tf.debugging.assert_all_finite(x, "`x` contains NaN or Inf.")
    return x


def check_array_input(model, x):
    """Checks in-memory arrays eagerly, before Keras wraps them in a dataset."""
    if isinstance(x, (np.ndarray, tf.Tensor)) and tf.executing_eagerly():
        check_images(model, x)


def unpack(data):
    """Accepts x, (x,), (x, y) or (x, y, sample_weight) batches; labels are ignored."""
    return data[0] if isinstance(data, (tuple, list)) else data

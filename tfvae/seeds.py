"""Stateless seeds: every random draw in tfvae is a pure function of an explicit seed."""

import numbers

from tfvae._tf import tf


def stateless_seed(seed):
    """An int32 [2] stateless seed from an int or an existing [2] seed tensor.

    TFP's `sanitize_seed(int)` draws the pair with a *stateful* op, so the same int gives a
    different seed on every call; this maps an int to a fixed pair instead.
    """
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        return tf.constant([int(seed) % (2**31 - 1), int(seed) // (2**31 - 1)], tf.int32)
    seed = tf.convert_to_tensor(seed)
    if seed.shape.rank != 1 or (seed.shape[0] is not None and seed.shape[0] != 2):
        raise ValueError(f"`seed` must be an int or an int32 tensor of shape [2]; got shape "
                         f"{seed.shape}.")
    return tf.cast(seed, tf.int32)

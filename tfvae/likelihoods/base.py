"""The likelihood-head contract."""

import numpy as np

from tfvae._tf import tfk


class Likelihood(tfk.layers.Layer):
    """Maps decoder outputs [..., H, W, C * params_per_channel] to p(x|z).

    `call` returns a `tfd.Independent` whose event shape is the image shape [H, W, C]
    and whose batch shape is the leading dimensions of its input. Decoders emit logits or
    locations, never post-sigmoid values.

    Args:
        validate_args: passed to every tfd object the head makes.
    """

    #: how many decoder channels one image channel needs (2 for a loc and a scale).
    params_per_channel = 1

    def __init__(self, validate_args=False, **kwargs):
        super().__init__(**kwargs)
        self.validate_args = validate_args

    def check_values(self, x):
        """Raises ValueError if the NumPy array `x` is outside the likelihood's support."""
        del x


def check_unit_interval(x, what):
    lo, hi = float(np.min(x)), float(np.max(x))
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"{what} needs `x` in [0, 1]; got values in [{lo:g}, {hi:g}] "
                         "(scale images by 1/255).")

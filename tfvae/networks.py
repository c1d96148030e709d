"""Encoder and decoder torsos. No distributions here: the heads make those.

An encoder maps images [B, H, W, C] to features h [B, F]. A decoder maps latents [N, D]
to the likelihood head's parameters [N, H, W, C * params_per_channel].
"""

import math

from tfvae._tf import tfk
from tfvae.registry import ARCHITECTURES


def check_hidden_units(hidden_units):
    units = tuple(hidden_units) if isinstance(hidden_units, (list, tuple)) else None
    if not units or not all(isinstance(u, int) and not isinstance(u, bool) and u > 0
                            for u in units):
        raise ValueError(f"`hidden_units` must be a non-empty sequence of positive ints; "
                         f"got {hidden_units!r}.")
    return units


@ARCHITECTURES.register("mlp")
class MLP:
    """Fully connected torsos: 784-512-256 for the encoder, mirrored for the decoder."""

    @staticmethod
    def encoder(input_shape, hidden_units=(512, 256), activation="relu"):
        layers = [tfk.layers.Flatten(input_shape=input_shape)]
        layers += [tfk.layers.Dense(u, activation=activation) for u in hidden_units]
        return tfk.Sequential(layers, name="encoder")

    @staticmethod
    def decoder(latent_dim, output_shape, hidden_units=(512, 256), activation="relu"):
        layers = [tfk.layers.InputLayer(input_shape=(latent_dim,))]
        layers += [tfk.layers.Dense(u, activation=activation) for u in reversed(hidden_units)]
        layers += [tfk.layers.Dense(math.prod(output_shape)),
                   tfk.layers.Reshape(output_shape)]
        return tfk.Sequential(layers, name="decoder")


@ARCHITECTURES.register("conv")
class Conv:
    """Convolutional torsos for any H x W x C: stride-2 convolutions down, transposed up.

    `hidden_units` gives the channel counts of the stride-2 stages (the last entry is
    also the width of the dense layer before the head), e.g. (32, 64, 256).
    """

    @staticmethod
    def encoder(input_shape, hidden_units=(32, 64, 256), activation="relu"):
        if len(hidden_units) < 2:
            raise ValueError("The conv architecture needs `hidden_units` of at least two "
                             f"entries (channels..., dense width); got {hidden_units!r}.")
        *channels, dense = hidden_units
        layers = [tfk.layers.InputLayer(input_shape=input_shape)]
        layers += [tfk.layers.Conv2D(c, 4, strides=2, padding="same", activation=activation)
                   for c in channels]
        layers += [tfk.layers.Flatten(), tfk.layers.Dense(dense, activation=activation)]
        return tfk.Sequential(layers, name="encoder")

    @staticmethod
    def decoder(latent_dim, output_shape, hidden_units=(32, 64, 256), activation="relu"):
        *channels, dense = hidden_units
        height, width, out_channels = output_shape
        factor = 2 ** len(channels)
        h0, w0 = math.ceil(height / factor), math.ceil(width / factor)
        layers = [tfk.layers.InputLayer(input_shape=(latent_dim,)),
                  tfk.layers.Dense(dense, activation=activation),
                  tfk.layers.Dense(h0 * w0 * channels[-1], activation=activation),
                  tfk.layers.Reshape((h0, w0, channels[-1]))]
        layers += [tfk.layers.Conv2DTranspose(c, 4, strides=2, padding="same",
                                              activation=activation)
                   for c in reversed(channels)]
        crop_h, crop_w = h0 * factor - height, w0 * factor - width
        if crop_h or crop_w:
            layers.append(tfk.layers.Cropping2D(((0, crop_h), (0, crop_w))))
        layers.append(tfk.layers.Conv2D(out_channels, 3, padding="same"))
        return tfk.Sequential(layers, name="decoder")


DEFAULT_HIDDEN_UNITS = {"mlp": (512, 256), "conv": (32, 64, 256)}

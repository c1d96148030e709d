"""Diagonal Gaussian posterior q(z|x) = N(mu(x), diag(sigma(x)^2))."""

import numpy as np

from tfvae._tf import tf, tfd, tfk
from tfvae.posteriors.base import Posterior
from tfvae.registry import POSTERIORS

# softplus(x) + shift, the diagonal transform of tfb.FillScaleTriL, so the diagonal and
# full-covariance heads parameterize sigma identically and compare like for like.
DIAG_SHIFT = 1e-5


def softplus_inverse(y):
    return float(np.log(np.expm1(y)))


@POSTERIORS.register("diagonal")
class DiagonalGaussian(Posterior):
    """q(z|x) = MultivariateNormalDiag(loc, softplus(raw) + 1e-5).

    Args:
        latent_dim: D.
        init_scale: sigma of every latent at initialization (bias of the scale units);
            Default value: 1.0, the prior's scale, so the initial KL is the loc's alone.
    """

    def __init__(self, latent_dim, init_scale=1.0, validate_args=False, **kwargs):
        super().__init__(latent_dim, validate_args=validate_args, **kwargs)
        if not init_scale > 0:
            raise ValueError(f"`init_scale` must be positive; got {init_scale!r}.")
        self.init_scale = float(init_scale)
        self.loc_layer = tfk.layers.Dense(latent_dim, name="loc")
        self.scale_layer = tfk.layers.Dense(
            latent_dim, name="scale",
            bias_initializer=tfk.initializers.Constant(softplus_inverse(self.init_scale - DIAG_SHIFT)))

    @staticmethod
    def params_size(latent_dim):
        return 2 * latent_dim

    def call(self, h):
        loc = self.loc_layer(h)
        scale = tf.nn.softplus(self.scale_layer(h)) + DIAG_SHIFT
        return tfd.MultivariateNormalDiag(loc=loc, scale_diag=scale,
                                          validate_args=self.validate_args, name="q_z")

    def get_config(self):
        return {**super().get_config(), "init_scale": self.init_scale}

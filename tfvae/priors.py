"""Priors p(z): layers without inputs whose `distribution()` is p(z), batch [], event [D].

Each registers in `tfvae.registry.PRIORS`. The standard normal is a MultivariateNormalDiag,
not Independent(Normal), because TFP registers an analytic KL from MultivariateNormalTriL
to it.
"""

from tfvae._tf import tf, tfd, tfk
from tfvae.registry import PRIORS


def standard_normal(latent_dim, dtype=tf.float32, validate_args=False):
    """N(0, I) over R^latent_dim: batch [], event [latent_dim]."""
    return tfd.MultivariateNormalDiag(
        loc=tf.zeros([latent_dim], dtype), scale_diag=tf.ones([latent_dim], dtype),
        validate_args=validate_args, name="prior")


class Prior(tfk.layers.Layer):
    """The prior contract: `distribution()` returns p(z) with event shape [latent_dim].

    Args:
        latent_dim: D.
        validate_args: passed to every tfd object the prior makes.
    """

    def __init__(self, latent_dim, validate_args=False, **kwargs):
        super().__init__(**kwargs)
        self.latent_dim = latent_dim
        self.validate_args = validate_args

    def distribution(self):
        raise NotImplementedError


@PRIORS.register("standard_normal")
class StandardNormal(Prior):
    """p(z) = N(0, I)."""

    def distribution(self):
        return standard_normal(self.latent_dim, validate_args=self.validate_args)

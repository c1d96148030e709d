"""Priors p(z). The standard normal is a MultivariateNormalDiag, not Independent(Normal),
because TFP registers an analytic KL from MultivariateNormalTriL to it."""

from tfvae._tf import tf, tfd


def standard_normal(latent_dim, dtype=tf.float32, validate_args=False):
    """N(0, I) over R^latent_dim: batch [], event [latent_dim]."""
    return tfd.MultivariateNormalDiag(
        loc=tf.zeros([latent_dim], dtype), scale_diag=tf.ones([latent_dim], dtype),
        validate_args=validate_args, name="prior")

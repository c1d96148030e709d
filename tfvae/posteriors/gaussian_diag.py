"""Diagonal Gaussian posterior q(z|x) = N(mu(x), diag(sigma(x)^2))."""

from tfvae import validation
from tfvae._tf import tf, tfd, tfk, tfp
from tfvae.posteriors.base import Posterior
from tfvae.registry import POSTERIORS

# softplus(x) + shift, the diagonal transform of tfb.FillScaleTriL, so the diagonal and
# full-covariance heads parameterize sigma identically and compare like for like.
DIAG_SHIFT = 1e-5


def scale_bias(init_scale):
    """The bias b with softplus(b) + DIAG_SHIFT = init_scale."""
    return float(tfp.math.softplus_inverse(init_scale - DIAG_SHIFT))


def gaussian_export(q_z, seed):
    """`encode`'s tensors for a MultivariateNormal q: loc, scale_tril, a sample z, log_q."""
    z = q_z.sample(seed=seed)
    return {"loc": q_z.loc, "scale_tril": q_z.scale.to_dense(), "z": z,
            "log_q": q_z.log_prob(z)}


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
        self.init_scale = validation.real(init_scale, "init_scale", minimum=DIAG_SHIFT,
                                          strict=True)
        self.loc_layer = tfk.layers.Dense(latent_dim, name="loc")
        self.scale_layer = tfk.layers.Dense(
            latent_dim, name="scale",
            bias_initializer=tfk.initializers.Constant(scale_bias(self.init_scale)))

    def call(self, h):
        loc = self.loc_layer(h)
        scale = tf.nn.softplus(self.scale_layer(h)) + DIAG_SHIFT
        return tfd.MultivariateNormalDiag(loc=loc, scale_diag=scale,
                                          validate_args=self.validate_args, name="q_z")

    def export_tensors(self, q_z, seed):
        return gaussian_export(q_z, seed)

"""Full-covariance Gaussian posterior q(z|x) = N(mu(x), L(x) L(x)^T).

```none
L = strictly_lower(V) + diag(softplus(v) + 1e-5)         (Kingma & Welling 2014, App. C.2)
z = mu + L eps,  eps ~ N(0, I)
log q(z|x) = -sum_i [ eps_i^2 / 2 + log(2 pi) / 2 + log L_ii ]
```

Why the head is initialized the way it is: a `tfpl.MultivariateNormalTriL` after a freshly
initialized Dense layer starts with D(D-1)/2 off-diagonal entries of size O(1). For D = 32
each row of L sums up to 31 of them, so the initial covariance is far from the prior
(KL ~ 21-25 nats per image against ~4-5 for a diagonal head) and the encoder spends the
first epochs undoing it; on the benchmark it never recovers (15-23 nats worse after 10
epochs). Here the off-diagonal columns of the projection start at zero, and the diagonal
starts at `init_scale` exactly like the diagonal head, so at step 0 the full-covariance
posterior *is* the diagonal one and can only gain from its extra freedom. The
off-diagonal outputs are also multiplied by `offdiag_scale` (< 1), which under Adam is a
smaller effective learning rate for them: their gradients are noisy and small, and Adam's
per-parameter normalization would otherwise move them as fast as the means.

#### References
[1] Kingma & Welling (2014), Auto-Encoding Variational Bayes, arXiv:1312.6114, App. C.2.
"""

import numpy as np

from tfvae._tf import tf, tfb, tfk, tfpl
from tfvae.posteriors.base import Posterior
from tfvae.posteriors.gaussian_diag import DIAG_SHIFT, softplus_inverse
from tfvae.registry import POSTERIORS


def _diagonal_mask(latent_dim):
    """1.0 where tfb.FillTriangular puts a vector entry on the diagonal, else 0.0."""
    eye = np.eye(latent_dim, dtype=np.float32)
    return tfb.FillTriangular().inverse(eye).numpy()


@POSTERIORS.register("full_covariance")
class FullCovarianceGaussian(Posterior):
    """q(z|x) = MultivariateNormalTriL(loc, scale_tril), made by `tfpl.MultivariateNormalTriL.new`.

    Args:
        latent_dim: D.
        init_scale: every sigma at initialization. Default value: 1.0 (the prior's).
        offdiag_scale: multiplier of the off-diagonal outputs; a smaller value is a smaller
            effective Adam step for them. Default value: 0.1.
    """

    def __init__(self, latent_dim, init_scale=1.0, offdiag_scale=0.1, validate_args=False,
                 **kwargs):
        super().__init__(latent_dim, validate_args=validate_args, **kwargs)
        if not init_scale > 0:
            raise ValueError(f"`init_scale` must be positive; got {init_scale!r}.")
        if not offdiag_scale > 0:
            raise ValueError(f"`offdiag_scale` must be positive; got {offdiag_scale!r}.")
        self.init_scale = float(init_scale)
        self.offdiag_scale = float(offdiag_scale)
        d = latent_dim
        mask = _diagonal_mask(d)
        bias = mask * softplus_inverse(self.init_scale - DIAG_SHIFT)
        # Diagonal units get the diagonal head's init: glorot-uniform for a Dense(d), whose
        # fan-out is d, not d(d+1)/2; off-diagonal units start at exactly 0.
        glorot = tfk.initializers.GlorotUniform()

        def kernel_init(shape, dtype=None):
            diag_kernel = glorot((shape[0], d), dtype)
            return tf.gather(diag_kernel, np.maximum(np.cumsum(mask) - 1, 0).astype(np.int32),
                             axis=1) * tf.constant(mask, dtype or tf.float32)

        self.loc_layer = tfk.layers.Dense(d, name="loc")
        self.tril_layer = tfk.layers.Dense(d * (d + 1) // 2, name="scale_tril",
                                           kernel_initializer=kernel_init,
                                           bias_initializer=tfk.initializers.Constant(bias))
        # Scales the off-diagonal outputs only: offdiag_scale off the diagonal, 1 on it.
        self._output_scale = tf.constant(mask + (1.0 - mask) * self.offdiag_scale)

    @staticmethod
    def params_size(latent_dim):
        return tfpl.MultivariateNormalTriL.params_size(latent_dim)

    def call(self, h):
        params = tf.concat([self.loc_layer(h), self.tril_layer(h) * self._output_scale], axis=-1)
        q_z = tfpl.MultivariateNormalTriL.new(params, self.latent_dim,
                                              validate_args=self.validate_args)
        return q_z

    def get_config(self):
        return {**super().get_config(), "init_scale": self.init_scale,
                "offdiag_scale": self.offdiag_scale}

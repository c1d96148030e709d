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

from tfvae._tf import tf, tfd, tfk, tfpl
from tfvae.posteriors.base import Posterior
from tfvae.posteriors.gaussian_diag import DIAG_SHIFT, softplus_inverse
from tfvae.registry import POSTERIORS


def _strictly_lower_index(latent_dim):
    """[D * D] int32: position k + 1 of the k-th strictly-lower entry (row-major), else 0."""
    index = np.zeros((latent_dim, latent_dim), np.int32)
    rows, cols = np.tril_indices(latent_dim, -1)
    index[rows, cols] = np.arange(1, len(rows) + 1)
    return index.reshape(-1)


@POSTERIORS.register("full_covariance")
class FullCovarianceGaussian(Posterior):
    """q(z|x) = MultivariateNormalTriL(loc, scale_tril), the scale built as in
    `tfpl.MultivariateNormalTriL` (softplus diagonal + 1e-5, free strictly-lower part) and with
    the same number of parameters, `tfpl.MultivariateNormalTriL.params_size(D)`.

    The triangle is assembled with a constant-index gather and elementwise ops instead of
    `tfb.FillScaleTriL`: the gradient of its `TransformDiagonal` builds a zeros tensor of
    dynamic shape that XLA refuses whenever the batch size is not static (any `fit` on a
    dataset), and the gather is cheaper.

    Args:
        latent_dim: D.
        init_scale: every sigma at initialization. Default value: 1.0 (the prior's).
        offdiag_scale: multiplier of the off-diagonal outputs; a smaller value is a smaller
            effective Adam step for them. Default value: 0.1.
    """

    def __init__(self, latent_dim, init_scale=1.0, offdiag_scale=0.1, relative=False,
                 offdiag_units=None, validate_args=False, **kwargs):
        super().__init__(latent_dim, validate_args=validate_args, **kwargs)
        if not init_scale > 0:
            raise ValueError(f"`init_scale` must be positive; got {init_scale!r}.")
        if not offdiag_scale > 0:
            raise ValueError(f"`offdiag_scale` must be positive; got {offdiag_scale!r}.")
        self.init_scale = float(init_scale)
        self.offdiag_scale = float(offdiag_scale)
        self.relative = bool(relative)
        if offdiag_units is not None and (not isinstance(offdiag_units, int) or offdiag_units <= 0):
            raise ValueError(f"`offdiag_units` must be a positive int or None; got "
                             f"{offdiag_units!r}.")
        self.offdiag_units = offdiag_units
        d = latent_dim
        self.loc_layer = tfk.layers.Dense(d, name="loc")
        # The diagonal exactly as the diagonal head; the off-diagonal units start at 0.
        self.diag_layer = tfk.layers.Dense(
            d, name="scale_diag",
            bias_initializer=tfk.initializers.Constant(softplus_inverse(self.init_scale - DIAG_SHIFT)))
        self.offdiag_layer = tfk.layers.Dense(d * (d - 1) // 2, name="scale_offdiag",
                                              kernel_initializer="zeros")
        # Optionally the correlations come from a narrow bottleneck of h: far fewer
        # parameters than 256 x D(D-1)/2 to overfit with.
        self.offdiag_bottleneck = (tfk.layers.Dense(offdiag_units, activation="tanh",
                                                    name="scale_offdiag_bottleneck")
                                   if offdiag_units else None)
        self._index = tf.constant(_strictly_lower_index(d))
        self._eye = tf.eye(d)

    @staticmethod
    def params_size(latent_dim):
        return tfpl.MultivariateNormalTriL.params_size(latent_dim)

    def scale_tril(self, h):
        """L(x), [B, D, D]: lower triangular with a positive diagonal."""
        d = self.latent_dim
        if self.offdiag_bottleneck is not None:
            h = self.offdiag_bottleneck(h)
        offdiag = self.offdiag_scale * self.offdiag_layer(h)                   # [B, D(D-1)/2]
        padded = tf.pad(offdiag, [[0, 0], [1, 0]])                             # 0 at index 0
        lower = tf.reshape(tf.gather(padded, self._index, axis=-1), [-1, d, d])
        diag = tf.nn.softplus(self.diag_layer(h)) + DIAG_SHIFT                 # [B, D]
        if self.relative:
            # L = diag(sigma) (I + M): row i's off-diagonals in units of sigma_i.
            return diag[:, :, None] * (lower + self._eye)
        return lower + diag[:, :, None] * self._eye

    def call(self, h):
        return tfd.MultivariateNormalTriL(loc=self.loc_layer(h), scale_tril=self.scale_tril(h),
                                          validate_args=self.validate_args, name="q_z")

    def get_config(self):
        return {**super().get_config(), "init_scale": self.init_scale,
                "offdiag_scale": self.offdiag_scale, "relative": self.relative,
                "offdiag_units": self.offdiag_units}

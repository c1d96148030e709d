"""Point-mass posterior q(z|x) = delta(z - f(x)): the deterministic autoencoder's encoder.

```none
z = f(x) = W h + b          sample() returns f(x) for every draw; mean() = f(x)
```
`has_density` is False: a point mass has no density with respect to Lebesgue measure, so
KL(q(z|x) || p(z)) = +inf and the ELBO is -inf. (TFP registers KL(Deterministic || p) as
-log p(loc), the cross-entropy: the "KL" against counting-measure entropy 0, not a KL between
densities; tfvae never reports it.) A tiny-variance Gaussian would fake finite numbers whose
size is set by the arbitrary variance (KL ~ -D log sigma), so it is not used. What the
aggregate of point masses costs against p(z) is estimated from samples instead
(`tfvae.evaluation.decomposition`, kNN method).
"""

from tfvae._tf import tfd, tfk
from tfvae.posteriors.base import Posterior
from tfvae.registry import POSTERIORS


@POSTERIORS.register("deterministic")
class Deterministic(Posterior):
    """q(z|x) = VectorDeterministic(loc = Dense(h)), batch [B], event [D]; no density."""

    has_density = False

    def __init__(self, latent_dim, validate_args=False, **kwargs):
        super().__init__(latent_dim, validate_args=validate_args, **kwargs)
        self.loc_layer = tfk.layers.Dense(latent_dim, name="loc")

    @staticmethod
    def params_size(latent_dim):
        return latent_dim

    def call(self, h):
        return tfd.VectorDeterministic(self.loc_layer(h), validate_args=self.validate_args,
                                       name="q_z")

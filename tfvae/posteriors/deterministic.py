"""Point-mass posterior q(z|x) = delta(z - f(x)): the deterministic autoencoder's encoder.

```none
z = f(x) = W h + b          sample() returns f(x) for every draw; mean() = f(x)
```
`has_density` is False: a point mass has no density with respect to Lebesgue measure, so
KL(q(z|x) || p(z)) = +inf and the ELBO is -inf. The head returns a `PointMass`, a
`tfd.VectorDeterministic` whose `log_prob` and KL to any distribution raise instead of
returning numbers: TFP's VectorDeterministic gives log_prob 0 at the atom (a probability
*mass*, not comparable with densities) and registers KL(Deterministic || p) as -log p(loc),
the cross-entropy (the "KL" against counting-measure entropy 0, not a KL between
densities). Either would make `--model vae --posterior deterministic` train on a finite
rate that means nothing; use model "ae". A tiny-variance Gaussian would fake finite numbers
whose size is set by the arbitrary variance (KL ~ -D log sigma), so it is not used either.
What the aggregate of point masses costs against p(z) is estimated from samples
(`tfvae.evaluation.elbo_decomposition`, kNN method and Gaussian bound).
"""

from tfvae._tf import tfd, tfk
from tfvae.posteriors.base import Posterior
from tfvae.registry import POSTERIORS

NO_DENSITY = ("q(z|x) = delta(z - f(x)) is a point mass: it has no density, so log q(z|x) "
              "and KL(q(z|x) || p(z)) (= +inf) are undefined. Train it with model 'ae' "
              "(reconstruction only), not with the 'kl' term.")


class PointMass(tfd.VectorDeterministic):
    """`tfd.VectorDeterministic` without the mass-as-density `log_prob` (see module doc)."""

    def _log_prob(self, x):
        raise ValueError(NO_DENSITY)


@tfd.RegisterKL(PointMass, tfd.Distribution)
def _kl_point_mass(a, b, name=None):
    del a, b, name
    raise ValueError(NO_DENSITY)


@POSTERIORS.register("deterministic")
class Deterministic(Posterior):
    """q(z|x) = PointMass(loc = Dense(h)), batch [B], event [D]; no density."""

    has_density = False

    def export_tensors(self, q_z, seed):
        del seed
        return {"z": q_z.mean()}

    def __init__(self, latent_dim, validate_args=False, **kwargs):
        super().__init__(latent_dim, validate_args=validate_args, **kwargs)
        self.loc_layer = tfk.layers.Dense(latent_dim, name="loc")

    def call(self, h):
        return PointMass(self.loc_layer(h), validate_args=self.validate_args, name="q_z")

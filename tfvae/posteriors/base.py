"""The posterior-head contract.

A head maps encoder features h [B, F] to q(z|x) (batch [B], event [latent_dim]) and says
what the rest of tfvae may do with it:

- `has_density`: whether `q.log_prob` exists (False for point masses and samplers);
- `export_tensors(q, seed)`: the plain tensors of the SavedModel's `encode` signature
  (every head gives `z`; Gaussians add `loc` and `scale_tril`, densities `log_q`);
- `proposal(q)`: the importance distribution for log p(x) (`tfvae.evaluation`): q itself
  for a density, a fitted density for a sampler, or None where there is none.

So export and evaluation need no case per posterior family.
"""

from tfvae import validation
from tfvae._tf import tfk


def check_latent_dim(latent_dim):
    return validation.positive_int(latent_dim, "latent_dim")


class Posterior(tfk.layers.Layer):
    """Maps encoder features h [B, F] to q(z|x): batch shape [B], event shape [latent_dim].

    Subclasses implement `call` and set `has_density`; they override `export_tensors` and
    `proposal` where the defaults (below) do not fit.

    Args:
        latent_dim: D, the number of latent dimensions.
        validate_args: passed to every tfd object the head makes.
    """

    has_density = True

    def __init__(self, latent_dim, validate_args=False, **kwargs):
        super().__init__(**kwargs)
        self.latent_dim = check_latent_dim(latent_dim)
        self.validate_args = validate_args

    @property
    def has_proposal(self):
        """Whether `proposal` gives an importance distribution (a density does)."""
        return self.has_density

    def export_tensors(self, q_z, seed):
        """{name: tensor} of the `encode` signature: a sample `z` [B, D] and, for a
        density, its `log_q` [B] (nats)."""
        z = q_z.sample(seed=seed)
        if not self.has_density:
            return {"z": z}
        return {"z": z, "log_q": q_z.log_prob(z)}

    def proposal(self, q_z):
        """The importance distribution r(z|x) for log p(x), batch [B], event [D]: q(z|x)
        itself for a density; None when the head offers none."""
        return q_z if self.has_density else None

"""The posterior-head contract."""

from tfvae._tf import tfk


def check_latent_dim(latent_dim):
    if isinstance(latent_dim, bool) or not isinstance(latent_dim, int) or latent_dim <= 0:
        raise ValueError(f"`latent_dim` must be a positive int; got {latent_dim!r}.")
    return latent_dim


class Posterior(tfk.layers.Layer):
    """Maps encoder features h [B, F] to q(z|x): batch shape [B], event shape [latent_dim].

    Subclasses set `has_density` (False for implicit posteriors that can only sample)
    and implement `params_size` and `call`.

    Args:
        latent_dim: D, the number of latent dimensions.
        validate_args: passed to every tfd object the head makes.
    """

    has_density = True

    def __init__(self, latent_dim, validate_args=False, **kwargs):
        super().__init__(**kwargs)
        self.latent_dim = check_latent_dim(latent_dim)
        self.validate_args = validate_args

    @staticmethod
    def params_size(latent_dim):
        raise NotImplementedError

    def get_config(self):
        return {**super().get_config(), "latent_dim": self.latent_dim,
                "validate_args": self.validate_args}

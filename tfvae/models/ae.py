"""Deterministic autoencoder: point-mass posterior, reconstruction loss only.

```none
z = f(x),   loss = -log p(x | f(x))
```
The baseline that shows what the KL buys. Without it nothing ties the codes f(x) to the
prior, so decoding z ~ p(z) gives images of whatever lives where the codes are not. The
ELBO of a point-mass posterior is -inf (KL(delta || p) = +inf), so `fit` reports only
`loss` and `reconstruction`, `elbo()` raises, and `tfvae.evaluation.elbo_decomposition`
estimates KL(q(z) || p(z)) of the aggregate of codes from samples (kNN).
"""

from tfvae import validation
from tfvae.models.vae import VAE
from tfvae.registry import MODELS


@MODELS.register("ae")
class AE(VAE):
    """A VAE-shaped deterministic autoencoder.

    Args:
        posterior: "deterministic" (the point mass), the only choice. Default value:
            "deterministic".
        **kwargs: the `VAE` arguments; `num_samples` must be 1 and `beta`/`kl` do not apply.
    """

    derived = ("terms", "beta", "kl", "objective", "num_samples")

    def __init__(self, posterior="deterministic", **kwargs):
        name = posterior.get("name") if isinstance(posterior, dict) else posterior
        if name != "deterministic":
            raise ValueError("Model 'ae' has a point-mass posterior: `posterior` must be "
                             f"'deterministic'; got {posterior!r}.")
        for key, default in (("num_samples", 1), ("beta", 1.0), ("objective", "elbo")):
            if kwargs.get(key, default) != default:
                raise ValueError(f"Model 'ae' is deterministic and has no KL term: `{key}` "
                                 f"does not apply; got {kwargs[key]!r}.")
        validation.choice(kwargs.get("kl", "auto"), "kl", ("auto",))
        super().__init__(posterior=posterior, terms=["reconstruction"], **kwargs)

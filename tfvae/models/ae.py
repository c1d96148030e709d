"""Deterministic autoencoder: point-mass posterior, reconstruction loss only.

```none
z = f(x),   loss = -log p(x | f(x))
```
The baseline that shows what the KL buys. Without it nothing ties the codes f(x) to the
prior, so decoding z ~ p(z) gives images of whatever lives where the codes are not. The
ELBO of a point-mass posterior is -inf (KL(delta || p) = +inf), so `fit` reports only
`loss` and `reconstruction`, `elbo()` raises, and `tfvae.evaluation.decomposition`
estimates KL(q(z) || p(z)) of the aggregate of codes from samples (kNN), which is finite
for finitely many codes only as an estimate of the smoothed code density.
"""

from tfvae.models import _family
from tfvae.models.vae import VAE
from tfvae.registry import MODELS

#: the train app's default --posterior, which `kwargs_from_args` replaces by the point mass.
APP_DEFAULT_POSTERIOR = "full_covariance"


@MODELS.register("ae")
class AE(VAE):
    """A VAE-shaped deterministic autoencoder (posterior "deterministic", one sample).

    Args:
        **kwargs: the `VAE` arguments, except that `posterior` must be "deterministic" (the
            default), `num_samples` 1, and `beta` and `kl` are meaningless (no KL term).
    """

    def __init__(self, posterior="deterministic", name="ae", **kwargs):
        _family.reject_terms(kwargs, "ae")
        _family.reject_beta(kwargs, "ae", "it has no KL term")
        if posterior != "deterministic":
            raise ValueError("Model 'ae' has a point-mass posterior: `posterior` must be "
                             f"'deterministic'; got {posterior!r}.")
        if kwargs.get("num_samples", 1) != 1:
            raise ValueError("Model 'ae' is deterministic: `num_samples` must be 1; got "
                             f"{kwargs['num_samples']!r}.")
        super().__init__(posterior=posterior, terms=["reconstruction"], name=name, **kwargs)

    def elbo(self, x, num_samples=1, seed=None):
        raise ValueError("Model 'ae' has a point-mass posterior: its ELBO is -inf "
                         "(KL(delta(z - f(x)) || p(z)) = +inf). Use compute_losses(x)"
                         "['reconstruction'] for -log p(x | f(x)).")

    def proposal(self, x):
        raise ValueError("Model 'ae' has a point-mass posterior, which is no importance "
                         "sampling proposal: log p(x) of an autoencoder is not estimated.")

    @classmethod
    def add_arguments(cls, parser):
        del parser  # no hyperparameters of its own

    @classmethod
    def kwargs_from_args(cls, args):
        # The train app passes its --posterior (default "full_covariance") to every model;
        # the autoencoder's is always the point mass. Any other explicit choice is an error.
        posterior = getattr(args, "posterior", None)
        if posterior not in (None, "deterministic", APP_DEFAULT_POSTERIOR):
            raise ValueError("Model 'ae' has a point-mass posterior: `--posterior` must be "
                             f"'deterministic' (or left out); got {posterior!r}.")
        return {"posterior": "deterministic"}

    def get_config(self):
        return _family.config_without_terms(self)

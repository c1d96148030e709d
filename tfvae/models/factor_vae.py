"""FactorVAE (Kim & Mnih 2018): the VAE plus gamma times a discriminator's TC estimate.

```none
loss_VAE = E[-log p(x|z)] + KL(q(z|x) || p(z)) + gamma * mean_B T(z)
loss_D   = -mean log sigmoid(T(z)) - mean log(1 - sigmoid(T(permute_dims(z))))
```
T is the shared `tfvae.critics.DensityRatioEstimator`, owned by the `factor_tc` term with
its own Adam optimizer; `VAE.train_step` steps it after the model's step, and the model's
optimizer never touches its variables (see `tfvae.objectives.factor_tc`). `fit` reports
`factor_tc` (the TC estimate) and `factor_tc_critic_{loss, accuracy_positive,
accuracy_negative}`.

#### References
[1] Kim & Mnih (2018), Disentangling by Factorising, arXiv:1802.05983.
"""

from tfvae._tf import tf
from tfvae.math import _check_positive
from tfvae.models import _family
from tfvae.models.vae import VAE
from tfvae.networks import check_hidden_units
from tfvae.objectives.base import check_weight
from tfvae.registry import MODELS


@MODELS.register("factor_vae")
class FactorVAE(VAE):
    """A VAE with a discriminator-estimated total-correlation penalty.

    Args:
        tc_weight: gamma, >= 0. Default value: 10.0.
        discriminator_lr: the discriminator's Adam learning rate. Default value: 1e-4
            (Kim & Mnih).
        discriminator_units: the discriminator's MLP widths. Default value: (256, 256).
        **kwargs: the `VAE` arguments (`beta` weights the KL; default 1, as in the paper).
    """

    def __init__(self, tc_weight=10.0, discriminator_lr=1e-4, discriminator_units=(256, 256),
                 name="factor_vae", **kwargs):
        _family.reject_terms(kwargs, "factor_vae")
        if callable(tc_weight):
            raise ValueError(f"`tc_weight` must be a number; got {tc_weight!r}.")
        tc_weight = check_weight(tc_weight, "tc_weight")
        discriminator_lr = _check_positive(discriminator_lr, "discriminator_lr")
        discriminator_units = check_hidden_units(discriminator_units)
        seed = _family.resolve_seed(kwargs.pop("seed", None))
        beta = check_weight(kwargs.pop("beta", 1.0), "beta")
        super().__init__(terms=["reconstruction", {"name": "kl", "weight": beta},
                                {"name": "factor_tc", "weight": tc_weight,
                                 "hidden_units": discriminator_units,
                                 "learning_rate": discriminator_lr, "seed": seed + 1}],
                         beta=beta, seed=seed, name=name, **kwargs)
        # Build the discriminator now, so its weights exist (and load) before training.
        self.terms[2].critic(tf.zeros([1, self.latent_dim]))
        self.tc_weight = tc_weight
        self.discriminator_lr = discriminator_lr
        self.discriminator_units = discriminator_units

    @classmethod
    def add_arguments(cls, parser):
        _family.add_flag(parser, "--tc-weight", type=float,
                         help="weight of the total-correlation term: beta of beta_tcvae "
                              "(default 6), gamma of factor_vae (default 10)")
        _family.add_flag(parser, "--discriminator-lr", type=float,
                         help="factor_vae: the discriminator's Adam learning rate "
                              "(default 1e-4)")

    @classmethod
    def kwargs_from_args(cls, args):
        return _family.kwargs_from(args, ["beta", "tc_weight", "discriminator_lr"])

    def get_config(self):
        return {**_family.config_without_terms(self), "tc_weight": self.tc_weight,
                "discriminator_lr": self.discriminator_lr,
                "discriminator_units": list(self.discriminator_units)}

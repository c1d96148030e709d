"""FactorVAE (Kim & Mnih 2018): a discriminator-estimated total-correlation penalty.

```none
loss = E[-log p(x|z)] + beta * KL(q(z|x) || p(z)) + gamma * mean_B T(z)
```
T is the term `factor_tc`'s critic, updated by `VAE.train_step` after the model's step.

#### References
[1] Kim & Mnih (2018), Disentangling by Factorising, arXiv:1802.05983.
"""

from tfvae import validation
from tfvae.models.vae import VAE
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

    derived = ("terms", "objective")

    def __init__(self, tc_weight=10.0, discriminator_lr=1e-4, discriminator_units=(256, 256),
                 beta=1.0, **kwargs):
        validation.non_negative(tc_weight, "tc_weight")
        validation.positive(discriminator_lr, "discriminator_lr")
        super().__init__(beta=beta, terms=[
            "reconstruction", {"name": "kl", "weight": check_weight(beta, "beta")},
            {"name": "factor_tc", "weight": tc_weight, "hidden_units": discriminator_units,
             "learning_rate": discriminator_lr}], **kwargs)
        term = self.terms[2]
        self.tc_weight, self.discriminator_lr, self.discriminator_units = (
            term.weight, term.learning_rate, term.hidden_units)

"""beta-VAE (Higgins et al. 2017): the KL weighted by beta, optionally warmed up.

```none
loss = E[-log p(x|z)] + beta(step) * KL(q(z|x) || p(z))
beta(step) = beta * min(1, step / warmup_steps)       (Bowman et al. 2016), if warmed up
```

#### References
[1] Higgins et al. (2017), beta-VAE: Learning Basic Visual Concepts with a Constrained
    Variational Framework, ICLR.
[2] Bowman et al. (2016), Generating Sentences from a Continuous Space, arXiv:1511.06349.
"""

from tfvae import validation
from tfvae.models.vae import VAE
from tfvae.registry import MODELS
from tfvae.schedules import warmup


@MODELS.register("beta_vae")
class BetaVAE(VAE):
    """A VAE whose KL weight is beta, optionally warmed up linearly from 0.

    Args:
        beta: the KL weight, >= 0. Default value: 4.0.
        warmup_steps: if set, beta rises linearly from 0 to `beta` over this many optimizer
            steps. Default value: None (no warm-up).
        **kwargs: the `VAE` arguments.
    """

    derived = ("terms", "objective")

    def __init__(self, beta=4.0, warmup_steps=None, **kwargs):
        beta = validation.non_negative(beta, "beta")
        self.warmup_steps = (None if warmup_steps is None
                             else validation.positive_int(warmup_steps, "warmup_steps"))
        weight = beta if warmup_steps is None else warmup(beta, self.warmup_steps)
        super().__init__(beta=beta, terms=["reconstruction", {"name": "kl", "weight": weight}],
                         **kwargs)

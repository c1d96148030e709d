"""beta-VAE with optional KL warm-up.

```none
loss = E[-log p(x|z)] + beta(step) * KL(q(z|x) || p(z))
beta(step) = beta                                   (Higgins et al. 2017)
beta(step) = beta * min(1, step / warmup_steps)     with warm-up (Bowman et al. 2016;
                                                    Sonderby et al. 2016)
```
beta > 1 trades reconstruction for a lower rate (and, empirically, more factorized codes);
warm-up starts as a plain autoencoder and lets the KL in gradually, which avoids early
posterior collapse. beta is a weight, not a new term.

#### References
[1] Higgins et al. (2017), beta-VAE: Learning Basic Visual Concepts with a Constrained
    Variational Framework, ICLR.
[2] Bowman et al. (2016), Generating Sentences from a Continuous Space, arXiv:1511.06349.
[3] Sonderby et al. (2016), Ladder Variational Autoencoders, arXiv:1602.02282.
"""

from tfvae.models import _family
from tfvae.models.vae import VAE
from tfvae.objectives.base import check_weight
from tfvae.registry import MODELS
from tfvae.schedules import check_steps, warmup


# Higgins et al.'s common choice; beta = 1 is the plain VAE ("vae").
DEFAULT_BETA = 4.0


@MODELS.register("beta_vae")
class BetaVAE(VAE):
    """A VAE whose KL weight is beta, optionally warmed up linearly from 0.

    Args:
        beta: the KL weight, >= 0 (a float). Default value: 4.0.
        warmup_steps: if set, beta rises linearly from 0 to `beta` over this many optimizer
            steps (a positive int). Default value: None (no warm-up).
        **kwargs: the `VAE` arguments (latent_dim, posterior, likelihood, ...).
    """

    def __init__(self, beta=DEFAULT_BETA, warmup_steps=None, name="beta_vae", **kwargs):
        _family.reject_terms(kwargs, "beta_vae")
        if callable(beta):
            raise ValueError("`beta` of model 'beta_vae' must be a number; use "
                             f"`warmup_steps` for a schedule; got {beta!r}.")
        beta = check_weight(beta, "beta")
        if warmup_steps is not None:
            warmup_steps = check_steps(warmup_steps, "warmup_steps")
        weight = beta if warmup_steps is None else warmup(beta, warmup_steps)
        super().__init__(beta=beta, terms=["reconstruction", {"name": "kl", "weight": weight}],
                         name=name, **kwargs)
        self.warmup_steps = warmup_steps

    @classmethod
    def add_arguments(cls, parser):
        # Redefines the train app's --beta (default 1) so `--model beta_vae` alone means
        # this class's default beta; the app's parser lets a model's definition win.
        parser.add_argument("--beta", type=float, default=None,
                            help=f"beta_vae: the KL weight beta (default {DEFAULT_BETA:g})")
        _family.add_flag(parser, "--warmup-steps", type=int, metavar="N",
                         help="beta_vae: raise the KL weight linearly from 0 to beta over N "
                              "optimizer steps (KL warm-up)")

    @classmethod
    def kwargs_from_args(cls, args):
        kwargs = _family.kwargs_from(args, ["beta", "warmup_steps"])
        kwargs.setdefault("beta", DEFAULT_BETA)
        return kwargs

    def get_config(self):
        return {**_family.config_without_terms(self), "warmup_steps": self.warmup_steps}

"""Adversarial Variational Bayes: an implicit posterior trained against a critic T(x, z).

```none
encoder   z = g(x, eps), eps ~ N(0, I)        q(z|x) has no density (posterior "implicit")
critic    T(x, z), logistic loss: q(z|x) samples vs p(z) samples; T* = log q(z|x) - log p(z)
model     max  E_q[log p(x|z) - beta * T(x, z)]     = the ELBO when T = T*
```
A recipe: posterior "implicit" and the terms reconstruction + beta * "avb". The "avb" term
owns T and declares that its `discriminator_steps` updates come *before* the model's step,
on fresh samples (Mescheder et al.'s Alg. 1), so the encoder's gradient uses a T fitted to
the current q; `VAE.train_step` runs them. The term's value estimates the KL, so the
model reports `kl` and `elbo` from it: *estimates*, not bounds (a misfit critic misjudges
the KL either way). The critic's diagnostics are `avb_critic_loss`,
`avb_critic_accuracy_positive` (share of q samples called q) and
`avb_critic_accuracy_negative` (share of p samples called p); with adaptive contrast also
`avb_contrast_kl`, the estimate E_q[T] of KL(q || r).

log p(x) is evaluated honestly by importance sampling (`tfvae.evaluation.log_likelihood`)
with the implicit posterior's `proposal`, a Gaussian fitted to samples of q(z|x).

#### References
[1] Mescheder, Nowozin & Geiger (2017), Adversarial Variational Bayes: Unifying Variational
    Autoencoders and Generative Adversarial Networks, arXiv:1701.04722.
"""

from tfvae.models.vae import VAE
from tfvae.registry import MODELS


@MODELS.register("avb")
class AVB(VAE):
    """A VAE whose posterior is a sampler, trained with a discriminator T(x, z).

    Args:
        posterior: default "implicit"; a Gaussian head ("diagonal", "full_covariance")
            also works, e.g. to check the adversarial KL against the analytic one.
        adaptive_contrast: use AVB's adaptive contrast (Sec. 3.3). Default value: False.
        discriminator_steps: critic updates per train step. Default value: 1.
        discriminator_lr: the critic's Adam learning rate. Default value: 1e-3.
        discriminator_units: hidden widths of the critic's x and z networks.
            Default value: (256, 256).
        moment_samples: draws of q(z|x) for the moments of r(z|x) (AC). Default value: 64.
        contrast_covariance: r(z|x)'s covariance (AC), "diagonal" or "full" (see
            `tfvae.objectives.avb.AVBTerm`). Default value: "diagonal".
        gaussian_part: AC's E_q[log r - log p], "sampled" or "analytic" (KL(r || p) in
            closed form; see `tfvae.objectives.avb.AVBTerm`). Default value: "sampled".
        critic_average: the decay of the moving average of the critic's weights that
            estimates outside the training step read T from (the step itself uses the last
            critic; see `tfvae.objectives.avb.AVBTerm`, which says why it is off by
            default); None: the last critic everywhere. Default value: None.
        beta: the weight of the adversarial KL. Default value: 1.0.
        **kwargs: the other `VAE` arguments.
    """

    derived = ("terms", "kl", "objective")

    def __init__(self, posterior="implicit", adaptive_contrast=False, discriminator_steps=1,
                 discriminator_lr=1e-3, discriminator_units=(256, 256), moment_samples=64,
                 contrast_covariance="diagonal", critic_average=None, gaussian_part="sampled",
                 beta=1.0, **kwargs):
        for key, default in (("kl", "auto"), ("objective", "elbo"), ("terms", None)):
            if kwargs.get(key, default) != default:
                raise ValueError(f"AVB builds its objective itself (reconstruction + beta * "
                                 f"adversarial KL); `{key}` cannot be set; got {kwargs[key]!r}.")
        super().__init__(posterior=posterior, beta=beta, terms=["reconstruction", {
            "name": "avb", "weight": beta, "adaptive_contrast": adaptive_contrast,
            "discriminator_steps": discriminator_steps, "discriminator_lr": discriminator_lr,
            "discriminator_units": discriminator_units, "moment_samples": moment_samples,
            "contrast_covariance": contrast_covariance, "critic_average": critic_average,
            "gaussian_part": gaussian_part}],
            **kwargs)
        term = self.avb_term
        self.adaptive_contrast, self.discriminator_steps = (term.adaptive_contrast,
                                                            term.discriminator_steps)
        self.discriminator_lr, self.discriminator_units = (term.discriminator_lr,
                                                           term.discriminator_units)
        self.moment_samples = term.moment_samples
        self.contrast_covariance = term.contrast_covariance
        self.gaussian_part = term.gaussian_part
        self.critic_average = term.critic.average

    @property
    def avb_term(self):
        """The `AVBTerm` that owns the discriminator T(x, z)."""
        return self.terms[1]

    @property
    def discriminator(self):
        """T(x, z), a `tfvae.critics.DensityRatioEstimator` with its own optimizer."""
        return self.avb_term.critic

"""InfoVAE (Zhao et al. 2019): the KL reweighted and an MMD between q(z) and p(z) added.

```none
loss = E[-log p(x|z)] + (1 - alpha) * KL(q(z|x) || p(z)) + (alpha + lambda - 1) * MMD^2
```
alpha = 0, lambda = 1000 is Zhao et al.'s MMD-VAE setting.

#### References
[1] Zhao, Song & Ermon (2019), InfoVAE: Balancing Learning and Inference in Variational
    Autoencoders, arXiv:1706.02262, Eq. 6.
"""

from tfvae import validation
from tfvae.models.vae import VAE
from tfvae.registry import MODELS


@MODELS.register("info_vae")
class InfoVAE(VAE):
    """A VAE with KL weight 1 - alpha and MMD weight alpha + lambda - 1.

    Args:
        alpha: <= 1. Default value: 0.0.
        lambda_mmd: lambda > 0, with alpha + lambda >= 1. Default value: 1000.0.
        kernel: "rbf" or "imq". Default value: "rbf".
        kernel_bandwidth: h^2 (rbf) or C (imq); None matches it to the prior.
        **kwargs: the `VAE` arguments.
    """

    derived = ("terms", "beta", "objective")

    def __init__(self, alpha=0.0, lambda_mmd=1000.0, kernel="rbf", kernel_bandwidth=None,
                 **kwargs):
        self.alpha = validation.real(alpha, "alpha (the KL weight is 1 - alpha)", maximum=1.0)
        self.lambda_mmd = validation.positive(lambda_mmd, "lambda_mmd")
        validation.non_negative(self.alpha + self.lambda_mmd - 1.0,
                                "alpha + lambda_mmd - 1 (the MMD weight)")
        super().__init__(terms=[
            "reconstruction", {"name": "kl", "weight": 1.0 - self.alpha},
            {"name": "mmd", "weight": self.alpha + self.lambda_mmd - 1.0, "kernel": kernel,
             "bandwidth": kernel_bandwidth}], **kwargs)
        self.kernel, self.kernel_bandwidth = self.terms[2].kernel, self.terms[2].bandwidth

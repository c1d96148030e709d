"""InfoVAE (Zhao et al.): KL reweighted and an MMD between q(z) and p(z) added.

```none
loss = E[-log p(x|z)] + (1 - alpha) * KL(q(z|x) || p(z))
       + (alpha + lambda - 1) * MMD^2(q(z), p(z))                       (Zhao et al., Eq. 6)
alpha <= 1,  lambda > 0,  alpha + lambda - 1 >= 0   (both weights non-negative)
```
alpha = 0, lambda = 1 is the VAE; alpha = 1 drops the per-example KL (the MMD-VAE /
WAE-MMD regime, which keeps I_q(x; z) high); large lambda forces q(z) onto p(z).

#### References
[1] Zhao, Song & Ermon (2019), InfoVAE: Balancing Learning and Inference in Variational
    Autoencoders, arXiv:1706.02262.
"""

import math
import numbers

from tfvae.math import KERNELS, check_kernel
from tfvae.models import _family
from tfvae.models.vae import VAE
from tfvae.registry import MODELS


def _check_real(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or not math.isfinite(value):
        raise ValueError(f"`{name}` must be a finite number; got {value!r}.")
    return float(value)


@MODELS.register("info_vae")
class InfoVAE(VAE):
    """A VAE with KL weight 1 - alpha and MMD weight alpha + lambda - 1.

    Args:
        alpha: <= 1. Default value: 0.0.
        lambda_mmd: lambda > 0, with alpha + lambda >= 1. Default value: 1000.0 (Zhao et
            al.'s MMD-VAE setting).
        kernel: "rbf" or "imq". Default value: "rbf".
        kernel_bandwidth: h^2 (rbf) or C (imq); None matches it to the prior.
        **kwargs: the `VAE` arguments.
    """

    def __init__(self, alpha=0.0, lambda_mmd=1000.0, kernel="rbf", kernel_bandwidth=None,
                 name="info_vae", **kwargs):
        _family.reject_terms(kwargs, "info_vae")
        _family.reject_beta(kwargs, "info_vae", "its KL weight is 1 - `alpha`")
        alpha = _check_real(alpha, "alpha")
        lambda_mmd = _check_real(lambda_mmd, "lambda_mmd")
        if alpha > 1:
            raise ValueError(f"`alpha` must be <= 1 (the KL weight is 1 - alpha); got {alpha!r}.")
        if lambda_mmd <= 0:
            raise ValueError(f"`lambda_mmd` must be > 0; got {lambda_mmd!r}.")
        if alpha + lambda_mmd - 1 < 0:
            raise ValueError("`alpha + lambda_mmd - 1` (the MMD weight) must be >= 0; got "
                             f"alpha={alpha!r}, lambda_mmd={lambda_mmd!r}.")
        kernel = check_kernel(kernel)
        seed = _family.resolve_seed(kwargs.pop("seed", None))
        super().__init__(terms=["reconstruction", {"name": "kl", "weight": 1.0 - alpha},
                                {"name": "mmd", "weight": alpha + lambda_mmd - 1.0,
                                 "kernel": kernel, "bandwidth": kernel_bandwidth,
                                 "seed": seed + 1}],
                         seed=seed, name=name, **kwargs)
        self.alpha = alpha
        self.lambda_mmd = lambda_mmd
        self.kernel = kernel
        self.kernel_bandwidth = self.terms[2].bandwidth

    @classmethod
    def add_arguments(cls, parser):
        _family.add_flag(parser, "--alpha", type=float,
                         help="info_vae: alpha <= 1; the KL weight is 1 - alpha (default 0)")
        _family.add_flag(parser, "--lambda-mmd", type=float,
                         help="info_vae: lambda > 0; the MMD weight is alpha + lambda - 1 "
                              "(default 1000)")
        _family.add_flag(parser, "--kernel", choices=list(KERNELS),
                         help="info_vae: MMD kernel, rbf (default) or imq")

    @classmethod
    def kwargs_from_args(cls, args):
        return _family.kwargs_from(args, ["alpha", "lambda_mmd", "kernel"])

    def get_config(self):
        return {**_family.config_without_terms(self), "alpha": self.alpha,
                "lambda_mmd": self.lambda_mmd, "kernel": self.kernel,
                "kernel_bandwidth": self.kernel_bandwidth}

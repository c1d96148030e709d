"""Maximum mean discrepancy between the aggregate posterior q(z) and the prior p(z).

```none
MMD^2(q(z), p(z)) ~= unbiased U-statistic over the batch's z ~ q(z) and as many z' ~ p(z)
InfoVAE:  loss = E[-log p(x|z)] + (1 - alpha) * KL(q(z|x) || p(z))
                 + (alpha + lambda - 1) * MMD^2(q(z), p(z))           (Zhao et al., Eq. 6)
```
The prior samples are a fresh draw per step from the pass's seed (`fwd.seed_for`). Kernels
("rbf", "imq") and their default bandwidths are in `tfvae.kernels`.

#### References
[1] Zhao, Song & Ermon (2019), InfoVAE: Balancing Learning and Inference in Variational
    Autoencoders, arXiv:1706.02262, Eq. 6 and Sec. 4.
[2] Gretton et al. (2012), A Kernel Two-Sample Test, JMLR 13.
"""

from tfvae import validation
from tfvae._tf import tf
from tfvae.kernels import check_kernel, mmd
from tfvae.objectives.base import Term
from tfvae.registry import TERMS


@TERMS.register("mmd")
class MMDTerm(Term):
    """MMD^2 between the batch's posterior samples and prior samples, a scalar.

    Args:
        weight: a non-negative float or a schedule. Default value: 1.0.
        kernel: "rbf" or "imq". Default value: "rbf" (Zhao et al.'s choice).
        bandwidth: h^2 (rbf) or C (imq); None matches it to N(0, I) in D dimensions.
    """

    def __init__(self, weight=1.0, kernel="rbf", bandwidth=None, name=None):
        super().__init__(weight=weight, name=name)
        self.kernel = check_kernel(kernel)
        self.bandwidth = None if bandwidth is None else validation.positive(bandwidth,
                                                                            "bandwidth")

    def __call__(self, fwd):
        z = tf.reshape(fwd.z, [-1, fwd.z.shape[-1]])                        # [S*B, D]
        prior = fwd.p_z.sample(tf.shape(z)[0], seed=fwd.seed_for(self.name))
        return mmd(z, prior, kernel=self.kernel, bandwidth=self.bandwidth, unbiased=True)

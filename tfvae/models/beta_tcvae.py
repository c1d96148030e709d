"""beta-TCVAE (Chen et al. 2018): the rate split into MI, TC and dimension-wise KL, reweighted.

```none
loss = E[-log p(x|z)] + alpha * I_q(x; z) + beta * TC(q(z)) + gamma * sum_d KL(q(z_d) || p(z_d))
```
Each part is the minibatch estimate of `tfvae.aggregate.minibatch_decomposition` (MSS or
MWS), which needs N, the number of training examples (`dataset_size`; the train app passes
it). Chen et al. penalize only the TC (alpha = gamma = 1, beta > 1).

#### References
[1] Chen, Li, Grosse & Duvenaud (2018), Isolating Sources of Disentanglement in VAEs,
    arXiv:1802.04942, Eq. 4.
"""

from tfvae import validation
from tfvae._tf import tf
from tfvae.aggregate import gaussian_marginals
from tfvae.models.vae import VAE
from tfvae.registry import MODELS


@MODELS.register("beta_tcvae")
class BetaTCVAE(VAE):
    """A VAE penalizing index-code MI, total correlation and dimension-wise KL separately.

    Args:
        mi_weight: alpha, >= 0. Default value: 1.0.
        tc_weight: beta, >= 0. Default value: 6.0 (Chen et al.'s dSprites setting).
        dim_kl_weight: gamma, >= 0. Default value: 1.0.
        estimator: "mss" or "mws". Default value: "mss".
        **kwargs: the `VAE` arguments, with `dataset_size` required; the posterior must be
            Gaussian.
    """

    derived = ("terms", "beta", "objective")

    def __init__(self, mi_weight=1.0, tc_weight=6.0, dim_kl_weight=1.0, estimator="mss",
                 **kwargs):
        if kwargs.get("dataset_size") is None:
            raise ValueError("Model 'beta_tcvae' needs `dataset_size`, the number of training "
                             "examples N (e.g. 60000 for Fashion-MNIST); got None.")
        for key, value in (("mi_weight", mi_weight), ("tc_weight", tc_weight),
                           ("dim_kl_weight", dim_kl_weight)):
            validation.non_negative(value, key)
        super().__init__(terms=["reconstruction"] + [
            {"name": part, "weight": weight, "estimator": estimator}
            for part, weight in (("mi", mi_weight), ("tc", tc_weight),
                                 ("dim_kl", dim_kl_weight))], **kwargs)
        # The dimension-wise parts need Gaussian marginals: fail now, not at the first step.
        gaussian_marginals(self.encode(tf.zeros((1, *self.image_shape))))
        self.mi_weight, self.tc_weight, self.dim_kl_weight = (t.weight for t in self.terms[1:])
        self.estimator = self.terms[1].estimator

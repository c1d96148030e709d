"""beta-TCVAE (Chen et al. 2018): the rate split into MI, TC and dimension-wise KL, reweighted.

```none
loss = E[-log p(x|z)] + alpha * I_q(x; z) + beta * TC(q(z)) + gamma * sum_d KL(q(z_d) || p(z_d))
```
Each part is the minibatch estimate of `tfvae.math.minibatch_decomposition` (MSS or MWS),
which needs N, the number of training examples (`dataset_size`). With
alpha = beta = gamma = 1 the three terms sum to the Monte-Carlo KL of the same samples:
the plain VAE. Chen et al. penalize only the TC (alpha = gamma = 1, beta > 1).

#### References
[1] Chen, Li, Grosse & Duvenaud (2018), Isolating Sources of Disentanglement in VAEs,
    arXiv:1802.04942, Eq. 4.
"""

from tfvae._tf import tf
from tfvae.math import ESTIMATORS, check_dataset_size, check_estimator, gaussian_marginals
from tfvae.models import _family
from tfvae.models.vae import VAE
from tfvae.objectives.base import check_weight
from tfvae.registry import MODELS


@MODELS.register("beta_tcvae")
class BetaTCVAE(VAE):
    """A VAE penalizing index-code MI, total correlation and dimension-wise KL separately.

    Args:
        dataset_size: N, the number of training examples (required; the train app passes
            the training split's size).
        mi_weight: alpha, >= 0. Default value: 1.0.
        tc_weight: beta, >= 0. Default value: 6.0 (Chen et al.'s dSprites setting).
        dim_kl_weight: gamma, >= 0. Default value: 1.0.
        estimator: "mss" or "mws". Default value: "mss".
        **kwargs: the `VAE` arguments; the posterior must be Gaussian.
    """

    needs_dataset_size = True

    def __init__(self, dataset_size=None, mi_weight=1.0, tc_weight=6.0, dim_kl_weight=1.0,
                 estimator="mss", name="beta_tcvae", **kwargs):
        _family.reject_terms(kwargs, "beta_tcvae")
        _family.reject_beta(kwargs, "beta_tcvae",
                            "its rate weights are mi_weight, tc_weight and dim_kl_weight")
        if dataset_size is None:
            raise ValueError("Model 'beta_tcvae' needs `dataset_size`, the number of training "
                             "examples N (e.g. 60000 for Fashion-MNIST); got None.")
        dataset_size = check_dataset_size(dataset_size)
        weights = {}
        for key, value in (("mi_weight", mi_weight), ("tc_weight", tc_weight),
                           ("dim_kl_weight", dim_kl_weight)):
            if callable(value):
                raise ValueError(f"`{key}` must be a number; got {value!r}.")
            weights[key] = check_weight(value, key)
        estimator = check_estimator(estimator)
        part = {"dataset_size": dataset_size, "estimator": estimator}
        super().__init__(terms=["reconstruction",
                                {"name": "mi", "weight": weights["mi_weight"], **part},
                                {"name": "tc", "weight": weights["tc_weight"], **part},
                                {"name": "dim_kl", "weight": weights["dim_kl_weight"], **part}],
                         name=name, **kwargs)
        # The dimension-wise parts need Gaussian marginals: fail now, not at the first step.
        gaussian_marginals(self.encode(tf.zeros((1, *self.image_shape))))
        self.dataset_size = dataset_size
        self.mi_weight = weights["mi_weight"]
        self.tc_weight = weights["tc_weight"]
        self.dim_kl_weight = weights["dim_kl_weight"]
        self.estimator = estimator

    @classmethod
    def add_arguments(cls, parser):
        _family.add_flag(parser, "--mi-weight", type=float,
                         help="beta_tcvae: weight alpha of the index-code MI (default 1)")
        _family.add_flag(parser, "--tc-weight", type=float,
                         help="weight of the total-correlation term: beta of beta_tcvae "
                              "(default 6), gamma of factor_vae (default 10)")
        _family.add_flag(parser, "--dim-kl-weight", type=float,
                         help="beta_tcvae: weight gamma of the dimension-wise KL (default 1)")
        _family.add_flag(parser, "--estimator", choices=list(ESTIMATORS),
                         help="beta_tcvae: minibatch estimator of log q(z), stratified "
                              "(mss, default) or weighted (mws) sampling")

    @classmethod
    def kwargs_from_args(cls, args):
        return _family.kwargs_from(args, ["dataset_size", "mi_weight", "tc_weight",
                                          "dim_kl_weight", "estimator"])

    def get_config(self):
        return {**_family.config_without_terms(self), "dataset_size": self.dataset_size,
                "mi_weight": self.mi_weight, "tc_weight": self.tc_weight,
                "dim_kl_weight": self.dim_kl_weight, "estimator": self.estimator}

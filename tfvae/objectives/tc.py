"""Total correlation TC(q(z)) by minibatch weighted or stratified sampling (beta-TCVAE).

```none
TC(q(z)) = KL(q(z) || prod_d q(z_d)) ~= mean_i [log q^(z_i) - sum_d log q^(z_id)]
beta-TCVAE:  loss = E[-log p(x|z)] + alpha * MI + beta * TC + gamma * dim_KL
```
log q^ are the minibatch estimates of `tfvae.aggregate.minibatch_log_qz` (Chen et al. 2018):
they need N, the size of the training set the aggregate posterior averages over
(`dataset_size`). The index-code MI (`mi`), TC (`tc`) and dimension-wise KL (`dim_kl`) terms
share one O(M^2 D) computation per forward pass; with weights 1, 1, 1 they sum to the
Monte-Carlo KL of the same samples, so beta-TCVAE with alpha = beta = gamma = 1 is the VAE.

The estimates are logs of unbiased estimates of q(z), so they are biased low, and badly so
for the joint when posteriors are sharp (I_q(x; z) >> log M): the few training examples
whose posteriors overlap z_i are almost never in the batch, so log q^(z_i) is usually just
log q(z_i|x_i) - log N, while each one-dimensional marginal is estimated well. The
minibatch TC is then biased low and can be negative: -1.3 nats during beta-TCVAE training on
Fashion-MNIST (M = 128, N = 60000, MI ~ 10 nats). Larger batches shrink the bias.

#### References
[1] Chen, Li, Grosse & Duvenaud (2018), Isolating Sources of Disentanglement in VAEs,
    arXiv:1802.04942, Eq. 2 and Eq. 4.
"""

from tfvae._tf import tf
from tfvae.aggregate import check_dataset_size, check_estimator, minibatch_decomposition
from tfvae.objectives.base import Term
from tfvae.registry import TERMS


def fwd_decomposition(fwd, dataset_size, estimator):
    """Per-sample mi/tc/dim_kl [S, B] for this forward pass, computed once and shared by
    the `mi`, `tc` and `dim_kl` terms (the pass's memo). Raises a TypeError naming the
    posterior when q(z|x) is not Gaussian."""
    return fwd.memo(("minibatch_decomposition", estimator, dataset_size),
                    lambda: minibatch_decomposition(fwd.q_z, fwd.z, fwd.p_z, dataset_size,
                                                    estimator))


class MinibatchDecompositionTerm(Term):
    """Base of the `mi`, `tc` and `dim_kl` terms: one part of the minibatch decomposition.

    Args:
        weight: a non-negative float or a schedule. Default value: 1.0.
        dataset_size: N, the number of training examples (required).
        estimator: "mss" (minibatch stratified sampling) or "mws" (minibatch weighted
            sampling). Default value: "mss".
    """

    #: the key of `minibatch_decomposition`'s result this term reports.
    part = None

    def __init__(self, weight=1.0, dataset_size=None, estimator="mss", name=None):
        super().__init__(weight=weight, name=name)
        if dataset_size is None:
            raise ValueError(f"Term {self.registry_name!r} needs `dataset_size`, the number of "
                             "training examples N that the aggregate posterior q(z) averages "
                             "over (e.g. 60000 for Fashion-MNIST); got None.")
        self.dataset_size = check_dataset_size(dataset_size)
        self.estimator = check_estimator(estimator)

    def __call__(self, fwd):
        return tf.reduce_mean(fwd_decomposition(fwd, self.dataset_size, self.estimator)[self.part])


@TERMS.register("tc")
class TCTerm(MinibatchDecompositionTerm):
    """TC(q(z)) = KL(q(z) || prod_d q(z_d)), a scalar in nats (minibatch estimate)."""

    part = "tc"

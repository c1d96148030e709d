"""Dimension-wise KL sum_d KL(q(z_d) || p(z_d)) of the aggregate posterior, minibatch estimate.

```none
sum_d KL(q(z_d) || p(z_d)) ~= mean_i sum_d [log q^(z_id) - log p(z_id)]
```
See `tfvae.objectives.tc` for the estimators and beta-TCVAE.
"""

from tfvae.objectives.tc import MinibatchDecompositionTerm
from tfvae.registry import TERMS


@TERMS.register("dim_kl")
class DimKLTerm(MinibatchDecompositionTerm):
    """sum_d KL(q(z_d) || p(z_d)), a scalar in nats (minibatch estimate)."""

    part = "dim_kl"

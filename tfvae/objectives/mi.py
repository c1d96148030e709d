"""Index-code mutual information I_q(x; z) = E_x KL(q(z|x) || q(z)), minibatch estimate.

```none
I_q(x; z) ~= mean_i [log q(z_i | x_i) - log q^(z_i)]
```
See `tfvae.objectives.tc` for the estimators and beta-TCVAE.
"""

from tfvae.objectives.tc import MinibatchDecompositionTerm
from tfvae.registry import TERMS


@TERMS.register("mi")
class MITerm(MinibatchDecompositionTerm):
    """I_q(x; z), a scalar in nats (minibatch estimate)."""

    part = "mi"

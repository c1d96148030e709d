"""The importance-weighted bound as a training objective (Burda et al. 2016).

```none
L_k(x) = E[ log (1/k) sum_j p(x, z_j) / q(z_j|x) ],   z_1..z_k ~ q(z|x)
ELBO = L_1 <= L_k <= L_{k+1} <= log p(x)
```
The term is -L_k per example (nats); k is the model's `num_samples`. Gradients flow through
the reparameterized z_j, weighted by their normalized importance weights.

#### References
[1] Burda, Grosse & Salakhutdinov (2016), Importance Weighted Autoencoders, arXiv:1509.00519.
"""


from tfvae._tf import tf
from tfvae.objectives.base import Term
from tfvae.registry import TERMS


@TERMS.register("iwae")
class IWAETerm(Term):
    """-L_k(x), [B] nats, with k = the number of samples in the forward pass."""

    def __call__(self, fwd):
        log_w = fwd.log_px_given_z + fwd.log_pz - fwd.log_qz  # [S, B]
        num_samples = tf.cast(tf.shape(log_w)[0], log_w.dtype)
        return -(tf.reduce_logsumexp(log_w, axis=0) - tf.math.log(num_samples))



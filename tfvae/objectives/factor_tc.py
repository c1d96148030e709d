"""FactorVAE's total correlation, estimated by a discriminator (the density-ratio trick).

```none
D(z) = sigmoid(T(z)) tells z ~ q(z) (label 1) from z~ ~ prod_d q(z_d) (label 0; `permute_dims`)
T*(z) = log q(z) - log prod_d q(z_d)     =>   TC(q(z)) = E_q(z)[T*(z)] ~= mean_B T(z)
FactorVAE:  loss = E[-log p(x|z)] + KL(q(z|x) || p(z)) + gamma * mean_B T(z)
```
The term's value reaches the encoder through z (gradients flow into T's *input*), while T's
own variables move only by its logistic loss, in `update_critic`, which the model calls
after its own step on stopped-gradient samples: the VAE optimizer never sees them (the model
splits variables by ownership, `VAE.model_variables`). T is the shared
`tfvae.critics.DensityRatioEstimator` with its own Adam optimizer.

Both the positive and the permuted samples come from the same batch (Kim & Mnih draw a
second batch; with one batch per train_step, permuting it is the common simplification).

#### References
[1] Kim & Mnih (2018), Disentangling by Factorising, arXiv:1802.05983, Eq. 3 and Alg. 1.
"""

from tfvae import validation
from tfvae._tf import tf, tfk
from tfvae.aggregate import permute_dims
from tfvae.critics import DensityRatioEstimator
from tfvae.objectives.base import Term
from tfvae.registry import TERMS


@TERMS.register("factor_tc")
class FactorTCTerm(Term):
    """mean_B T(z), the discriminator's estimate of TC(q(z)), a scalar in nats.

    Args:
        weight: gamma, >= 0. Default value: 1.0.
        hidden_units: the discriminator's MLP widths. Default value: (256, 256).
        learning_rate: the discriminator's Adam learning rate. Default value: 1e-4 with
            beta_1 = 0.5, beta_2 = 0.9 (Kim & Mnih's settings).
    """

    critic_order = "after"

    def __init__(self, weight=1.0, hidden_units=(256, 256), learning_rate=1e-4, name=None):
        super().__init__(weight=weight, name=name)
        self.hidden_units = validation.positive_ints(hidden_units, "hidden_units")
        self.learning_rate = validation.positive(learning_rate, "learning_rate")
        self.critic = DensityRatioEstimator(
            hidden_units=self.hidden_units,
            optimizer=tfk.optimizers.Adam(self.learning_rate, beta_1=0.5, beta_2=0.9),
            name=f"{self.name}_critic")

    def build_critic(self, image_shape, latent_dim):
        self.critic.build_for(tf.zeros([1, latent_dim]))

    @staticmethod
    def _flat(z):
        return tf.reshape(z, [-1, z.shape[-1]])                              # [S*B, D]

    def __call__(self, fwd):
        return tf.reduce_mean(self.critic(self._flat(fwd.z)))

    def _batch(self, fwd, seed):
        z = tf.stop_gradient(self._flat(fwd.z))
        return z, permute_dims(z, seed)

    def update_critic(self, fwd, seed):
        return self.critic.update(*self._batch(fwd, seed))

    def critic_metrics(self, fwd, seed):
        return self.critic.metrics(*self._batch(fwd, seed))

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

from tfvae._tf import tf, tfk
from tfvae.critics import DensityRatioEstimator
from tfvae.math import _check_positive, permute_dims
from tfvae.networks import check_hidden_units
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
        seed: seeds the permutations. Default value: 0.
    """

    batch_level = True

    def __init__(self, weight=1.0, hidden_units=(256, 256), learning_rate=1e-4, seed=0,
                 name=None):
        super().__init__(weight=weight, name=name)
        self.hidden_units = check_hidden_units(hidden_units)
        self.learning_rate = _check_positive(learning_rate, "learning_rate")
        self.seed = int(seed)
        self.rng = tf.random.Generator.from_seed(self.seed)
        self.critic = DensityRatioEstimator(
            hidden_units=self.hidden_units,
            optimizer=tfk.optimizers.Adam(self.learning_rate, beta_1=0.5, beta_2=0.9),
            name=f"{self.name}_critic")

    def _flat(self, z):
        latent_dim = z.shape[-1]
        if not self.critic.built:
            # Build T's weights eagerly, even when first called while tracing a train step:
            # the critic flattens its input dynamically, so a traced first call would see an
            # unknown feature size.
            with tf.init_scope():
                self.critic(tf.zeros([1, latent_dim]))
        return tf.reshape(z, [-1, latent_dim])                                # [S*B, D]

    def __call__(self, fwd):
        return tf.reduce_mean(self.critic(self._flat(fwd.z)))

    def update_critic(self, fwd):
        z = tf.stop_gradient(self._flat(fwd.z))
        permuted = permute_dims(z, self.rng.uniform_full_int([2], dtype=tf.int32))
        return self.critic.update(z, permuted)

    def get_config(self):
        return {**super().get_config(), "hidden_units": list(self.hidden_units),
                "learning_rate": self.learning_rate, "seed": self.seed}

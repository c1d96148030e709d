"""The density-ratio estimator: one critic class for every place that needs one.

A classifier D = sigmoid(T) trained with the logistic loss to tell samples of p (label 1)
from samples of q (label 0) has, at its optimum,

```none
T*(u) = log p(u) - log q(u)                 (AVB Prop. 1; Sugiyama et al.'s ratio trick)
```
AVB uses it with u = (x, z), p = p_hat(x) q(z|x), q = p_hat(x) p(z), so T* = log q(z|x) - log p(z);
FactorVAE uses it with u = z, p = q(z), q = prod_j q(z_j), so E_q(z)[T*] = TC(z).

The critic owns its optimizer and its variables; a model updates it inside train_step with
`update(positive, negative)`, on inputs it has stopped gradients through.

#### References
[1] Mescheder, Nowozin & Geiger (2017), Adversarial Variational Bayes, arXiv:1701.04722.
[2] Kim & Mnih (2018), Disentangling by Factorising, arXiv:1802.05983.
"""

from tfvae._tf import tf, tfk
from tfvae.networks import check_hidden_units


class DensityRatioEstimator(tfk.Model):
    """T(u): an MLP logit whose optimum is log p(u) - log q(u), per example [B] nats.

    Args:
        hidden_units: widths of the MLP over the concatenated, flattened inputs.
            Default value: (256, 256).
        activation: hidden activation. Default value: "leaky_relu" (keeps gradients for
            negative pre-activations; the critic must stay informative everywhere).
        optimizer: the critic's own optimizer. Default value: Adam(1e-4, beta_1=0.5), a
            slower, less momentum-driven optimizer than the model's, as is usual for critics.
    """

    def __init__(self, hidden_units=(256, 256), activation="leaky_relu", optimizer=None,
                 name="critic", **kwargs):
        super().__init__(name=name, **kwargs)
        self.hidden_units = check_hidden_units(hidden_units)
        self.body = [tfk.layers.Dense(u, activation=activation) for u in self.hidden_units]
        self.logit = tfk.layers.Dense(1)
        self.critic_optimizer = optimizer or tfk.optimizers.Adam(1e-4, beta_1=0.5)

    def call(self, inputs, training=False):
        """T(u), [B]. `inputs` is one tensor [B, ...] or a tuple of them (e.g. (x, z))."""
        parts = inputs if isinstance(inputs, (tuple, list)) else (inputs,)
        h = tf.concat([tf.reshape(p, [tf.shape(p)[0], -1]) for p in parts], axis=-1)
        for layer in self.body:
            h = layer(h)
        return tf.squeeze(self.logit(h), -1)

    def loss(self, positive, negative):
        """Logistic loss: -E_p log sigmoid(T) - E_q log(1 - sigmoid(T)), a scalar."""
        t_pos, t_neg = self(positive, training=True), self(negative, training=True)
        return tf.reduce_mean(tf.nn.softplus(-t_pos)) + tf.reduce_mean(tf.nn.softplus(t_neg)), \
            t_pos, t_neg

    def update(self, positive, negative):
        """One optimizer step on the logistic loss; moves only the critic's variables.

        Returns:
            dict of scalars: "loss", "accuracy_positive", "accuracy_negative".
        """
        with tf.GradientTape() as tape:
            loss, t_pos, t_neg = self.loss(positive, negative)
        variables = self.trainable_variables
        self.critic_optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return {"loss": loss,
                "accuracy_positive": tf.reduce_mean(tf.cast(t_pos > 0, tf.float32)),
                "accuracy_negative": tf.reduce_mean(tf.cast(t_neg < 0, tf.float32))}

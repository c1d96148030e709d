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

from tfvae import distribute
from tfvae._tf import tf, tfk
from tfvae import validation


COMBINES = ("concat", "inner_product")


class DensityRatioEstimator(tfk.Model):
    """T(u): an MLP logit whose optimum is log p(u) - log q(u), per example [B] nats.

    Two architectures (`combine`):

    ```none
    concat:         T(u)    = MLP([flatten(u_1), flatten(u_2), ...])
    inner_product:  T(a, b) = <f(a), g(b)> + w_f . f(a) + w_g . g(b) + c
                    f, g: separate MLPs ending in a linear embedding of width `embedding_dim`
    ```
    "inner_product" takes a pair (a, b), e.g. (x, z) for AVB's T(x, z), and embeds each
    part by its own network (AVB's paper also embeds x and z separately). The bilinear form
    suits conditional log-ratios: for a Gaussian q(z|x) = N(mu(x), S), log q(z|x) - log p(z)
    is z^T S^-1 mu(x) (a sum of products of a function of x and a function of z) plus a term
    in z alone and a term in x alone, which is exactly this shape. g's last layer starts at
    zero, so T starts as the two linear terms rather than a product of two random embeddings
    (whose spread, ~sqrt(embedding_dim), would saturate the first logistic steps).

    Args:
        hidden_units: widths of the MLP (of each embedding MLP for "inner_product").
            Default value: (256, 256).
        activation: hidden activation. Default value: "leaky_relu" (keeps gradients for
            negative pre-activations; the critic must stay informative everywhere).
        optimizer: the critic's own optimizer. Default value: Adam(1e-4, beta_1=0.5), a
            slower, less momentum-driven optimizer than the model's, as is usual for critics.
        combine: "concat" or "inner_product". Default value: "concat".
        embedding_dim: width of f(a) and g(b) for "inner_product". Default value:
            hidden_units[-1].
        average: None, or a decay in [0, 1): keep an exponential moving average of the
            weights, a_t = d_t a_(t-1) + (1 - d_t) w_t after the t-th `update` with
            d_t = min(average, (1 + t) / (10 + t)) and a_0 the initial weights, in a frozen
            twin network, `evaluator`. A critic trained on fresh minibatches wanders around
            its optimum; its average wanders less, so estimates read from it are steadier.
            Default value: None (no average; `evaluator` is the critic itself).
    """

    def __init__(self, hidden_units=(256, 256), activation="leaky_relu", optimizer=None,
                 combine="concat", embedding_dim=None, average=None, name="critic", **kwargs):
        super().__init__(name=name, **kwargs)
        self.hidden_units = validation.positive_ints(hidden_units, "hidden_units")
        self.combine = validation.choice(combine, "combine", COMBINES)
        self.average = None if average is None else validation.real(average, "average",
                                                                    minimum=0.0)
        if self.average is not None and self.average >= 1.0:
            raise ValueError(f"`average` must be a decay in [0, 1) or None; got {average!r}.")
        self._twin = None
        if self.average is not None:
            # Same architecture, never trained: its weights are the running average.
            self._twin = DensityRatioEstimator(hidden_units, activation, optimizer=None,
                                               combine=combine, embedding_dim=embedding_dim,
                                               name=f"{name}_average")
            self._twin.trainable = False
        self.critic_optimizer = optimizer or tfk.optimizers.Adam(1e-4, beta_1=0.5)
        if combine == "concat":
            self.body = [tfk.layers.Dense(u, activation=activation) for u in self.hidden_units]
            self.logit = tfk.layers.Dense(1)
            return
        if embedding_dim is None:
            embedding_dim = self.hidden_units[-1]
        self.embedding_dim = validation.positive_int(embedding_dim, "embedding_dim")
        self.embed_a = [tfk.layers.Dense(u, activation=activation) for u in self.hidden_units]
        self.embed_a.append(tfk.layers.Dense(embedding_dim))
        self.embed_b = [tfk.layers.Dense(u, activation=activation) for u in self.hidden_units]
        self.embed_b.append(tfk.layers.Dense(embedding_dim, kernel_initializer="zeros"))
        self.linear_a = tfk.layers.Dense(1)
        self.linear_b = tfk.layers.Dense(1, use_bias=False)

    def average_decay(self):
        """This step's decay, min(average, (1 + t) / (10 + t)) after the optimizer's t-th
        step (tf.train.ExponentialMovingAverage's num_updates rule): the first steps
        forget the initial weights quickly, so the average does not lag behind a critic
        that is still learning."""
        t = tf.cast(self.critic_optimizer.iterations, tf.float32)
        return tf.minimum(self.average, (1.0 + t) / (10.0 + t))

    @property
    def evaluator(self):
        """The network to read estimates from: the weight average, or the critic itself
        (also before the average exists: the average of no steps is the initial critic)."""
        return self if self._twin is None or not self._twin.built else self._twin

    def build_for(self, inputs):
        """Create every weight (the critic's, its optimizer's slots, the average's) from
        example inputs, so that a checkpoint restores into them before the first step."""
        self(inputs)
        self.critic_optimizer.build(self.trainable_variables)
        if self._twin is not None:
            # Not trainable as variables, so no optimizer that collects a model's trainable
            # variables through tf.Module tracking takes them (Keras' `trainable = False`
            # hides them from Keras only). Assigned from each replica's step, where all
            # replicas hold the same critic: the first replica's value is taken.
            def first_replica(next_creator, **kwargs):
                kwargs["trainable"] = False
                kwargs["aggregation"] = tf.VariableAggregation.ONLY_FIRST_REPLICA
                return next_creator(**kwargs)
            with tf.variable_creator_scope(first_replica):
                self._twin(inputs)
            for a, w in zip(self._twin.weights, self.trainable_weights):
                a.assign(w)

    @staticmethod
    def _flatten(t):
        """[B, ...] -> [B, F], with F static when the shape is, so that a first call inside
        a tf.function can still build the Dense layers."""
        t = tf.convert_to_tensor(t)
        if t.shape.rank is not None and t.shape[1:].is_fully_defined():
            return tf.reshape(t, [-1, t.shape[1:].num_elements()])
        return tf.reshape(t, [tf.shape(t)[0], -1])

    def call(self, inputs, training=False):
        """T(u), [B]. `inputs` is one tensor [B, ...] or a tuple of them (e.g. (x, z)); a
        pair (a, b) with equal leading dimension B for "inner_product"."""
        parts = inputs if isinstance(inputs, (tuple, list)) else (inputs,)
        if self.combine == "concat":
            h = tf.concat([self._flatten(p) for p in parts], axis=-1)
            for layer in self.body:
                h = layer(h)
            return tf.squeeze(self.logit(h), -1)
        if len(parts) != 2:
            raise ValueError(f"A critic with `combine='inner_product'` takes a pair (a, b); got "
                             f"{len(parts)} input(s).")
        f, g = self._flatten(parts[0]), self._flatten(parts[1])
        for layer in self.embed_a:
            f = layer(f)
        for layer in self.embed_b:
            g = layer(g)
        return (tf.reduce_sum(f * g, -1) + tf.squeeze(self.linear_a(f), -1)
                + tf.squeeze(self.linear_b(g), -1))

    def loss(self, positive, negative):
        """Logistic loss: -E_p log sigmoid(T) - E_q log(1 - sigmoid(T)), a scalar."""
        t_pos, t_neg = self(positive, training=True), self(negative, training=True)
        return tf.reduce_mean(tf.nn.softplus(-t_pos)) + tf.reduce_mean(tf.nn.softplus(t_neg)), \
            t_pos, t_neg

    @staticmethod
    def _report(loss, t_pos, t_neg):
        return {"loss": loss,
                "accuracy_positive": tf.reduce_mean(tf.cast(t_pos > 0, tf.float32)),
                "accuracy_negative": tf.reduce_mean(tf.cast(t_neg < 0, tf.float32))}

    def metrics(self, positive, negative):
        """The logistic loss and the share of each side classified correctly, without a
        step: {"loss", "accuracy_positive", "accuracy_negative"}, scalars."""
        return self._report(*self.loss(positive, negative))

    def update(self, positive, negative):
        """One optimizer step on the logistic loss; moves only the critic's variables.

        Returns:
            the scalars of `metrics`, before the step.
        """
        if self._twin is not None and not self._twin.built:
            self.build_for(positive)  # the average starts from the weights before this step
        with tf.GradientTape() as tape:
            loss, t_pos, t_neg = self.loss(positive, negative)
            # Under replicas each critic's loss is weighted by its shard's share of the batch.
            share = distribute.replica_share(loss, tf.shape(t_pos)[0])
        variables = self.trainable_variables
        self.critic_optimizer.apply_gradients(zip(tape.gradient(share, variables), variables))
        if self._twin is not None:
            decay = self.average_decay()
            for a, w in zip(self._twin.weights, variables):
                a.assign(decay * a + (1.0 - decay) * w)
        return self._report(loss, t_pos, t_neg)

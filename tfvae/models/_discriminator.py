"""VAE-GAN's convolutional discriminator and its feature-space ("learned similarity") loss.

```none
Dis(x):   conv(c_1, 4, stride 2) -> ... -> conv(c_k, 4, stride 2) -> dense(u) -> logit
          every hidden layer LeakyReLU(0.2); hidden layer l (1-based) is Dis_l
L_llike = -log N(Dis_l(x) | Dis_l(x~), diag(s^2)) = 1/2 sum_j (Dis_l(x)_j - Dis_l(x~)_j)^2 / s_j^2
          + const,   s_j: feature j's spread over the real batch (see `feature_loss`), or 1
```
`feature_loss` returns the sum of squares without the constant (F/2 log 2pi + sum_j log s_j):
the constant moves no gradient, and the value is not a density on pixels anyway.
No batch normalization: the discriminator's output for an image does not depend on the
rest of the batch, so real, reconstructed and prior-sampled images can share one pass.

#### References
[1] Larsen, Sønderby, Larochelle & Winther (2016), Autoencoding beyond pixels using a
    learned similarity metric, arXiv:1512.09300, Eq. 9.
"""

from tfvae import validation
from tfvae._tf import tf, tfk


class Discriminator(tfk.Model):
    """Dis(x) (a logit, [B]) and its hidden layer `feature_layer` (Dis_l, [B, F]).

    Args:
        input_shape: (H, W, C) of the images.
        hidden_units: channels of the stride-2 convolutions, then the dense width.
            Default value: (32, 64, 128, 256).
        feature_layer: l, 1-based index of the hidden layer whose activations carry the
            feature likelihood (1..len(hidden_units)). Default value: 3 (the last conv of
            the default, as the paper takes its third of four layers).
    """

    def __init__(self, input_shape, hidden_units=(32, 64, 128, 256), feature_layer=3,
                 name="discriminator", **kwargs):
        super().__init__(name=name, **kwargs)
        self.hidden_units = validation.positive_ints(hidden_units, "discriminator_units")
        if len(self.hidden_units) < 2:
            raise ValueError("`discriminator_units` needs at least two entries (conv "
                             f"channels..., dense width); got {list(self.hidden_units)}.")
        self.feature_layer = validation.integer(feature_layer, "feature_layer", minimum=1)
        if self.feature_layer > len(self.hidden_units):
            raise ValueError(f"`feature_layer` must be in 1..{len(self.hidden_units)} (the "
                             f"discriminator's hidden layers); got {feature_layer}.")
        *channels, dense = self.hidden_units
        act = lambda: tfk.layers.LeakyReLU(0.2)  # noqa: E731
        self.hidden = [tfk.Sequential([tfk.layers.Conv2D(c, 4, strides=2, padding="same"),
                                       act()]) for c in channels]
        self.hidden.append(tfk.Sequential([tfk.layers.Flatten(), tfk.layers.Dense(dense),
                                           act()]))
        self.logit = tfk.layers.Dense(1)
        self(tf.zeros((1, *input_shape)))

    @staticmethod
    def _flat(h):
        return tf.reshape(h, [-1, h.shape[1:].num_elements()])

    def features(self, x, training=False):
        """Dis_l(x), flattened: [B, F]. Runs only the layers up to l."""
        h = x
        for layer in self.hidden[:self.feature_layer]:
            h = layer(h, training=training)
        return self._flat(h)

    def call(self, x, training=False):
        """(logit [B], Dis_l(x) [B, F]) in one pass."""
        h, feats = x, None
        for i, layer in enumerate(self.hidden, start=1):
            h = layer(h, training=training)
            if i == self.feature_layer:
                feats = self._flat(h)
        return tf.squeeze(self.logit(h), -1), feats


def feature_loss(real_features, fake_features, normalize=True, epsilon=1e-3):
    """1/2 sum_j (Dis_l(x)_j - Dis_l(x~)_j)^2 / s_j^2 per example, [B]: -log N(Dis_l(x) |
    Dis_l(x~), diag(s^2)) up to its normalizing constant.

    With `normalize`, s_j is feature j's standard deviation over the batch of real images
    (plus `epsilon`), held constant in the gradient; else s_j = 1, the paper's N(., I). The
    reference implementation's discriminator batch-normalizes the layer it takes, which puts
    its features at unit scale; this one has no batch normalization, and its raw features
    start ~100x smaller, so with s = 1 the KL dominates the encoder's loss and the posterior
    collapses in the first steps (measured: KL 0.02 nats after 48 Fashion-MNIST steps).
    """
    diff = real_features - fake_features
    if normalize:
        scale = tf.stop_gradient(tf.math.reduce_std(real_features, axis=0)) + epsilon
        diff = diff / scale
    return 0.5 * tf.reduce_sum(tf.square(diff), axis=-1)

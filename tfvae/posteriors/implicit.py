"""Implicit posterior: z = g(x, eps), a sampler without a density (AVB's encoder).

```none
eps ~ N(0, I_k)                                    k = noise_dim
u_0 = h(x)                                         encoder features [B, F]
u_l = act(A_l u_{l-1} + E_l eps + b_l),  l = 1..L  noise enters every layer's input
z   = A_out u_L + E_out eps + b_out                [.., B, D]
```
Noise reaches the head's input and each of its hidden layers through its own learned
linear map (AVB's "add_linear" construction), so q(z|x) is a non-Gaussian, x-dependent
pushforward of N(0, I_k). With no hidden layers (`hidden_units=()`) the head is
z = A h + b + E eps: a Gaussian with an x-independent covariance E E^T. The density
q(z|x) has no closed form, so `log_prob` raises; AVB (`tfvae.AVB`) estimates
log q(z|x) - log p(z) with a discriminator instead, and evaluates log p(x) by importance
sampling with a Gaussian fitted to samples of q (`AVB.proposal`).

`noise_dim` should be at least `latent_dim`: with fewer noise dimensions q(z|x) lives on a
lower-dimensional manifold of R^D, KL(q || p) is infinite and the discriminator wins.

#### References
[1] Mescheder, Nowozin & Geiger (2017), Adversarial Variational Bayes, arXiv:1701.04722,
    Sec. 3 and Fig. 2 (the "black-box" encoder z = g(x, eps)).
"""

import logging

import numpy as np

from tfvae._tf import tf, tfd, tfk, tfp
from tfvae.networks import check_hidden_units
from tfvae.posteriors.base import Posterior
from tfvae.registry import POSTERIORS
from tfvae.seeds import stateless_seed

log = logging.getLogger(__name__)

# Moments of an implicit q are Monte-Carlo estimates over this many fixed noise draws:
# deterministic per x (the same noise for every example and call), error ~ sd / sqrt(64).
MOMENT_SAMPLES = 64

NO_DENSITY = ("q(z|x) of the implicit posterior has no closed-form density (z = g(x, eps) "
              "is only a sampler), so `log_prob` is undefined. Train it with model 'avb' "
              "(tfvae.AVB), which estimates log q(z|x) - log p(z) with a discriminator, not "
              "with the 'kl' term; for log p(x) use tfvae.evaluation.log_likelihood, which "
              "importance-samples with AVB's fitted proposal.")


def check_noise_dim(noise_dim):
    if isinstance(noise_dim, bool) or not isinstance(noise_dim, (int, np.integer)) \
            or noise_dim <= 0:
        raise ValueError(f"`noise_dim` must be a positive int; got {noise_dim!r}.")
    return int(noise_dim)


class ImplicitDistribution(tfd.Distribution):
    """q(z|x) as a sampler: batch shape [B], event shape [D], sample only.

    `sample(n, seed)` returns z [n, B, D], reparameterized (differentiable in the head's and
    the encoder's weights). `mean`, `variance`, `stddev` and `covariance` are Monte-Carlo
    estimates over `MOMENT_SAMPLES` fixed noise draws (deterministic per x). `log_prob`
    raises NotImplementedError.

    Args:
        features: encoder features h(x), [B, F].
        head: the `ImplicitPosterior` layer that maps (h, eps) to z.
    """

    def __init__(self, features, head, validate_args=False, allow_nan_stats=True, name="q_z"):
        parameters = dict(locals())
        self._features = tf.convert_to_tensor(features)
        self._head = head
        super().__init__(dtype=self._features.dtype,
                         reparameterization_type=tfd.FULLY_REPARAMETERIZED,
                         validate_args=validate_args, allow_nan_stats=allow_nan_stats,
                         parameters=parameters, name=name)

    @property
    def features(self):
        return self._features

    @property
    def noise_dim(self):
        return self._head.noise_dim

    def transform(self, eps):
        """z = g(x, eps) for given noise.

        Args:
            eps: noise [S, B, noise_dim], or [S, 1, noise_dim] to use the same draws for
                every example.

        Returns:
            z, [S, B, D].
        """
        return self._head.transform(self._features, eps)

    def _batch_shape(self):
        return self._features.shape[:-1]

    def _batch_shape_tensor(self):
        return tf.shape(self._features)[:-1]

    def _event_shape(self):
        return tf.TensorShape([self._head.latent_dim])

    def _event_shape_tensor(self):
        return tf.constant([self._head.latent_dim], tf.int32)

    def _sample_n(self, n, seed=None):
        seed = stateless_seed(seed) if seed is not None else tfp.random.sanitize_seed(None)
        shape = tf.concat([[n], tf.shape(self._features)[:-1], [self.noise_dim]], 0)
        eps = tf.random.stateless_normal(shape, seed, dtype=self.dtype)
        return self.transform(eps)

    def _log_prob(self, value):
        raise NotImplementedError(NO_DENSITY)

    def _moment_samples(self):
        eps = np.random.default_rng(0).normal(size=(MOMENT_SAMPLES, 1, self.noise_dim))
        return self.transform(tf.constant(eps, self.dtype))  # [M, B, D]

    def _mean(self):
        return tf.reduce_mean(self._moment_samples(), 0)

    def _covariance(self):
        z = self._moment_samples()
        zc = z - tf.reduce_mean(z, 0)
        return tf.einsum("mbi,mbj->bij", zc, zc) / (MOMENT_SAMPLES - 1)

    def _variance(self):
        z = self._moment_samples()
        return tf.math.reduce_variance(z, 0) * MOMENT_SAMPLES / (MOMENT_SAMPLES - 1)

    def _stddev(self):
        return tf.sqrt(self._variance())


@POSTERIORS.register("implicit")
class ImplicitPosterior(Posterior):
    """q(z|x) defined by a sampler z = g(h(x), eps); `has_density = False`.

    Args:
        latent_dim: D.
        noise_dim: k, the dimension of eps ~ N(0, I_k). Default value: latent_dim (fewer
            noise dimensions than latents make q degenerate; see the module docstring).
        hidden_units: widths of the head's hidden layers; eps enters each of them and the
            output. Default value: (256,).
        activation: hidden activation. Default value: "elu" (smooth, so q(z|x) has a
            smooth density the discriminator can fit; ReLU would make it piecewise).
    """

    has_density = False

    def __init__(self, latent_dim, noise_dim=None, hidden_units=(256,), activation="elu",
                 validate_args=False, **kwargs):
        super().__init__(latent_dim, validate_args=validate_args, **kwargs)
        self.noise_dim = check_noise_dim(latent_dim if noise_dim is None else noise_dim)
        if self.noise_dim < self.latent_dim:
            log.warning("Implicit posterior with noise_dim=%d < latent_dim=%d: q(z|x) is "
                        "degenerate and KL(q || p) is infinite.", self.noise_dim,
                        self.latent_dim)
        self.hidden_units = (tuple(hidden_units) if isinstance(hidden_units, (list, tuple))
                             and len(hidden_units) == 0 else check_hidden_units(hidden_units))
        self.activation = activation
        self._act = tfk.activations.get(activation)
        widths = (*self.hidden_units, self.latent_dim)
        # A_l acts on the previous layer, E_l on the noise; split so that A_1 h is computed
        # once per example however many samples of eps are drawn.
        self.feature_layers = [tfk.layers.Dense(w, name=f"features_{i}")
                               for i, w in enumerate(widths)]
        self.noise_layers = [tfk.layers.Dense(w, use_bias=False, name=f"noise_{i}")
                             for i, w in enumerate(widths)]

    @staticmethod
    def params_size(latent_dim):
        """Features the head reads; any width works (it has its own layers), so 0."""
        return 0

    def build(self, input_shape):
        width = int(input_shape[-1])
        for feature_layer, noise_layer in zip(self.feature_layers, self.noise_layers):
            feature_layer.build((None, width))
            noise_layer.build((None, self.noise_dim))
            width = feature_layer.units
        super().build(input_shape)

    def call(self, h, training=None):
        if h.shape.rank != 2:
            raise ValueError(f"The implicit posterior needs features of shape [B, F]; got "
                             f"{h.shape}.")
        return ImplicitDistribution(h, self, validate_args=self.validate_args)

    def transform(self, h, eps):
        """z = g(h, eps): h [B, F], eps [S, B or 1, k] -> z [S, B, D]."""
        eps = tf.convert_to_tensor(eps, h.dtype)
        if eps.shape.rank != 3 or (eps.shape[-1] is not None and eps.shape[-1] != self.noise_dim):
            raise ValueError(f"`eps` must have shape [S, B, {self.noise_dim}]; got {eps.shape}.")
        u = h[None]  # [1, B, F]: broadcasts against the samples
        last = len(self.feature_layers) - 1
        for i, (feature_layer, noise_layer) in enumerate(zip(self.feature_layers,
                                                             self.noise_layers)):
            pre = feature_layer(u) + noise_layer(eps)
            u = pre if i == last else self._act(pre)
        return u

    def get_config(self):
        return {**super().get_config(), "noise_dim": self.noise_dim,
                "hidden_units": list(self.hidden_units), "activation": self.activation}

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

`SamplerPosterior` is what every sampler head shares (no density, the distribution object,
the proposal); `implicit_basis` (`tfvae.posteriors.implicit_basis`) is the other one, the
noise-basis encoder of AVB's reference code.

`noise_dim` should be at least `latent_dim`: with fewer noise dimensions q(z|x) lives on a
lower-dimensional manifold of R^D, KL(q || p) is infinite and the discriminator wins.

#### References
[1] Mescheder, Nowozin & Geiger (2017), Adversarial Variational Bayes, arXiv:1701.04722,
    Sec. 3 and Fig. 2 (the "black-box" encoder z = g(x, eps)).
"""

import functools
import logging

import numpy as np

from tfvae._tf import tf, tfd, tfk, tfp
from tfvae import validation
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


# Added to the fitted proposal's covariance (latent units^2): keeps the Cholesky factor
# defined if q(z|x) is (numerically) degenerate in a direction; widening is always safe.
PROPOSAL_JITTER = 1e-6


def check_noise_dim(noise_dim):
    return validation.positive_int(noise_dim, "noise_dim")


def noise_seed(seed):
    """The stateless seed a sampler head draws its eps with: `stateless_seed(seed)`, or a
    fresh one when seed is None (as TFP's samplers do)."""
    return stateless_seed(seed) if seed is not None else tfp.random.sanitize_seed(None)


class ImplicitDistribution(tfd.Distribution):
    """q(z|x) as a sampler: batch shape [B], event shape [D], sample only.

    `sample(n, seed)` returns z [n, B, D], reparameterized (differentiable in the head's and
    the encoder's weights). `mean`, `variance`, `stddev` and `covariance` are Monte-Carlo
    estimates over `MOMENT_SAMPLES` fixed noise draws (deterministic per x). `log_prob`
    raises NotImplementedError.

    Args:
        features: encoder features h(x), [B, F].
        head: the `SamplerPosterior` layer that maps (h, eps) to z.
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
    def head(self):
        """The `SamplerPosterior` layer that maps (h, eps) to z."""
        return self._head

    @property
    def noise_dim(self):
        """The width of eps, the noise one draw of z takes: `head.eps_dim`, which is the
        head's `noise_dim` for the implicit head and bases * noise_dim for the noise-basis
        head."""
        return self._head.eps_dim

    def transform(self, eps):
        """z = g(x, eps) for given noise.

        Args:
            eps: noise [S, B, k], or [S, 1, k] to use the same draws for every example
                (k = `noise_dim`).

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
        seed = noise_seed(seed)
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


class SamplerPosterior(Posterior):
    """The part every sampler head z = g(h(x), eps) shares: `has_density = False`, the
    `ImplicitDistribution` it returns, and the importance-sampling `proposal`.

    Subclasses define `eps_dim` (the width of eps) and `transform(h, eps)`.

    Args:
        latent_dim: D.
        proposal_samples: draws of q(z|x) the importance-sampling proposal is fitted to;
            more than latent_dim (a full covariance). Default value: 256.
        proposal_scale: factor (>= 1) by which the proposal's scale is widened.
            Default value: 1.5 (see `proposal`).
    """

    has_density = False
    has_proposal = True

    def __init__(self, latent_dim, proposal_samples=256, proposal_scale=1.5,
                 validate_args=False, **kwargs):
        super().__init__(latent_dim, validate_args=validate_args, **kwargs)
        # A full sample covariance needs more draws than latent dimensions.
        self.proposal_samples = validation.integer(proposal_samples, "proposal_samples",
                                                   minimum=self.latent_dim + 1)
        self.proposal_scale = validation.real(proposal_scale, "proposal_scale", minimum=1.0)

    @functools.cached_property
    def proposal_noise(self):
        """The proposal's draws of eps, [proposal_samples, 1, eps_dim]: fixed, so r(z|x) is
        a deterministic function of x."""
        return np.random.default_rng(0).normal(
            size=(self.proposal_samples, 1, self.eps_dim)).astype(np.float32)

    def call(self, h, training=None):
        if h.shape.rank != 2:
            raise ValueError(f"The {self.registry_name} posterior needs features of shape "
                             f"[B, F]; got {h.shape}.")
        return ImplicitDistribution(h, self, validate_args=self.validate_args)

    def check_eps(self, eps, dtype):
        eps = tf.convert_to_tensor(eps, dtype)
        if eps.shape.rank != 3 or (eps.shape[-1] is not None and eps.shape[-1] != self.eps_dim):
            raise ValueError(f"`eps` must have shape [S, B, {self.eps_dim}]; got {eps.shape}.")
        return eps

    def proposal(self, q_z):
        """A per-example Gaussian fitted to `proposal_samples` fixed draws of q(z|x) (sample
        mean and full sample covariance + 1e-6 I), its scale widened by `proposal_scale`:

        ```none
        r(z|x) = N(m(x), c^2 C(x)),  m, C: moments of z_j = g(x, eps_j), j = 1..M
        ```
        Importance sampling with r is valid for any proposal with full support; the mean of
        the weights is unbiased for p(x) and its log is a stochastic lower bound of log p(x)
        (Jensen), exact as k -> inf. Widening gives r heavier tails than q's Gaussian fit,
        which keeps the weights' variance finite when q is narrower than the true posterior
        (an adversarially trained q tends to be), at a cost of D (log c - (1 - 1/c^2) / 2)
        nats of KL(target || r) when q is exact.
        """
        z = q_z.transform(tf.constant(self.proposal_noise, q_z.dtype))      # [M, B, D]
        cov = tfp.stats.covariance(z, sample_axis=0, event_axis=-1)          # [B, D, D]
        cov = cov * (self.proposal_samples / (self.proposal_samples - 1.0))  # unbiased
        cov += PROPOSAL_JITTER * tf.eye(self.latent_dim, dtype=cov.dtype)
        return tfd.MultivariateNormalTriL(
            loc=tf.reduce_mean(z, 0), scale_tril=self.proposal_scale * tf.linalg.cholesky(cov),
            validate_args=self.validate_args, name="proposal")


@POSTERIORS.register("implicit")
class ImplicitPosterior(SamplerPosterior):
    """q(z|x) defined by a sampler z = g(h(x), eps); `has_density = False`.

    Args:
        latent_dim: D.
        noise_dim: k, the dimension of eps ~ N(0, I_k). Default value: latent_dim (fewer
            noise dimensions than latents make q degenerate; see the module docstring).
        hidden_units: widths of the head's hidden layers; eps enters each of them and the
            output. Default value: (256,).
        activation: hidden activation. Default value: "elu" (smooth, so q(z|x) has a
            smooth density the discriminator can fit; ReLU would make it piecewise).
        proposal_samples: draws of q(z|x) the importance-sampling proposal is fitted to;
            more than latent_dim (a full covariance). Default value: 256.
        proposal_scale: factor (>= 1) by which the proposal's scale is widened.
            Default value: 1.5 (see `proposal`).
    """

    def __init__(self, latent_dim, noise_dim=None, hidden_units=(256,), activation="elu",
                 proposal_samples=256, proposal_scale=1.5, validate_args=False, **kwargs):
        super().__init__(latent_dim, proposal_samples=proposal_samples,
                         proposal_scale=proposal_scale, validate_args=validate_args, **kwargs)
        self.noise_dim = check_noise_dim(latent_dim if noise_dim is None else noise_dim)
        if self.noise_dim < self.latent_dim:
            log.warning("Implicit posterior with noise_dim=%d < latent_dim=%d: q(z|x) is "
                        "degenerate and KL(q || p) is infinite.", self.noise_dim,
                        self.latent_dim)
        self.hidden_units = validation.positive_ints(hidden_units, "hidden_units",
                                                     min_length=0)
        self.activation = activation
        self._act = tfk.activations.get(activation)
        widths = (*self.hidden_units, self.latent_dim)
        # A_l acts on the previous layer, E_l on the noise; split so that A_1 h is computed
        # once per example however many samples of eps are drawn.
        self.feature_layers = [tfk.layers.Dense(w, name=f"features_{i}")
                               for i, w in enumerate(widths)]
        self.noise_layers = [tfk.layers.Dense(w, use_bias=False, name=f"noise_{i}")
                             for i, w in enumerate(widths)]

    @property
    def eps_dim(self):
        return self.noise_dim

    def build(self, input_shape):
        width = int(input_shape[-1])
        for feature_layer, noise_layer in zip(self.feature_layers, self.noise_layers):
            feature_layer.build((None, width))
            noise_layer.build((None, self.noise_dim))
            width = feature_layer.units
        super().build(input_shape)

    def transform(self, h, eps):
        """z = g(h, eps): h [B, F], eps [S, B or 1, k] -> z [S, B, D]."""
        eps = self.check_eps(eps, h.dtype)
        u = h[None]  # [1, B, F]: broadcasts against the samples
        last = len(self.feature_layers) - 1
        for i, (feature_layer, noise_layer) in enumerate(zip(self.feature_layers,
                                                             self.noise_layers)):
            pre = feature_layer(u) + noise_layer(eps)
            u = pre if i == last else self._act(pre)
        return u

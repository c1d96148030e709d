"""ForwardPass: what one pass of a latent-variable model computed, shared by every term.

Shape conventions (sample axis first, as TFP's `sample(S)` puts it):

```none
x               [B, H, W, C]   float32 images in [0, 1]
q_z             batch [B],    event [D]        q(z|x)
z               [S, B, D]                      reparameterized samples of q(z|x)
p_z             batch [],     event [D]        the prior
p_x_given_z     batch [S, B], event [H, W, C]  the decoder's likelihood
log_px_given_z  [S, B]   nats
distortion      [B]      nats, -E_q[log p(x|z)] (Monte Carlo over the S samples)
rate            [B]      nats, KL(q(z|x) || p(z)), analytic when TFP has it
```
"""

import functools
import zlib

from tfvae import validation
from tfvae._tf import tf, tfd

KL_MODES = ("auto", "analytic", "mc")


def check_kl_mode(kl):
    return validation.choice(kl, "kl", KL_MODES)


def has_analytic_kl(q_z, p_z):
    """Whether TFP has a registered KL(q || p) for the pair of distribution types."""
    from tensorflow_probability.python.distributions import kullback_leibler
    return kullback_leibler._registered_kl(type(q_z), type(p_z)) is not None  # pylint: disable=protected-access


class ForwardPass:
    """One forward pass; derived quantities are computed once, on first use.

    Objective terms read what they need (`fwd.distortion`, `fwd.rate`, `fwd.z`, ...) so a
    quantity several terms share, such as log p(x|z), is built into the graph once. Terms
    own no random state: `seed_for(name)` gives each consumer its own stateless seed,
    derived from the step's seed, and `memo(key, fn)` computes a shared quantity once.

    Args:
        x: images, [B, H, W, C].
        q_z: the posterior q(z|x), batch [B], event [D].
        z: samples of q_z, [S, B, D].
        p_z: the prior, event [D].
        p_x_given_z: the likelihood p(x|z), batch [S, B], event [H, W, C]; None for a pass
            that only encodes (a critic's update).
        step: the optimizer step (int64 scalar) for scheduled weights.
        seed: the step's stateless seed, int32 [2].
        kl: "analytic", "mc" or "auto" (analytic when TFP has the KL, Monte Carlo otherwise).
        log_qz: log q(z|x) of `z`, [S, B], when the sampler computed it with the draw (a
            flow's `experimental_sample_and_log_prob`: no inverse); None: `q_z.log_prob(z)`.
        training: whether the pass is a training step's (a term with a critic differentiates
            the last critic there, and reads a steadier weight average elsewhere).
    """

    def __init__(self, x, q_z, z, p_z, p_x_given_z, step, seed, kl="auto", log_qz=None,
                 training=False):
        self.x = x
        self.q_z = q_z
        self.z = z
        self.p_z = p_z
        self.p_x_given_z = p_x_given_z
        self.step = step
        self.seed = seed
        self.kl = check_kl_mode(kl)
        self._log_qz = log_qz
        # A Python bool, or a tensor with a static value; an unknown value reads as False.
        self.training = bool(tf.get_static_value(training)) if training is not None else False
        self._memo = {}

    def seed_for(self, name):
        """A stateless seed (int32 [2]) for the consumer `name`: a pure function of the
        step's seed and the name, so two terms never share draws and a resumed run
        repeats none."""
        return tf.random.experimental.stateless_fold_in(
            self.seed, zlib.crc32(name.encode()) & 0x7FFFFFFF)

    def memo(self, key, fn):
        """`fn()` computed once per pass and shared by every term that asks for `key`."""
        if key not in self._memo:
            self._memo[key] = fn()
        return self._memo[key]

    @functools.cached_property
    def log_px_given_z(self):
        """log p(x|z) per sample, [S, B], nats."""
        return self.p_x_given_z.log_prob(self.x)

    @functools.cached_property
    def distortion(self):
        """-E_q[log p(x|z)] estimated with the S samples, [B], nats."""
        return -tf.reduce_mean(self.log_px_given_z, axis=0)

    @functools.cached_property
    def log_qz(self):
        """log q(z|x) of the drawn samples, [S, B], nats."""
        return self.q_z.log_prob(self.z) if self._log_qz is None else self._log_qz

    @functools.cached_property
    def log_pz(self):
        """log p(z) of the drawn samples, [S, B], nats."""
        return self.p_z.log_prob(self.z)

    @functools.cached_property
    def rate(self):
        """KL(q(z|x) || p(z)), [B], nats: analytic or a Monte-Carlo mean over the S samples."""
        analytic = has_analytic_kl(self.q_z, self.p_z)
        if self.kl == "analytic" and not analytic:
            raise ValueError(
                f"`kl='analytic'` but TFP has no KL between {type(self.q_z).__name__} and "
                f"{type(self.p_z).__name__}; use kl='mc' or kl='auto'.")
        if self.kl != "mc" and analytic:
            return tfd.kl_divergence(self.q_z, self.p_z)
        return tf.reduce_mean(self.log_qz - self.log_pz, axis=0)

    @property
    def elbo(self):
        """The evidence lower bound per example, [B], nats (higher is better)."""
        return -(self.distortion + self.rate)

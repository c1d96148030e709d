"""Adversarial rate: KL(q(z|x) || p(z)) estimated by a discriminator T(x, z) (AVB).

```none
critic:  max_T  E_p(x) E_q(z|x) log sigmoid(T(x, z)) + E_p(x) E_p(z) log(1 - sigmoid(T(x, z)))
         T*(x, z) = log q(z|x) - log p(z)                                  (AVB Prop. 1)
rate:    KL(q(z|x) || p(z)) ~= E_q(z|x)[T(x, z)]

adaptive contrast (AVB Sec. 3.3): r(z|x) = N(mu(x), diag sigma(x)^2) with the moments of
q(z|x) (Monte Carlo over `moment_samples` draws), z~ = (z - mu(x)) / sigma(x);
the critic tells q~(z~|x) from r0 = N(0, I), so T*(x, z~) = log q(z|x) - log r(z|x), and
         KL(q || p) = KL(q~ || r0) + E_q[log r(z|x) - log p(z)]
                   ~= E_q[T(x, z~) + log r(z|x) - log p(z)]
```
The loss is reconstruction + weight * rate, i.e. the negated AVB objective
E_q[log p(x|z) - T(x, z)] (Eq. 3.3 with AC). Gradients reach the encoder only through the
samples z (and z~); the critic's weights and the moments (mu, sigma) are held fixed. That
is AVB's Prop. 2: E_q[grad_phi T*(x, z)] = E_q[grad_phi log q_phi(z|x)] = 0 at fixed z, so
the path through z is the whole ELBO gradient; with AC, for any fixed (mu, sigma),
T*(x, (z - mu) / sigma) + log r(z|x) = log q(z|x) as a function of z, so the same holds.

With AC the critic only has to model how q departs from a Gaussian with its own moments,
a small log-ratio near 0, instead of log q - log p, which grows with the KL (tens of nats
for images) where a logistic critic saturates and its estimate falls behind.

The term owns the critic (a `tfvae.critics.DensityRatioEstimator`, its own optimizer) and
updates it with `update_critic`: `discriminator_steps` logistic steps, each on fresh
samples of q(z|x) and p(z) (or r0), every input stopped, so only T moves.

#### References
[1] Mescheder, Nowozin & Geiger (2017), Adversarial Variational Bayes: Unifying Variational
    Autoencoders and Generative Adversarial Networks, arXiv:1701.04722, Prop. 1-2, Sec. 3.3.
"""

import numpy as np

from tfvae._tf import tf, tfk, tfp
from tfvae.critics import COMBINES, DensityRatioEstimator
from tfvae.networks import check_hidden_units
from tfvae.objectives.base import Term
from tfvae.registry import TERMS

# Variance floor (latent units^2) of the AC normalization: keeps z~ finite if q collapses
# in a direction; far below the posterior variances of a trained model (~1e-3 .. 1).
MOMENT_FLOOR = 1e-6
# Global gradient-norm bound of the critic's Adam steps (see AVBTerm.__init__).
CRITIC_CLIPNORM = 1.0


def _check_int(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"`{name}` must be an int >= {minimum}; got {value!r}.")
    return int(value)


def _check_positive_float(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"`{name}` must be a positive number; got {value!r}.")
    return float(value)


@TERMS.register("avb")
class AVBTerm(Term):
    """The adversarial estimate of KL(q(z|x) || p(z)), [B] nats; owns the critic T(x, z).

    Args:
        weight: the rate's weight (beta). Default value: 1.0.
        adaptive_contrast: contrast q with its moment-matched Gaussian r(z|x) instead of
            with p(z). Default value: False.
        moment_samples: draws of q(z|x) per x for the moments of r (AC only).
            Default value: 16 (sigma's relative error ~ 1/sqrt(2 * 15) = 18% per dim).
        discriminator_steps: critic updates per `update_critic` call. Default value: 1.
        discriminator_lr: the critic's Adam learning rate (beta_1 = 0.5, gradients
            clipped to global norm 1). Default value: 1e-3 (the critic has to follow an
            encoder trained at Adam 1e-3).
        discriminator_units: hidden widths of the critic's networks.
            Default value: (256, 256).
        combine: "inner_product" (separate x and z embeddings) or "concat" (one MLP over
            [x, z]); see `DensityRatioEstimator`. Default value: "inner_product".
        critic: a `DensityRatioEstimator` to use instead (its optimizer is used as is).
        name: metric name. Default value: "avb".
    """

    def __init__(self, weight=1.0, adaptive_contrast=False, moment_samples=16,
                 discriminator_steps=1, discriminator_lr=1e-3, discriminator_units=(256, 256),
                 combine="inner_product", critic=None, name=None):
        super().__init__(weight=weight, name=name)
        if not isinstance(adaptive_contrast, (bool, np.bool_)):
            raise ValueError(f"`adaptive_contrast` must be True or False; got "
                             f"{adaptive_contrast!r}.")
        self.adaptive_contrast = bool(adaptive_contrast)
        # Two draws are the least that give a variance; fewer would divide by zero.
        self.moment_samples = _check_int(moment_samples, "moment_samples", 2)
        self.discriminator_steps = _check_int(discriminator_steps, "discriminator_steps", 1)
        self.discriminator_lr = _check_positive_float(discriminator_lr, "discriminator_lr")
        self.discriminator_units = check_hidden_units(discriminator_units)
        if combine not in COMBINES:
            raise ValueError(f"`combine` must be one of {list(COMBINES)}; got {combine!r}.")
        self.combine = combine
        if critic is not None and not isinstance(critic, DensityRatioEstimator):
            raise TypeError(f"`critic` must be a tfvae.critics.DensityRatioEstimator; got "
                            f"{type(critic).__name__}.")
        # Clipped critic steps: an unclipped step of the inner-product critic (a product of
        # two embeddings) once sent E_q[T] from ~8 to 185 nats in one epoch of the FMNIST
        # benchmark and wrecked the encoder; with a global norm of 1 the same run is smooth.
        self.critic = critic or DensityRatioEstimator(
            hidden_units=self.discriminator_units, combine=combine, name="discriminator",
            optimizer=tfk.optimizers.Adam(self.discriminator_lr, beta_1=0.5,
                                          global_clipnorm=CRITIC_CLIPNORM))

    # ------------------------------------------------------------------ pieces

    def moments(self, q_z, seed):
        """mu(x), sigma(x) of q(z|x) from `moment_samples` draws, each [B, D], no gradient."""
        z = tf.stop_gradient(q_z.sample(self.moment_samples, seed=seed))  # [M, B, D]
        mu, var = tf.nn.moments(z, axes=[0])
        var = var * self.moment_samples / (self.moment_samples - 1)  # unbiased
        return mu, tf.sqrt(var + MOMENT_FLOOR)

    def critic_value(self, x, z):
        """T(x, z) for z [S, B, D] (or [B, D]) against x [B, ...]: [S, B] (or [B])."""
        if z.shape.rank == 2:
            return self.critic((x, z))
        s, b = tf.shape(z)[0], tf.shape(z)[1]
        x_rep = tf.reshape(tf.repeat(x[None], s, axis=0),
                           tf.concat([[s * b], tf.shape(x)[1:]], 0))
        x_rep.set_shape(tf.TensorShape([None]).concatenate(x.shape[1:]))
        # A static latent width, so that a critic first called in a tf.function can build.
        t = self.critic((x_rep, tf.reshape(z, [-1, z.shape[-1] or tf.shape(z)[-1]])))
        return tf.reshape(t, [s, b])

    def estimate(self, x, q_z, z, p_z, seed=None):
        """The rate estimate and its parts, per example.

        Args:
            x: images [B, H, W, C].
            q_z: q(z|x), batch [B].
            z: samples of q_z, [S, B, D]; gradients flow through them.
            p_z: the prior.
            seed: stateless seed for the moment draws (AC only).

        Returns:
            dict: "kl" [B] (the KL estimate, nats); with AC also "contrast" [B], the
            estimate E_q[T] of KL(q || r), and "gaussian" [B], E_q[log r - log p].
        """
        if not self.adaptive_contrast:
            return {"kl": tf.reduce_mean(self.critic_value(x, z), 0)}
        mu, sigma = self.moments(q_z, seed)
        z_tilde = (z - mu) / sigma
        log_r = tf.reduce_sum(-0.5 * tf.square(z_tilde) - tf.math.log(sigma)
                              - 0.5 * np.log(2.0 * np.pi), -1)  # log N(z; mu, sigma^2), [S, B]
        contrast = tf.reduce_mean(self.critic_value(x, z_tilde), 0)
        gaussian = tf.reduce_mean(log_r - p_z.log_prob(z), 0)
        return {"kl": contrast + gaussian, "contrast": contrast, "gaussian": gaussian}

    def critic_batch(self, x, q_z, p_z, seed):
        """(positive, negative) critic inputs: (x, z ~ q(z|x)) and (x, z ~ p(z)); with AC
        (x, z~) and (x, n ~ N(0, I)). Every tensor is stopped: only the critic learns."""
        q_seed, p_seed, m_seed = tfp.random.split_seed(seed, 3)
        x = tf.stop_gradient(x)
        z = tf.stop_gradient(q_z.sample(seed=q_seed))  # [B, D]
        batch = tf.shape(z)[0]
        if self.adaptive_contrast:
            mu, sigma = self.moments(q_z, m_seed)
            positive = (z - mu) / sigma
            negative = tf.random.stateless_normal(tf.shape(z), p_seed, dtype=z.dtype)
        else:
            positive = z
            negative = p_z.sample(batch, seed=p_seed)
        return (x, positive), (x, negative)

    # ------------------------------------------------------------------ the Term contract

    def __call__(self, fwd):
        """E_q[T(x, z)] (or its AC form), [B] nats, from the forward pass's samples."""
        return self.estimate(fwd.x, fwd.q_z, fwd.z, fwd.p_z, seed=_seed_of(fwd))["kl"]

    def update_critic(self, fwd):
        """`discriminator_steps` critic steps on fresh samples for fwd's x; see `fit_critic`."""
        return self.fit_critic(fwd.x, fwd.q_z, fwd.p_z, _seed_of(fwd))

    def fit_critic(self, x, q_z, p_z, seed):
        """`discriminator_steps` logistic steps, each on a fresh (positive, negative) batch.

        Returns:
            dict of scalars from the last step: "loss" (nats), "accuracy_positive" (share
            of q samples with T > 0) and "accuracy_negative" (share of p (or r0) samples
            with T < 0).
        """
        seeds = tfp.random.split_seed(seed, self.discriminator_steps)
        for step_seed in seeds:
            positive, negative = self.critic_batch(x, q_z, p_z, step_seed)
            logs = self.critic.update(positive, negative)
        return logs

    def critic_metrics(self, x, q_z, p_z, seed):
        """The critic's loss and accuracies on a fresh batch, without updating it."""
        loss, t_pos, t_neg = self.critic.loss(*self.critic_batch(x, q_z, p_z, seed))
        return {"loss": loss,
                "accuracy_positive": tf.reduce_mean(tf.cast(t_pos > 0, tf.float32)),
                "accuracy_negative": tf.reduce_mean(tf.cast(t_neg < 0, tf.float32))}

    def get_config(self):
        return {**super().get_config(), "adaptive_contrast": self.adaptive_contrast,
                "moment_samples": self.moment_samples,
                "discriminator_steps": self.discriminator_steps,
                "discriminator_lr": self.discriminator_lr,
                "discriminator_units": list(self.discriminator_units),
                "combine": self.combine}


def _seed_of(fwd):
    """A fresh stateless seed from the model that made `fwd` (random if it has none)."""
    model = getattr(fwd, "model", None)
    if model is not None and hasattr(model, "_seed"):
        return model._seed()  # pylint: disable=protected-access
    return tfp.random.sanitize_seed(None)

"""Adversarial rate: KL(q(z|x) || p(z)) estimated by a discriminator T(x, z) (AVB).

```none
critic:  max_T  E_p(x) E_q(z|x) log sigmoid(T(x, z)) + E_p(x) E_p(z) log(1 - sigmoid(T(x, z)))
         T*(x, z) = log q(z|x) - log p(z)                                  (AVB Prop. 1)
rate:    KL(q(z|x) || p(z)) ~= E_q(z|x)[T(x, z)]

adaptive contrast (AVB Sec. 3.3): r(z|x) = N(mu(x), diag sigma(x)^2) with the moments of
q(z|x) (Monte Carlo over `moment_samples` draws), z~ = (z - mu(x)) / sigma(x); or, with
`contrast_covariance="full"`, r = N(mu(x), C(x)) with the sample covariance, z~ = L^-1 (z - mu);
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

The Gaussian part. E_q[log r(z|x)] = -H(r) and E_q[log p(z)] = E_r[log p(z)] for r with
q's first two moments (both log-densities are quadratic in z; for the diagonal contrast
this needs a diagonal prior covariance, as the standard normal prior has), so
E_q[log r - log p] = KL(r || p). With `gaussian_part="analytic"` that closed form is the
estimate, and its gradient flows through r's moments instead of through one sample z: a
VAE's analytic KL for the Gaussian part of q. With q's exact moments the gradient of the
whole stays that of KL(q || p): the critic's part, through z with (mu, sigma) fixed, is the
gradient of KL(q || r) (its term in the moments vanishes, E_q[log r'] being stationary in
r' at r' = r), and the closed form is the gradient of KL(r || p). With moments estimated
from M draws both hold up to O(1/M): the closed form of an estimated r is biased upward,
by ~ D (D + 1) / (4 M) nats for a full covariance from M draws of z (a sample
covariance's log-determinant is biased low), less for the noise-basis head, whose draws
are per basis and shared. The sampled form has no such bias for a fixed r, and more
variance.

With AC the critic only has to model how q departs from a Gaussian with its own moments,
a small log-ratio near 0, instead of log q - log p, which grows with the KL (tens of nats
for images) where a logistic critic saturates and its estimate falls behind.

The term owns the critic (a `tfvae.critics.DensityRatioEstimator`, its own optimizer) and
updates it with `update_critic`: `discriminator_steps` logistic steps, each on fresh
samples of q(z|x) and p(z) (or r0), every input stopped, so only T moves.

Which T. The model's training step differentiates the critic's last step, fitted to the
current q (Alg. 1). With `critic_average` set, everything else (validation, `evaluate`,
`estimate()`) reads T from an exponential moving average of the critic's weights. Against
a fixed q the average wanders less than the last step; against a q that is still training
it lags, judging an older q, and on Fashion-MNIST it read AVB's KL several nats lower than
the last step did. Hence the default is None: the last step everywhere (measurements:
benchmarks/README.md, "The average as an option").

#### References
[1] Mescheder, Nowozin & Geiger (2017), Adversarial Variational Bayes: Unifying Variational
    Autoencoders and Generative Adversarial Networks, arXiv:1701.04722, Prop. 1-2, Sec. 3.3.
"""

from tfvae import validation
from tfvae._tf import tf, tfd, tfk, tfp
from tfvae.critics import COMBINES, DensityRatioEstimator
from tfvae.objectives.base import Term
from tfvae.registry import TERMS

# Variance floor (latent units^2) of the AC normalization: keeps z~ finite if q collapses
# in a direction; far below the posterior variances of a trained model (~1e-3 .. 1).
MOMENT_FLOOR = 1e-6
CONTRAST_COVARIANCES = ("diagonal", "full")
GAUSSIAN_PARTS = ("sampled", "analytic")
# Global gradient-norm bound of the critic's Adam steps (see AVBTerm.__init__).
CRITIC_CLIPNORM = 1.0


@TERMS.register("avb")
class AVBTerm(Term):
    """The adversarial estimate of KL(q(z|x) || p(z)), [B] nats; owns the critic T(x, z).

    Args:
        weight: the rate's weight (beta). Default value: 1.0.
        adaptive_contrast: contrast q with its moment-matched Gaussian r(z|x) instead of
            with p(z). Default value: False.
        moment_samples: draws of q(z|x) per x for the moments of r (AC only).
            Default value: 64 (sigma's relative error ~ 1/sqrt(2 * 63) = 9% per dim). On the
            8-D Gaussian toy (KL 23 nats) 16 draws gave Pearson r 0.91-0.92 between the
            estimate and the true log-ratio, 64 gave 0.98 (the moments' noise is per-x noise
            in log r).
        contrast_covariance: "diagonal" (AVB's r, N(mu, diag sigma^2)) or "full" (the
            sample covariance of the moment draws, so T only models how q departs from a
            Gaussian, not its correlations; needs moment_samples > latent_dim). With a
            correlated 32-D Gaussian q (KL 30 nats, 12.6 of them correlations) the diagonal
            contrast leaves T a 12.6-nat log-ratio it fits with Pearson r 0.58 (total r 0.81);
            see the test of the known log-ratio. Default value: "diagonal".
        discriminator_steps: critic updates per train step, each on fresh samples, all
            before the model's step (Mescheder et al.'s Alg. 1). Default value: 1.
        discriminator_lr: the critic's Adam learning rate (beta_1 = 0.5, gradients
            clipped to global norm 1). Default value: 1e-3 (the critic has to follow an
            encoder trained at Adam 1e-3).
        discriminator_units: hidden widths of the critic's networks.
            Default value: (256, 256).
        combine: "inner_product" (separate x and z embeddings) or "concat" (one MLP over
            [x, z]); see `DensityRatioEstimator`. Default value: "inner_product".
        critic_average: the decay of the exponential moving average of the critic's
            weights that estimates outside the training step read T from (see "Which T"
            above; 0.99 was measured); None reads the last step's critic everywhere.
            Default value: None.
        gaussian_part: how AC's E_q[log r(z|x) - log p(z)] is computed: "sampled", from
            the samples z with r's moments held fixed, or "analytic", KL(r || p) in closed
            form with the gradient through r's moments (see "The Gaussian part" above).
            Default value: "sampled".
        name: metric name. Default value: "avb".
    """

    critic_order = "before"
    estimates_rate = True

    def __init__(self, weight=1.0, adaptive_contrast=False, moment_samples=64,
                 contrast_covariance="diagonal", discriminator_steps=1, discriminator_lr=1e-3,
                 discriminator_units=(256, 256),
                 combine="inner_product", critic_average=None, gaussian_part="sampled",
                 name=None):
        super().__init__(weight=weight, name=name)
        self.adaptive_contrast = validation.boolean(adaptive_contrast, "adaptive_contrast")
        # Two draws are the least that give a variance; fewer would divide by zero.
        self.moment_samples = validation.integer(moment_samples, "moment_samples", minimum=2)
        self.contrast_covariance = validation.choice(contrast_covariance,
                                                     "contrast_covariance", CONTRAST_COVARIANCES)
        self.gaussian_part = validation.choice(gaussian_part, "gaussian_part", GAUSSIAN_PARTS)
        if self.gaussian_part == "analytic" and not self.adaptive_contrast:
            raise ValueError("`gaussian_part='analytic'` is adaptive contrast's Gaussian "
                             "part; set adaptive_contrast=True or leave gaussian_part "
                             "'sampled'.")
        self.discriminator_steps = validation.positive_int(discriminator_steps,
                                                           "discriminator_steps")
        self.critic_steps = self.discriminator_steps
        self.discriminator_lr = validation.positive(discriminator_lr, "discriminator_lr")
        self.discriminator_units = validation.positive_ints(discriminator_units,
                                                            "discriminator_units")
        self.combine = validation.choice(combine, "combine", COMBINES)
        self.metric_keys = ("contrast_kl",) if self.adaptive_contrast else ()
        # Clipped critic steps: the inner-product critic's gradient is a product of two
        # embeddings, and an unclipped step can jump E_q[T] far from the log-ratio.
        self.critic = DensityRatioEstimator(
            hidden_units=self.discriminator_units, combine=combine, name="discriminator",
            average=critic_average,
            optimizer=tfk.optimizers.Adam(self.discriminator_lr, beta_1=0.5,
                                          global_clipnorm=CRITIC_CLIPNORM))
        self.critic_average = self.critic.average

    def build_critic(self, image_shape, latent_dim):
        if self.contrast_covariance == "full" and self.moment_samples <= latent_dim:
            raise ValueError(f"`contrast_covariance='full'` needs moment_samples > latent_dim "
                             f"({latent_dim}) for a full-rank sample covariance; got "
                             f"{self.moment_samples}.")
        self.critic.build_for((tf.zeros((1, *image_shape)), tf.zeros((1, latent_dim))))

    # ------------------------------------------------------------------ pieces

    def sample_moments(self, q_z, seed, stop=True):
        """mu(x) [B, D] and, for the contrast's covariance, the covariance [B, D, D] ("full")
        or variance [B, D] ("diagonal") of q(z|x) from `moment_samples` draws: the head's
        own estimator where it has one (the noise-basis head shares its draws across x),
        else draws of z per x. With `stop` no gradient flows through them."""
        full = self.contrast_covariance == "full"
        head = getattr(q_z, "head", None)
        if hasattr(head, "sample_moments"):
            mu, second = head.sample_moments(q_z.features, self.moment_samples, seed, full)
        else:
            z = q_z.sample(self.moment_samples, seed=seed)  # [M, B, D]
            z = tf.stop_gradient(z) if stop else z
            if full:
                mu = tf.reduce_mean(z, 0)
                zc = z - mu
                second = tf.einsum("mbi,mbj->bij", zc, zc) / (self.moment_samples - 1.0)
            else:
                mu, second = tf.nn.moments(z, axes=[0])
                second = second * self.moment_samples / (self.moment_samples - 1)  # unbiased
        if stop:
            return tf.stop_gradient(mu), tf.stop_gradient(second)
        return mu, second

    def gaussian(self, mu, second):
        """r(z|x) = N(mu, second) (+ MOMENT_FLOOR on the variances) and its (loc, scale):
        sigma [B, D] for the diagonal contrast, the Cholesky factor [B, D, D] for the full."""
        if self.contrast_covariance == "diagonal":
            sigma = tf.sqrt(second + MOMENT_FLOOR)
            return tfd.MultivariateNormalDiag(mu, sigma), (mu, sigma)
        tril = tf.linalg.cholesky(second + MOMENT_FLOOR * tf.eye(tf.shape(second)[-1]))
        return tfd.MultivariateNormalTriL(mu, tril), (mu, tril)

    def whitener(self, mu, scale):
        """z -> z~ = scale^-1 (z - mu), which maps r(z|x) to N(0, I); z [S, B, D] or [B, D]."""
        if self.contrast_covariance == "diagonal":
            return lambda v: (v - mu) / scale
        return lambda v: tf.linalg.triangular_solve(scale, (v - mu)[..., None],
                                                    lower=True)[..., 0]

    def contrast(self, q_z, seed):
        """r(z|x) with q's Monte-Carlo moments, and the whitening z -> z~ that maps r to
        N(0, I): diagonal (mu, sigma) or, with `contrast_covariance="full"`, the sample
        mean and the Cholesky factor of the sample covariance (+ MOMENT_FLOOR I)."""
        r_z, (mu, scale) = self.gaussian(*self.sample_moments(q_z, seed))
        return r_z, self.whitener(mu, scale)

    def critic_value(self, x, z, average=True):
        """T(x, z) for z [S, B, D] (or [B, D]) against x [B, ...]: [S, B] (or [B]), from the
        critic's weight average (`critic_average`; the critic itself without one), or with
        `average=False` from the critic's last step."""
        critic = self.critic.evaluator if average else self.critic
        if z.shape.rank == 2:
            return critic((x, z))
        s, b = tf.shape(z)[0], tf.shape(z)[1]
        x_rep = tf.reshape(tf.repeat(x[None], s, axis=0),
                           tf.concat([[s * b], tf.shape(x)[1:]], 0))
        x_rep.set_shape(tf.TensorShape([None]).concatenate(x.shape[1:]))
        # A static latent width, so that a critic first called in a tf.function can build.
        t = critic((x_rep, tf.reshape(z, [-1, z.shape[-1] or tf.shape(z)[-1]])))
        return tf.reshape(t, [s, b])

    def estimate(self, x, q_z, z, p_z, seed=None, average=True):
        """The rate estimate and its parts, per example.

        Args:
            x: images [B, H, W, C].
            q_z: q(z|x), batch [B].
            z: samples of q_z, [S, B, D]; gradients flow through them.
            p_z: the prior.
            seed: stateless seed for the moment draws (AC only).
            average: read T from the critic's weight average (True), or from its last step.

        Returns:
            dict: "kl" [B] (the KL estimate, nats); with AC also "contrast" [B], the
            estimate E_q[T] of KL(q || r), and "gaussian" [B], E_q[log r - log p]
            (`gaussian_part`: from the samples z, or KL(r || p) in closed form).
        """
        if not self.adaptive_contrast:
            return {"kl": tf.reduce_mean(self.critic_value(x, z, average), 0)}
        if self.gaussian_part == "analytic":
            r_z, (mu, scale) = self.gaussian(*self.sample_moments(q_z, seed, stop=False))
            whiten = self.whitener(tf.stop_gradient(mu), tf.stop_gradient(scale))
            gaussian = tfd.kl_divergence(r_z, p_z)
        else:
            r_z, whiten = self.contrast(q_z, seed)
            gaussian = tf.reduce_mean(r_z.log_prob(z) - p_z.log_prob(z), 0)
        contrast = tf.reduce_mean(self.critic_value(x, whiten(z), average), 0)
        return {"kl": contrast + gaussian, "contrast": contrast, "gaussian": gaussian}

    def critic_batch(self, x, q_z, p_z, seed):
        """(positive, negative) critic inputs: (x, z ~ q(z|x)) and (x, z ~ p(z)); with AC
        (x, z~) and (x, n ~ N(0, I)). Every tensor is stopped: only the critic learns."""
        q_seed, p_seed, m_seed = tfp.random.split_seed(seed, 3)
        x = tf.stop_gradient(x)
        z = tf.stop_gradient(q_z.sample(seed=q_seed))  # [B, D]
        batch = tf.shape(z)[0]
        if self.adaptive_contrast:
            positive = self.contrast(q_z, m_seed)[1](z)
            negative = tf.random.stateless_normal(tf.shape(z), p_seed, dtype=z.dtype)
        else:
            positive = z
            negative = p_z.sample(batch, seed=p_seed)
        return (x, positive), (x, negative)

    # ------------------------------------------------------------------ the Term contract

    def _estimate(self, fwd):
        return fwd.memo(("avb", self.name), lambda: self.estimate(
            fwd.x, fwd.q_z, fwd.z, fwd.p_z, seed=fwd.seed_for(self.name),
            average=not fwd.training))

    def __call__(self, fwd):
        """E_q[T(x, z)] (or its AC form), [B] nats, from the forward pass's samples."""
        return self._estimate(fwd)["kl"]

    def metrics(self, fwd):
        if not self.adaptive_contrast:
            return {}
        return {"contrast_kl": tf.reduce_mean(self._estimate(fwd)["contrast"])}

    def update_critic(self, fwd, seed):
        """One logistic step of T on fresh samples of q(z|x) and p(z) for fwd's x."""
        return self.critic.update(*self.critic_batch(fwd.x, fwd.q_z, fwd.p_z, seed))

    def critic_metrics(self, fwd, seed):
        return self.critic.metrics(*self.critic_batch(fwd.x, fwd.q_z, fwd.p_z, seed))

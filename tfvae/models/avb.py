"""Adversarial Variational Bayes: an implicit posterior trained against a discriminator.

```none
encoder   z = g(x, eps), eps ~ N(0, I)        q(z|x) has no density (posterior "implicit")
critic    T(x, z), logistic loss: q(z|x) samples vs p(z) samples; T* = log q(z|x) - log p(z)
model     max  E_q[log p(x|z) - T(x, z)]      = ELBO when T = T*
AC        max  E_q[log p(x|z) - T(x, z~) - log r(z|x) + log p(z)],  z~ = (z - mu) / sigma
```
One train step (Mescheder et al. 2017, Alg. 1, run as alternating updates):

1. `discriminator_update`: `discriminator_steps` logistic steps of T on fresh samples of
   q(z|x) and p(z); only T's variables move, by T's own optimizer.
2. `model_update`: one step of the encoder, posterior head and decoder on
   -E_q[log p(x|z)] + beta * E_q[T] (the term `tfvae.objectives.avb.AVBTerm`, which owns
   T); only their variables move, by the model's optimizer (`compile(optimizer=...)`).

Reported metrics (fit, evaluate and TensorBoard logs), batch means in nats:
`loss`; `reconstruction` = -E_q[log p(x|z)]; `kl` = the critic's estimate of
KL(q(z|x) || p(z)) (E_q[T], or E_q[T(x, z~) + log r - log p] with AC); `elbo` =
-(reconstruction + kl), an *estimate* of the ELBO, not a bound (an untrained or
saturated critic misjudges the KL either way); with AC `contrast_kl`, the estimate
E_q[T] of KL(q || r); `discriminator_loss`; `discriminator_accuracy_q` (share of
q(z|x) samples the critic calls q) and `discriminator_accuracy_p` (share of p(z)
samples, or r0 = N(0, I) samples with AC, it calls p). In `evaluate` the critic is
scored on fresh samples without being updated.

log p(x) is evaluated honestly by importance sampling (`tfvae.evaluation.log_likelihood`)
with `proposal(x)`, a Gaussian fitted to samples of q(z|x); see there.

Why a term *and* a model: the adversarial KL with its critic is one registered objective
term (`"avb"`), so any VAE can use it (e.g. with weight 0 beside the analytic `kl`, as a
monitor, updated by `VAE.train_step` after the model step). AVB changes the update
structure, which DESIGN.md reserves for a model: its critic steps come *first*, on fresh
samples, so the encoder's gradient uses a T fitted to the current q, and
`discriminator_steps` > 1 is possible; it also fixes the metric names above and adds the
importance-sampling proposal.

#### References
[1] Mescheder, Nowozin & Geiger (2017), Adversarial Variational Bayes: Unifying Variational
    Autoencoders and Generative Adversarial Networks, arXiv:1701.04722.
"""

import numbers

import numpy as np

from tfvae._tf import tf, tfd, tfk
from tfvae.models.vae import VAE, _check_positive_int
from tfvae.objectives.base import check_weight
from tfvae.objectives.avb import AVBTerm
from tfvae.posteriors.implicit import check_noise_dim
from tfvae.registry import MODELS

# Added to the fitted proposal's covariance (latent units^2): keeps the Cholesky factor
# defined if q(z|x) is (numerically) degenerate in a direction; widening is always safe.
PROPOSAL_JITTER = 1e-6


def _is_implicit(posterior):
    name = posterior.get("name") if isinstance(posterior, dict) else posterior
    return name == "implicit"


@MODELS.register("avb")
class AVB(VAE):
    """A VAE whose posterior is a sampler, trained with a discriminator T(x, z).

    Takes every `tfvae.VAE` argument except `terms`, `kl` and `objective` (the objective is
    fixed: reconstruction + beta * adversarial KL), plus:

    Args:
        posterior: default "implicit"; a Gaussian head ("diagonal", "full_covariance")
            also works, e.g. to check the adversarial KL against the analytic one.
        noise_dim: dimension of the implicit posterior's noise eps. Default value:
            latent_dim.
        adaptive_contrast: use AVB's adaptive contrast (Sec. 3.3). Default value: False.
        discriminator_steps: critic updates per train step. Default value: 1.
        discriminator_lr: the critic's Adam learning rate. Default value: 1e-3.
        discriminator_units: hidden widths of the critic's x and z networks.
            Default value: (256, 256).
        moment_samples: draws of q(z|x) for the moments of r(z|x) (AC). Default value: 16.
        proposal_samples: draws of q(z|x) the importance-sampling proposal is fitted to;
            must exceed latent_dim (full covariance). Default value: 256.
        proposal_scale: factor by which the proposal's scale is widened (>= 1).
            Default value: 1.5 (see `proposal`).
    """

    def __init__(self, latent_dim=32, posterior="implicit", noise_dim=None,
                 adaptive_contrast=False, discriminator_steps=1, discriminator_lr=1e-3,
                 discriminator_units=(256, 256), moment_samples=16, proposal_samples=256,
                 proposal_scale=1.5, beta=1.0, terms=None, kl="auto", objective="elbo",
                 name="avb", **kwargs):
        if objective != "elbo":
            raise ValueError(f"AVB trains on its adversarial ELBO; `objective` must be 'elbo'; "
                             f"got {objective!r}.")
        if terms is not None:
            raise ValueError("AVB builds its objective itself (reconstruction + beta * "
                             f"adversarial KL); `terms` must be None; got {terms!r}.")
        if kl != "auto":
            raise ValueError(f"AVB estimates the KL with its discriminator; `kl` must be "
                             f"'auto'; got {kl!r}.")
        beta = check_weight(beta, "beta")
        posterior_arg = posterior
        if noise_dim is not None:
            noise_dim = check_noise_dim(noise_dim)
            if isinstance(posterior, str) and _is_implicit(posterior):
                posterior = {"name": "implicit", "noise_dim": noise_dim}
            elif isinstance(posterior, dict) and _is_implicit(posterior):
                posterior = {**posterior, "noise_dim": noise_dim}
            else:
                raise ValueError(f"`noise_dim` applies to the implicit posterior only; got "
                                 f"posterior={posterior!r}.")
        term = AVBTerm(weight=beta, adaptive_contrast=adaptive_contrast,
                       moment_samples=moment_samples, discriminator_steps=discriminator_steps,
                       discriminator_lr=discriminator_lr,
                       discriminator_units=discriminator_units)
        super().__init__(latent_dim=latent_dim, posterior=posterior, beta=beta,
                         terms=["reconstruction", term], name=name, **kwargs)
        self.posterior_arg = posterior_arg
        if isinstance(proposal_samples, bool) or not isinstance(proposal_samples, numbers.Integral) \
                or proposal_samples <= self.latent_dim:
            raise ValueError(f"`proposal_samples` must be an int > latent_dim = "
                             f"{self.latent_dim} (a full covariance needs more draws than "
                             f"dimensions); got {proposal_samples!r}.")
        self.proposal_samples = int(proposal_samples)
        if isinstance(proposal_scale, bool) or not isinstance(proposal_scale, numbers.Real) \
                or not proposal_scale >= 1.0:
            raise ValueError(f"`proposal_scale` must be a number >= 1 (the proposal is widened, "
                             f"never narrowed); got {proposal_scale!r}.")
        self.proposal_scale = float(proposal_scale)
        # The proposal is fitted to q(z|x) on the same noise draws for every x and call, so
        # it is a deterministic function of x: log_likelihood's seed then fixes every draw.
        noise_dim = getattr(self.posterior, "noise_dim", None)
        self.proposal_noise = None if noise_dim is None else np.random.default_rng(
            self.seed).normal(size=(self.proposal_samples, 1, noise_dim)).astype(np.float32)

        names = ["loss", "reconstruction", "kl", "elbo"]
        names += ["contrast_kl"] if self.avb_term.adaptive_contrast else []
        names += ["discriminator_loss", "discriminator_accuracy_q", "discriminator_accuracy_p"]
        self._trackers = {n: tfk.metrics.Mean(name=n) for n in names}
        critic = self.avb_term.critic
        critic((tf.zeros((1, *self.image_shape)), tf.zeros((1, self.latent_dim))))
        critic.critic_optimizer.build(critic.trainable_variables)

    @property
    def avb_term(self):
        """The `AVBTerm` that owns the discriminator T(x, z)."""
        return self.terms[1]

    @property
    def discriminator(self):
        """T(x, z), a `tfvae.critics.DensityRatioEstimator` with its own optimizer."""
        return self.avb_term.critic

    # ------------------------------------------------------------------ objective

    def _forward_and_losses(self, x, training):
        fwd = self.forward(x, training=training)
        parts = self.avb_term.estimate(fwd.x, fwd.q_z, fwd.z, fwd.p_z, seed=self._seed())
        reconstruction = tf.reduce_mean(fwd.distortion)
        kl = tf.reduce_mean(parts["kl"])
        values = {"loss": reconstruction + self.avb_term.weight_at(fwd.step) * kl,
                  "reconstruction": reconstruction, "kl": kl, "elbo": -(reconstruction + kl)}
        if "contrast" in parts:
            values["contrast_kl"] = tf.reduce_mean(parts["contrast"])
        return fwd, values

    def elbo(self, x, num_samples=1, seed=None):
        """The ELBO *estimate* E_q[log p(x|z)] - KL_T, [B] nats (KL_T: the critic's estimate;
        not a bound). For log p(x) use `tfvae.evaluation.log_likelihood`."""
        fwd = self.forward(x, num_samples=_check_positive_int(num_samples, "num_samples"),
                           seed=seed)
        return -(fwd.distortion + self.avb_term.estimate(
            fwd.x, fwd.q_z, fwd.z, fwd.p_z, seed=self._seed())["kl"])

    # ------------------------------------------------------------------ training

    @staticmethod
    def _discriminator_logs(logs):
        return {"discriminator_loss": logs["loss"],
                "discriminator_accuracy_q": logs["accuracy_positive"],
                "discriminator_accuracy_p": logs["accuracy_negative"]}

    def discriminator_update(self, x):
        """`discriminator_steps` steps of T's optimizer on T's logistic loss, on fresh samples
        of q(z|x) for `x` and of p(z). Moves only T's variables.

        Args:
            x: images [B, H, W, C].

        Returns:
            dict: discriminator_loss, discriminator_accuracy_q, discriminator_accuracy_p.
        """
        x = tf.convert_to_tensor(x, self.compute_dtype)
        q_z = self.encode(x, training=True)
        return self._discriminator_logs(
            self.avb_term.fit_critic(x, q_z, self.prior, self._seed()))

    def model_update(self, x):
        """One step of the model's optimizer on -E_q[log p(x|z)] + beta * KL_T with T fixed.
        Moves only the encoder, posterior and decoder (and likelihood) variables.

        Args:
            x: images [B, H, W, C].

        Returns:
            dict: loss, reconstruction, kl, elbo (and contrast_kl with AC).
        """
        with tf.GradientTape() as tape:
            _, values = self._forward_and_losses(x, training=True)
        variables = self.model_variables()
        grads = tape.gradient(values["loss"], variables)
        self.optimizer.apply_gradients(zip(grads, variables))
        return values

    def train_step(self, data):
        x = self._unpack(data)
        logs = self.discriminator_update(x)
        logs.update(self.model_update(x))
        return self._update_trackers(logs)

    def test_step(self, data):
        x = self._unpack(data)
        fwd, values = self._forward_and_losses(x, training=False)
        values.update(self._discriminator_logs(
            self.avb_term.critic_metrics(fwd.x, fwd.q_z, self.prior, self._seed())))
        return self._update_trackers(values)

    # ------------------------------------------------------------------ evaluation

    def proposal(self, x):
        """The importance-sampling proposal r(z|x) for `tfvae.evaluation.log_likelihood`.

        For the implicit posterior: a per-example Gaussian fitted to `proposal_samples`
        draws of q(z|x) (sample mean and full sample covariance, plus 1e-6 I), its scale
        widened by `proposal_scale`:

        ```none
        r(z|x) = N(m(x), c^2 C(x)),  m, C: moments of z_j = g(x, eps_j), j = 1..M;  c = 1.5
        log p(x) ~= log (1/k) sum_i p(x|z_i) p(z_i) / r(z_i|x),   z_i ~ r(z|x)
        ```
        This is an importance-sampling estimate with a fitted proposal, not an IWAE bound
        of q: it is valid for any proposal with full support (a Gaussian has it), the mean
        of the weights is unbiased for p(x), and its log is a stochastic lower bound of
        log p(x) in expectation (Jensen), exact as k -> inf. Widening makes r's tails
        heavier than q's, which keeps the weights' variance finite when the posterior has
        heavier tails than a Gaussian or q is narrower than the posterior. Widening costs
        too: for a Gaussian target, KL(target || r) grows by D (log c - (1 - 1/c^2) / 2)
        nats (0.9 nats for D = 32, c = 1.2; 4.1 for c = 1.5), and the k importance sampling
        needs grows like exp(KL). AVB's q is narrower than the posterior (a critic that
        underestimates the KL lets the encoder shrink q), so wider wins in practice: on
        FMNIST-bin after 10 epochs (k = 1000, first 200 test images) c = 1.0 / 1.2 / 1.5
        gave NLL 149.6 / 145.6 / 141.4 (AVB) and 127.3 / 125.6 / 124.4 (AVB + AC). The
        draws eps_j are fixed (seeded by the model's `seed`), so r is a deterministic
        function of x.

        A Gaussian posterior (a density) is its own proposal: the usual IWAE estimate.

        Args:
            x: images [B, H, W, C].

        Returns:
            a `tfd.MultivariateNormalTriL` with batch [B], event [D] (or q(z|x) itself).
        """
        q_z = self.encode(x)
        if self.posterior.has_density:
            return q_z
        if self.proposal_noise is not None and hasattr(q_z, "transform"):
            z = q_z.transform(tf.constant(self.proposal_noise, q_z.dtype))  # [M, B, D]
        else:
            z = q_z.sample(self.proposal_samples, seed=tf.constant([self.seed, 1], tf.int32))
        m = self.proposal_samples
        loc = tf.reduce_mean(z, 0)
        zc = z - loc
        cov = tf.einsum("mbi,mbj->bij", zc, zc) / (m - 1)
        cov += PROPOSAL_JITTER * tf.eye(self.latent_dim, dtype=cov.dtype)
        scale_tril = self.proposal_scale * tf.linalg.cholesky(cov)
        return tfd.MultivariateNormalTriL(loc=loc, scale_tril=scale_tril,
                                          validate_args=self.validate_args, name="proposal")

    # ------------------------------------------------------------------ config and CLI

    def get_config(self):
        config = super().get_config()
        for key in ("terms", "kl", "objective"):
            config.pop(key, None)
        term = self.avb_term
        config.update({
            "posterior": self.posterior_arg,
            "noise_dim": getattr(self.posterior, "noise_dim", None)
            if _is_implicit(self.posterior_arg) else None,
            "adaptive_contrast": term.adaptive_contrast,
            "discriminator_steps": term.discriminator_steps,
            "discriminator_lr": term.discriminator_lr,
            "discriminator_units": list(term.discriminator_units),
            "moment_samples": term.moment_samples,
            "proposal_samples": self.proposal_samples,
            "proposal_scale": self.proposal_scale})
        return config

    #: constructor kwargs the command line sets: flag "--noise-dim" -> kwarg "noise_dim".
    CLI_KWARGS = ("noise_dim", "adaptive_contrast", "discriminator_steps", "discriminator_lr",
                  "discriminator_units", "moment_samples", "proposal_scale")

    @classmethod
    def add_arguments(cls, parser):
        """Adds AVB's flags (all default None: unset flags keep the constructor defaults)."""
        # The train app's --posterior defaults to a Gaussian head; AVB's is the implicit one
        # (a flag or a preset still wins). The action's default, not set_defaults: parser
        # defaults survive a parse with suppressed defaults and would read as typed.
        for action in parser._actions:  # pylint: disable=protected-access
            if action.dest == "posterior":
                action.default = "implicit"
        group = parser.add_argument_group("AVB (--model avb)")
        group.add_argument("--noise-dim", type=int, default=None,
                           help="dimension of the implicit posterior's noise (default: "
                                "latent dim)")
        group.add_argument("--adaptive-contrast", action="store_true", default=None,
                           help="AVB with adaptive contrast (Mescheder et al. 2017, Sec. 3.3)")
        group.add_argument("--discriminator-steps", type=int, default=None,
                           help="discriminator updates per train step (default: 1)")
        group.add_argument("--discriminator-lr", type=float, default=None,
                           help="the discriminator's Adam learning rate (default: 1e-3)")
        group.add_argument("--discriminator-units", type=int, nargs="+", default=None,
                           help="hidden widths of the discriminator (default: 256 256)")
        group.add_argument("--moment-samples", type=int, default=None,
                           help="samples of q(z|x) for adaptive contrast's moments "
                                "(default: 16)")
        group.add_argument("--proposal-scale", type=float, default=None,
                           help="widening of the importance-sampling proposal (default: 1.5)")
        return parser

    @classmethod
    def kwargs_from_args(cls, args):
        """Constructor kwargs for the AVB flags that were set."""
        kwargs = {k: getattr(args, k) for k in cls.CLI_KWARGS if getattr(args, k, None) is not None}
        if "discriminator_units" in kwargs:
            kwargs["discriminator_units"] = tuple(kwargs["discriminator_units"])
        return kwargs

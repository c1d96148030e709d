"""Three Monte-Carlo estimators of the ELBO's gradient with respect to the encoder.

```none
ELBO(phi) = E_q_phi(z|x)[ log p(x|z) ] - KL(q_phi(z|x) || p(z))      (the KL analytic)
reparameterization:       grad_phi log p(x | z = g_phi(eps)),           eps ~ N(0, I)
score_function:           log p(x|z) grad_phi log q_phi(z|x),           z ~ q_phi(z|x)
score_function_baseline:  (log p(x|z) - b(x)) grad_phi log q_phi(z|x),  b(x) = log p(x|E_q[z])
```
minus grad_phi KL in each (the same analytic KL gradient for all three). All three are
unbiased: E_q[grad log q] = 0, so a baseline that does not depend on z changes only the
variance. The score function needs no gradient of the
decoder in z (it works for discrete z), and pays with a variance that grows with the size
of log p(x|z) -- hundreds of nats for an image -- which the baseline only partly removes.
Reparameterization moves the gradient through the sample, which is why VAEs use it.

Each draw is one sample of z per example and the gradient of the batch-mean ELBO; the
statistics are over `num_draws` independent draws, accumulated in float64.

#### References
[1] Williams (1992), Simple statistical gradient-following algorithms (REINFORCE).
[2] Kingma & Welling (2014), Auto-Encoding Variational Bayes, arXiv:1312.6114.
[3] Mohamed, Rosca, Figurnov & Mnih (2020), Monte Carlo Gradient Estimation in Machine
    Learning, JMLR, arXiv:1906.10652.
"""

import dataclasses

import numpy as np

from tfvae._tf import tf, tfd
from tfvae.latent import _checks
from tfvae.seeds import stateless_seed

ESTIMATORS = ("reparameterization", "score_function", "score_function_baseline")


@dataclasses.dataclass
class GradientStatistics:
    """Per-parameter Monte-Carlo statistics of an ELBO-gradient estimator (estimates).

    Attributes:
        estimator: its name.
        names: the encoder variables' names.
        mean: per variable, the mean of the draws (same shape as the variable).
        variance: per variable, the variance of one draw (ddof = 1).
        num_draws: how many draws; the standard error of `mean` is sqrt(variance / num_draws).
    """
    estimator: str
    names: list
    mean: list
    variance: list
    num_draws: int

    @property
    def total_variance(self):
        """Sum of the per-parameter variances: E ||g - E g||^2 for one draw."""
        return float(sum(v.sum() for v in self.variance))

    def flat_mean(self):
        return np.concatenate([m.ravel() for m in self.mean])

    def flat_variance(self):
        return np.concatenate([v.ravel() for v in self.variance])


def encoder_variables(model):
    """The trainable variables of q(z|x): the encoder torso's and the posterior head's."""
    return list(model.encoder.trainable_variables) + list(model.posterior.trainable_variables)


def surrogate_elbo(model, x, estimator, seed):
    """A scalar whose gradient in the encoder variables is one draw of `estimator`."""
    q = model.encode(x)
    try:
        kl = tfd.kl_divergence(q, model.prior)
    except NotImplementedError:
        raise ValueError(f"gradient_variance needs an analytic KL between the posterior "
                         f"{type(q).__name__} and the prior.") from None
    if estimator == "reparameterization":
        return tf.reduce_mean(model.decode(q.sample(seed=seed)).log_prob(x) - kl)
    z = tf.stop_gradient(q.sample(seed=seed))
    signal = model.decode(z).log_prob(x)
    if estimator == "score_function_baseline":
        signal -= model.decode(q.mean()).log_prob(x)
    return tf.reduce_mean(tf.stop_gradient(signal) * q.log_prob(z) - kl)


def gradient_variance(model, x, estimator="reparameterization", num_draws=1000, seed=0):
    """Mean and variance of an estimator of grad_phi mean_B ELBO(x), per encoder parameter.

    Args:
        model: a `tfvae.VAE` (or any model with `encode`, `decode`, `prior`, `encoder` and
            `posterior` layers) whose posterior has an analytic KL to the prior.
        x: a batch of images [B, H, W, C].
        estimator: "reparameterization", "score_function" or "score_function_baseline".
        num_draws: independent gradient draws, >= 2. Default value: 1000.
        seed: int; draw i uses the stateless seed fold_in(seed, i).

    Returns:
        `GradientStatistics` (Monte-Carlo estimates).
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"`estimator` must be one of {list(ESTIMATORS)}; got {estimator!r}.")
    num_draws = _checks.check_positive_int(num_draws, "num_draws")
    if num_draws < 2:
        raise ValueError(f"`num_draws` must be >= 2 to estimate a variance; got {num_draws}.")
    x = model.check_inputs(x)
    variables = encoder_variables(model)
    if not variables:
        raise ValueError("The model's encoder has no trainable variables.")
    base = stateless_seed(seed)

    @tf.function
    def run():
        sums = [tf.zeros(v.shape, tf.float64) for v in variables]
        squares = [tf.zeros(v.shape, tf.float64) for v in variables]
        for i in tf.range(num_draws):
            with tf.GradientTape() as tape:
                value = surrogate_elbo(model, x, estimator,
                                       tf.random.experimental.stateless_fold_in(base, i))
            grads = [tf.cast(g, tf.float64) for g in tape.gradient(value, variables)]
            sums = [s + g for s, g in zip(sums, grads)]
            squares = [s + g * g for s, g in zip(squares, grads)]
        return sums, squares

    sums, squares = run()
    mean = [s.numpy() / num_draws for s in sums]
    variance = [np.maximum(q.numpy() - num_draws * m**2, 0.0) / (num_draws - 1)
                for q, m in zip(squares, mean)]
    return GradientStatistics(estimator, [v.name for v in variables], mean, variance, num_draws)

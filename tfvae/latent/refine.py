"""Per-example variational inference with the decoder fixed: the inference gaps.

```none
log p(x) - ELBO(q_amortized)  =  [log p(x) - ELBO(q*)]  +  [ELBO(q*) - ELBO(q_amortized)]
                                  approximation gap         amortization gap
```
q* is the best full-covariance Gaussian for this one x, found by Adam on the ELBO from the
encoder's q(z|x): the SVI that amortization replaces. The ELBO is E_q[log w] with
log w = log p(x|z) + log p(z) - log q(z); its gradient is the reparameterized one with the
score term dropped (Roeder et al.'s "sticking the landing", unbiased), and the reported
ELBOs are Monte-Carlo means of log w: both have a spread that goes to 0 as q approaches
the true posterior, so q* reaches it closely where it is in the family. log p(x) is the
importance-weighted estimate log mean_k w_k with q* as proposal (Burda et al.), which q*
makes tight.

Both ELBOs are evaluated on the same `eval_samples` standard-normal draws (common random
numbers), so their difference has far less noise than either. If the optimized q scores below
the encoder's q on those draws (or is not finite), the encoder's q is kept: refinement only
moves up. q is parameterized relative to the encoder's q (`_q_params`), so the learning rate
means the same for a posterior of width 1 and one of width 1e-3.

#### References
[1] Cremer, Li & Duvenaud (2018), Inference Suboptimality in Variational Autoencoders, ICML,
    arXiv:1801.03558.
[2] Hoffman, Blei, Wang & Paisley (2013), Stochastic Variational Inference, JMLR.
[3] Roeder, Wu & Duvenaud (2017), Sticking the Landing, NeurIPS, arXiv:1703.09194.
"""

import dataclasses
import math

import numpy as np

from tfvae._tf import tf, tfd, tfk
from tfvae.latent import _checks
from tfvae.seeds import stateless_seed

KINDS = {
    "amortized_elbo": "estimate of a lower bound on log p(x) (Monte Carlo mean of log w)",
    "refined_elbo": "estimate of a lower bound on log p(x) (Monte Carlo mean of log w)",
    "log_px": "estimate of log p(x) (importance sampling with q*; biased low, consistent)",
    "amortization_gap": "estimate (refined_elbo - amortized_elbo, same draws; >= 0)",
    "approximation_gap": "estimate (log_px - refined_elbo; biased low like log_px)",
}


@dataclasses.dataclass
class InferenceGaps:
    """Per-example results of `refine_posterior`, each [B] float64 nats (see `KINDS`)."""
    amortized_elbo: np.ndarray
    refined_elbo: np.ndarray
    log_px: np.ndarray
    amortization_gap: np.ndarray
    approximation_gap: np.ndarray
    refined_posterior: tfd.Distribution
    kept_initial: int  # examples where optimization did not beat the encoder's q

    def summary(self):
        """{name: (mean over examples, what kind of number it is)}."""
        return {k: (float(np.mean(getattr(self, k))), KINDS[k]) for k in KINDS}


def _gaussian_parts(q):
    if not isinstance(q, tfd.MultivariateNormalLinearOperator):
        raise ValueError(f"refine_posterior needs a Gaussian q(z|x) (a MultivariateNormal); "
                         f"the encoder gives {type(q).__name__}.")
    return tf.convert_to_tensor(q.loc), q.scale.to_dense()


def _strictly_lower(m):
    return tf.linalg.band_part(m, -1, 0) - tf.linalg.band_part(m, 0, 0)


def _q_params(loc0, delta, log_diag, unit_lower):
    """(loc, L) = (loc0 + L delta, L = (I + N) diag(exp(s))): every free parameter is in
    units of q's current width, so one Adam step moves q by a fixed fraction of its own
    width whether that width is 1 or 1e-3."""
    eye = tf.eye(tf.shape(loc0)[-1], dtype=loc0.dtype)
    tril = (eye + _strictly_lower(unit_lower)) * tf.exp(log_diag)[:, None, :]
    return loc0 + tf.einsum("bij,bj->bi", tril, delta), tril


def _log_weights(model, x, q, z):
    """log p(x|z) + log p(z) - log q(z), [S, B] for z [S, B, K]."""
    return model.decode(z).log_prob(x) + model.prior.log_prob(z) - q.log_prob(z)


def refine_posterior(model, x, steps=300, learning_rate=0.05, num_samples=16,
                     eval_samples=1000, iwae_samples=1000, chunk_size=100, seed=0):
    """Fits a full-covariance Gaussian q*(z|x) per example with the decoder fixed.

    Args:
        model: a `tfvae.VAE` (or any model with `encode`, `decode`, `prior`, `latent_dim`)
            whose q(z|x) is a multivariate normal. Its variables are not changed.
        x: images [B, H, W, C] (one batch; loop over batches for a data set).
        steps: Adam steps. Default value: 300.
        learning_rate: initial rate; it decays linearly to 1% of it. Default value: 0.05.
        num_samples: reparameterized samples per example per step. Default value: 16.
        eval_samples: common draws for the two ELBO estimates. Default value: 1000.
        iwae_samples: importance samples for log p(x). Default value: 1000.
        chunk_size: samples decoded at once in evaluation. Default value: 100.
        seed: int; every draw derives from it.

    Returns:
        `InferenceGaps`.
    """
    x = model.check_inputs(x)
    steps = _checks.check_positive_int(steps, "steps")
    learning_rate = _checks.check_positive_float(learning_rate, "learning_rate")
    num_samples = _checks.check_positive_int(num_samples, "num_samples")
    eval_samples = _checks.check_positive_int(eval_samples, "eval_samples")
    iwae_samples = _checks.check_positive_int(iwae_samples, "iwae_samples")
    chunk_size = min(_checks.check_positive_int(chunk_size, "chunk_size"),
                     max(eval_samples, iwae_samples))
    loc0, tril0 = _gaussian_parts(model.encode(x))
    batch, dim = int(loc0.shape[0]), int(loc0.shape[-1])
    train_seed, eval_seed, iwae_seed = tf.unstack(tf.random.experimental.stateless_split(
        stateless_seed(seed), 3))

    diag0 = tf.linalg.diag_part(tril0)
    delta = tf.Variable(tf.zeros_like(loc0))
    log_diag = tf.Variable(tf.math.log(diag0))
    unit_lower = tf.Variable(tril0 / diag0[:, None, :])  # L0 = (I + N) diag(d0)
    variables = [delta, log_diag, unit_lower]
    optimizer = tfk.optimizers.Adam(tfk.optimizers.schedules.PolynomialDecay(
        learning_rate, steps, end_learning_rate=0.01 * learning_rate))

    @tf.function
    def optimize():
        for i in tf.range(steps):
            eps = tf.random.stateless_normal(
                [num_samples, batch, dim], tf.random.experimental.stateless_fold_in(train_seed, i))
            with tf.GradientTape() as tape:
                loc, tril = _q_params(loc0, delta, log_diag, unit_lower)
                z = loc + tf.einsum("bij,sbj->sbi", tril, eps)
                # "Sticking the landing": log q with its parameters held, so the gradient is
                # unbiased and its variance vanishes at the true posterior. A sum over
                # examples, not a mean: each q sees its own ELBO's gradient.
                q_held = tfd.MultivariateNormalTriL(tf.stop_gradient(loc), tf.stop_gradient(tril))
                loss = -tf.reduce_sum(tf.reduce_mean(_log_weights(model, x, q_held, z), 0))
            optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))

    optimize()

    def valid(c, total):
        """[chunk] bool: which of chunk c's draws are among the first `total`."""
        return tf.range(chunk_size) + c * chunk_size < total

    @tf.function
    def evaluate(loc_, tril_):
        # mean_s log w_s, not E[log p(x|z)] - KL: the same expectation, but its spread
        # vanishes as q approaches p(z|x), where log w = log p(x) for every z.
        q = tfd.MultivariateNormalTriL(loc_, tril_)
        total = tf.zeros([batch], x.dtype)
        for c in tf.range(math.ceil(eval_samples / chunk_size)):
            eps = tf.random.stateless_normal([chunk_size, batch, dim], tf.random.experimental
                                             .stateless_fold_in(eval_seed, c))
            z = loc_ + tf.einsum("bij,sbj->sbi", tril_, eps)
            log_w = tf.where(valid(c, eval_samples)[:, None], _log_weights(model, x, q, z), 0.0)
            total += tf.reduce_sum(log_w, 0)
        return total / eval_samples

    @tf.function
    def importance_sampled_log_px(loc_, tril_):
        q = tfd.MultivariateNormalTriL(loc_, tril_)
        running = tf.fill([batch], tf.constant(-np.inf, x.dtype))
        for c in tf.range(math.ceil(iwae_samples / chunk_size)):
            z = q.sample(chunk_size, seed=tf.random.experimental.stateless_fold_in(iwae_seed, c))
            log_w = tf.where(valid(c, iwae_samples)[:, None], _log_weights(model, x, q, z),
                             -np.inf)
            running = tf.reduce_logsumexp(tf.stack([running, tf.reduce_logsumexp(log_w, 0)]), 0)
        return running - math.log(iwae_samples)

    loc, tril = _q_params(loc0, delta, log_diag, unit_lower)
    amortized = evaluate(loc0, tril0).numpy().astype(np.float64)
    refined = evaluate(loc, tril).numpy().astype(np.float64)
    worse = ~(refined >= amortized)  # NaN (a diverged q) counts as worse
    keep = tf.constant(worse)
    loc_star = tf.where(keep[:, None], loc0, loc)
    tril_star = tf.where(keep[:, None, None], tril0, tril)
    refined = np.where(worse, amortized, refined)
    log_px = importance_sampled_log_px(loc_star, tril_star).numpy().astype(np.float64)
    q_star = tfd.MultivariateNormalTriL(loc_star, tril_star, name="q_star")
    return InferenceGaps(amortized, refined, log_px, refined - amortized, log_px - refined,
                         q_star, int(worse.sum()))

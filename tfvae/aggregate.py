"""Minibatch estimators of the aggregate posterior q(z) (Chen et al. 2018), and the
dimension-wise permutation that samples prod_d q(z_d) (Kim & Mnih 2018).

With a dataset of N examples, q(z) = (1/N) sum_n q(z|x_n). For a minibatch x_1..x_M and
z_i ~ q(z|x_i), both estimators are importance-weighted sums over the batch,

```none
q(z_i)   ~= sum_j w_ij q(z_i | x_j)      i.e. log q(z_i) = logsumexp_j(log w_ij + log q(z_i|x_j))
q(z_id)  ~= sum_j w_ij q(z_id | x_j)     the same weights for each dimension's marginal

MWS:  w_ii = 1/N,   w_ij = (N - 1) / (N (M - 1))                         for j != i
MSS:  w_ii = 1/N,   w_ij = 1/(M - 1)  for M - 2 of the others,
      w_i,i+1 = (N - M + 1) / (N (M - 1))  for one other (index i+1 mod M)
```
Both are unbiased for q(z_i) itself when the other M - 1 examples are uniform draws from the
rest of the dataset: the example z_i came from contributes exactly its 1/N share, and the
others stand in for the remaining N - 1 (each row of weights sums to 1). MSS is Chen et al.'s
stratified form (Appendix C.2, written there with M + 1 for our M): the remaining N - 1
examples are split into M - 2 strata of N/(M - 1) and one of N/(M - 1) - 1. log q(z) is then
the log of an unbiased estimate, so it is biased low by Jensen's inequality, and so MI is
biased high and TC low (dim_kl barely moves: 1-D marginals overlap). The bias is not O(1/M)
at realistic MI: the examples whose posteriors overlap z_i are rarely in the batch when the
posteriors are sharp. Measured (MSS, N = 1e7, q(z|x) = N(A x, s^2 I) in 8 dimensions;
tests/test_aggregate_bias.py), estimate - closed form, nats:

| case | M | MI bias | TC bias | dim_kl bias |
|---|---|---|---|---|
| D = 3, MI 2.3 | 1500 | +0.01 .. +0.02 | < 0.01 | < 0.01 |
| D = 8, MI 6.5 | 256 | +1.70 | -1.67 | -0.12 |
| D = 8, MI 6.5 | 1024 | +0.78 | -0.82 | -0.07 |
| D = 8, MI 6.5 | 4096 | +0.36 | -0.34 | +0.04 |

At MI 6.5 the bias halves for every 4x in M (~25 / sqrt(M) nats), and a true TC below
~|bias| reads negative. For diagnostics use the exact estimator over a split
(`tfvae.evaluation.elbo_decomposition(estimator="exact")`, O(N^2 D), chunked) or M in the
thousands, and report M with the numbers.

Two departures from the published code, both deliberate:
- Chen et al.'s MWS formula normalizes every term by 1/(NM), so its weights sum to 1/N
  instead of 1: it is a lower bound that is off by between log M and log N nats per density,
  hence by up to (D - 1) log N nats in the total correlation. That constant does not change
  gradients, but it makes the *numbers* meaningless, and tfvae logs the numbers; the
  self-normalized weights above fix it.
- The reference MSS weight matrix is filled with a stride of M rather than M + 1, so its
  1/N entries land in column 0 instead of on the diagonal; here the self-weight is on the
  diagonal, as the derivation says.

The decomposition of the average rate follows (Hoffman & Johnson 2016; Chen et al. 2018):

```none
E_x KL(q(z|x) || p(z)) = I_q(x; z) + KL(q(z) || p(z))
                       = I_q(x; z) + TC(q(z)) + sum_d KL(q(z_d) || p(z_d))
per sample:  mi_i     = log q(z_i|x_i) - log q(z_i)
             tc_i     = log q(z_i) - sum_d log q(z_id)
             dim_kl_i = sum_d [log q(z_id) - log p(z_id)]
```
so mi_i + tc_i + dim_kl_i = log q(z_i|x_i) - log p(z_i), the Monte-Carlo KL, exactly.

#### References
[1] Chen, Li, Grosse & Duvenaud (2018), Isolating Sources of Disentanglement in VAEs,
    arXiv:1802.04942, Section 3 and Appendix C.
[2] Hoffman & Johnson (2016), ELBO surgery, NIPS Workshop on Advances in Approximate
    Bayesian Inference.
[3] Kim & Mnih (2018), Disentangling by Factorising, arXiv:1802.05983.
"""

import numpy as np

from tfvae import validation
from tfvae._tf import tf, tfd

ESTIMATORS = ("mss", "mws")
#: what the minibatch estimates' bias is, for messages and labels (measured in the table above)
MINIBATCH_BIAS = "MI biased high and TC low by ~exp(MI) / M"


def check_estimator(estimator):
    return validation.choice(estimator, "estimator", ESTIMATORS)


def check_dataset_size(dataset_size):
    return validation.integer(dataset_size, "dataset_size (N, the number of training examples)",
                              minimum=2)


def log_importance_weights(batch_size, dataset_size, estimator="mss"):
    """log w_ij of the minibatch estimators (module docstring), [M, M] float32 NumPy.

    Args:
        batch_size: M >= 2, the minibatch size.
        dataset_size: N >= M, the number of examples the aggregate posterior averages over.
        estimator: "mws" (minibatch weighted sampling) or "mss" (minibatch stratified
            sampling). Default value: "mss".

    Returns:
        [M, M] float32; each row's weights sum to 1.
    """
    check_estimator(estimator)
    n = check_dataset_size(dataset_size)
    m = int(batch_size)
    if m < 2:
        raise ValueError(f"The minibatch estimators need a batch of at least 2 examples; got {m}.")
    if n < m:
        raise ValueError(f"`dataset_size` ({n}) must be at least the batch size ({m}).")
    if estimator == "mws":
        w = np.full((m, m), (n - 1) / (n * (m - 1)))
    else:
        w = np.full((m, m), 1.0 / (m - 1))
        w[np.arange(m), (np.arange(m) + 1) % m] = (n - m + 1) / (n * (m - 1))
    w[np.arange(m), np.arange(m)] = 1.0 / n
    return np.log(w).astype(np.float32)


def _log_weights_tensor(batch_size, dataset_size, estimator):
    """The weights as a tensor; for a batch size known only at run time, built in-graph."""
    if isinstance(batch_size, int):
        return tf.constant(log_importance_weights(batch_size, dataset_size, estimator))
    check_estimator(estimator)
    n = float(check_dataset_size(dataset_size))
    m = tf.cast(batch_size, tf.float64)
    eye = tf.eye(batch_size, dtype=tf.float64)
    if estimator == "mws":
        w = (n - 1.0) / (n * (m - 1.0)) * (1.0 - eye) + eye / n
    else:
        special = tf.roll(eye, shift=1, axis=1)  # (i, i+1 mod M)
        w = (eye / n + special * (n - m + 1.0) / (n * (m - 1.0))
             + (1.0 - eye - special) / (m - 1.0))
    checks = [tf.debugging.assert_greater_equal(
        batch_size, 2, message="The minibatch estimators need a batch of at least 2."),
        tf.debugging.assert_less_equal(m, tf.constant(n, tf.float64),
                                        message="`dataset_size` < batch size.")]
    with tf.control_dependencies(checks):
        return tf.cast(tf.math.log(w), tf.float32)


def gaussian_marginals(q_z):
    """The one-dimensional marginals q(z_d|x) of a Gaussian posterior: Normal, batch [B, D].

    Raises:
        TypeError: if `q_z` is not a multivariate normal (its marginals would not be Normal).
    """
    if isinstance(q_z, tfd.MultivariateNormalLinearOperator):
        return tfd.Normal(q_z.mean(), q_z.stddev())
    if isinstance(q_z, tfd.Independent) and isinstance(q_z.distribution, tfd.Normal):
        return q_z.distribution
    raise TypeError("The dimension-wise decomposition needs a Gaussian posterior q(z|x) "
                    f"(its marginals q(z_d|x) are then Normal); got {type(q_z).__name__}.")


def pairwise_log_qz(q_z, z):
    """log q(z_si | x_j) jointly and per dimension, for every sample against every example.

    Args:
        q_z: a Gaussian posterior with batch shape [M_j] and event shape [D].
        z: samples, [S, M_i, D] (usually M_i = M_j and z[s, i] ~ q(z|x_i)) or [M_i, D].

    Returns:
        (joint [S, M_i, M_j], marginal [S, M_i, M_j, D]) in nats; S = 1 for 2-D `z`.
    """
    z = tf.convert_to_tensor(z)
    if z.shape.rank == 2:
        z = z[None]
    marginal = gaussian_marginals(q_z).log_prob(z[:, :, None, :])           # [S, M_i, M_j, D]
    if isinstance(q_z, tfd.MultivariateNormalDiag):
        # Independent coordinates: the joint is the sum of the marginals (half the work).
        return tf.reduce_sum(marginal, -1), marginal
    if isinstance(q_z, tfd.MultivariateNormalLinearOperator):
        return _pairwise_mvn_log_prob(q_z, z), marginal
    joint = q_z.log_prob(z[:, :, None, :])                                  # [S, M, M]
    return joint, marginal


def _pairwise_mvn_log_prob(q_z, z):
    """log N(z_si; mu_j, L_j L_j^T) for all (s, i, j): [S, M_i, M_j], nats.

    Equal to `q_z.log_prob(z[:, :, None, :])`, but that call broadcasts the M scale
    matrices to [S, M, M, D, D] before solving (67 MB and ~1 s per step for M = 128,
    D = 32 here). Solving L_j X = [z - mu_j for every sample] as one triangular system
    with S*M right-hand sides per j needs no copies of L:

    ```none
    log q(z|x_j) = -|L_j^-1 (z - mu_j)|^2 / 2 - log|det L_j| - D log(2 pi) / 2
    ```
    """
    s, m_i, d = tf.unstack(tf.shape(z))
    loc = q_z.mean()                                                       # [M_j, D]
    m_j = tf.shape(loc)[0]
    flat = tf.reshape(z, [-1, z.shape[-1]])                                # [S*M, D]
    diff = tf.transpose(flat[None] - loc[:, None, :], [0, 2, 1])            # [M_j, D, S*M]
    white = q_z.scale.solve(diff)                                          # [M_j, D, S*M]
    maha = tf.reduce_sum(tf.square(white), axis=-2)                        # [M_j, S*M]
    log_norm = q_z.scale.log_abs_determinant() \
        + 0.5 * tf.cast(d, z.dtype) * np.log(2.0 * np.pi).astype(np.float32)  # [M_j]
    log_q = -0.5 * maha - log_norm[:, None]                                # [M_j, S*M]
    return tf.transpose(tf.reshape(log_q, [m_j, s, m_i]), [1, 2, 0])       # [S, M_i, M_j]


def minibatch_log_qz(q_z, z, dataset_size, estimator="mss", rows=None):
    """Minibatch estimates of log q(z_i) and log q(z_id) under the aggregate posterior.

    Args:
        q_z: Gaussian posterior of the batch, batch shape [M], event shape [D].
        z: samples [S, M, D] (z[s, i] ~ q(z|x_i)) or [M, D].
        dataset_size: N, the number of examples the aggregate posterior averages.
        estimator: "mss" or "mws". Default value: "mss".
        rows: if set (needs a static M), the pairwise [S, M, M, D] tensor is built `rows`
            samples i at a time: the same values, with peak memory `rows / M` of the
            whole (the evaluation's M = 500, D = 32: 4 MB per temporary instead of 32 MB,
            and several live at once in eager mode). Default value: None (all at once).

    Returns:
        (log_qz [S, M], log_qz_marginals [S, M, D]) in nats.
    """
    z = tf.convert_to_tensor(z)
    if z.shape.rank == 2:
        z = z[None]
    m = z.shape[1] if z.shape[1] is not None else tf.shape(z)[1]
    log_w = _log_weights_tensor(m, dataset_size, estimator)                # [M_i, M_j]
    if rows is None or not isinstance(m, int) or m <= rows:  # the training step's path
        chunks = [(z, log_w)]
    else:
        chunks = [(z[:, s:s + rows], log_w[s:s + rows]) for s in range(0, m, rows)]
    log_qz, log_qz_marginals = [], []
    for z_rows, w in chunks:
        joint, marginal = pairwise_log_qz(q_z, z_rows)                    # [S, r, M(, D)]
        log_qz.append(tf.reduce_logsumexp(joint + w, axis=-1))
        log_qz_marginals.append(tf.reduce_logsumexp(marginal + w[:, :, None], axis=-2))
    if len(chunks) == 1:
        return log_qz[0], log_qz_marginals[0]
    return tf.concat(log_qz, 1), tf.concat(log_qz_marginals, 1)


def minibatch_decomposition(q_z, z, p_z, dataset_size, estimator="mss", rows=None):
    """Per-sample index-code MI, TC and dimension-wise KL terms (module docstring).

    Args:
        q_z: Gaussian posterior of the batch, batch [M], event [D].
        z: samples [S, M, D] or [M, D].
        p_z: the prior, a factorized distribution with event [D] (its marginals are read
            from `gaussian_marginals`).
        dataset_size: N.
        estimator: "mss" or "mws".
        rows: build the pairwise terms this many samples at a time (`minibatch_log_qz`).

    Returns:
        dict of [S, M] tensors in nats: "mi", "tc", "dim_kl" (their batch means estimate
        I_q(x; z), TC(q(z)) and sum_d KL(q(z_d) || p(z_d))), and "kl", their sum, the
        Monte-Carlo log q(z|x) - log p(z).
    """
    z = tf.convert_to_tensor(z)
    if z.shape.rank == 2:
        z = z[None]
    log_qz, log_qz_marginals = minibatch_log_qz(q_z, z, dataset_size, estimator, rows)
    log_qz_x = q_z.log_prob(z)                                               # [S, M]
    log_pz_marginals = gaussian_marginals(p_z).log_prob(z)                   # [S, M, D]
    sum_marginals = tf.reduce_sum(log_qz_marginals, -1)
    mi = log_qz_x - log_qz
    tc = log_qz - sum_marginals
    dim_kl = sum_marginals - tf.reduce_sum(log_pz_marginals, -1)
    return {"mi": mi, "tc": tc, "dim_kl": dim_kl, "kl": mi + tc + dim_kl}


# ---------------------------------------------------------------------------- permutation

def permute_dims(z, seed):
    """Shuffles each latent dimension independently across the batch, [B, D] -> [B, D].

    The result is a sample of prod_d q(z_d) when the rows of `z` are samples of q(z)
    (Kim & Mnih 2018, Algorithm 1).

    Args:
        z: [B, D].
        seed: a stateless seed, int32 [2].
    """
    z = tf.convert_to_tensor(z)
    # argsort of iid uniforms: an independent uniform permutation per dimension.
    keys = tf.random.stateless_uniform(tf.shape(z), seed=seed)
    order = tf.argsort(keys, axis=0)                                         # [B, D]
    # gather row d of z^T by row d of order^T: out[d, b] = z[order[b, d], d].
    return tf.transpose(tf.gather(tf.transpose(z), tf.transpose(order), batch_dims=1))

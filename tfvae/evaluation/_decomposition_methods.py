"""The estimators behind `tfvae.evaluation.elbo_decomposition`, one per method: the
posterior samples of a split, then mi / tc / dim_kl per example from the minibatch
estimators or the exact O(N^2 D) sum, or the kNN entropies of the codes."""

import math

import numpy as np

from tfvae._tf import tf, tfd
from tfvae.aggregate import gaussian_marginals, minibatch_decomposition
from tfvae.evaluation.knn import knn_entropy
from tfvae.seeds import stateless_seed

#: samples whose pairwise [rows, M, D] log-densities are built at once: eager mode keeps
#: several such temporaries alive, 1 MB each at M = 500, D = 32 (all 500 rows: ~250 MB of
#: peak RSS in a training run's epoch-end diagnostics; 16 rows lower the main job's epoch-end
#: peak below 64's, benchmarks/README.md, "The main job's memory"). The values do not
#: depend on it.
PAIRWISE_ROWS = 16


def encode_all(model, images, batch_size, seed):
    """Posterior means [N, D], one sample per example [N, D], and E KL(q(z|x) || p) [N]."""
    means, samples, kls = [], [], []
    seeds = tf.random.experimental.stateless_split(stateless_seed(seed),
                                                   max(1, math.ceil(len(images) / batch_size)))
    for i, start in enumerate(range(0, len(images), batch_size)):
        q_z = model.encode(images[start:start + batch_size])
        z = q_z.sample(seed=seeds[i])
        try:
            mean = q_z.mean()
        except NotImplementedError:  # a sampler only: average draws
            mean = tf.reduce_mean(q_z.sample(64, seed=seeds[i]), 0)
        means.append(mean.numpy())
        samples.append(z.numpy())
        if model.has_density:
            try:  # analytic when TFP registers the pair, one-sample Monte Carlo otherwise
                kl = tfd.kl_divergence(q_z, model.prior)
            except NotImplementedError:
                kl = q_z.log_prob(z) - model.prior.log_prob(z)
            kls.append(kl.numpy())
    return (np.concatenate(means), np.concatenate(samples),
            np.concatenate(kls) if kls else None)


def _batches(n, batch_size):
    """Near-equal consecutive index ranges of batch_size to 2 batch_size - 1 examples (all
    n if n < batch_size): never a batch too small for the minibatch estimators."""
    count = max(1, n // batch_size)
    bounds = np.linspace(0, n, count + 1).round().astype(int)
    return list(zip(bounds[:-1], bounds[1:]))


def minibatch(model, images, samples, estimator, batch_size, dataset_size, seed):
    """(mi, tc, dim_kl per example [N], the smallest batch the estimates used) from the
    minibatch estimators, or the exact sum (whose "batch" is the whole split)."""
    if estimator == "exact":
        return exact(model, images, samples, batch_size), len(images)
    parts = {"mi": [], "tc": [], "dim_kl": []}
    # The estimators assume each batch's other examples are uniform draws from the split:
    # shuffle, in case the split is ordered (say, by class).
    order = np.random.default_rng(seed).permutation(len(images))
    batches = _batches(len(images), batch_size)
    for start, stop in batches:
        index = order[start:stop]
        q_z = model.encode(images[index])
        d = minibatch_decomposition(q_z, samples[index], model.prior, dataset_size,
                                    estimator, rows=PAIRWISE_ROWS)
        for key in parts:
            parts[key].append(d[key].numpy()[0])
    return ({key: np.concatenate(v) for key, v in parts.items()},
            int(min(stop - start for start, stop in batches)))


def _exact_rows(z, q_parts, marg_parts, log_n):
    """(log q(z_r), log q(z_rd)) [r], [r, D] of rows z [r, D] against every example."""
    z = z[:, None, :]
    joint = tf.concat([q_z.log_prob(z) for q_z in q_parts], 1)                # [r, N]
    marg = tf.concat([q_d.log_prob(z) for q_d in marg_parts], 1)              # [r, N, D]
    return tf.reduce_logsumexp(joint, 1) - log_n, tf.reduce_logsumexp(marg, 1) - log_n


#: traced once per structure and shape: the posteriors are arguments (TFP distributions are
#: composite tensors), so a training run's every epoch reuses one trace. A function traced
#: per call, closing over them, held each epoch's graph with the posteriors' parameters as
#: constants: ~7 MB of resident memory per epoch in the main job (benchmarks/README.md).
_exact_rows_traced = tf.function(_exact_rows, reduce_retracing=True)


def exact(model, images, samples, chunk):
    """log q(z_i) = logsumexp_n log q(z_i|x_n) - log N over the whole split: O(N^2 D).

    Rows of PAIRWISE_ROWS samples at a time against every example, each row block one call
    of a traced function (eager TFP calls cost more than the arithmetic)."""
    n = len(images)
    q_parts = [model.encode(images[s:s + chunk]) for s in range(0, n, chunk)]
    marg_parts = [gaussian_marginals(q_z) for q_z in q_parts]
    if all(isinstance(d, tf.__internal__.CompositeTensor) for d in q_parts + marg_parts):
        def rows(z):
            return _exact_rows_traced(z, q_parts, marg_parts, tf.constant(math.log(n)))
    else:  # a posterior that is not a composite tensor: traced per call, closing over it
        rows = tf.function(lambda z: _exact_rows(z, q_parts, marg_parts, math.log(n)),
                           reduce_retracing=True)

    log_qz = np.empty(n)
    log_qz_marg = np.empty((n, samples.shape[1]))
    for s in range(0, n, PAIRWISE_ROWS):
        joint, marg = rows(tf.constant(samples[s:s + PAIRWISE_ROWS]))
        log_qz[s:s + PAIRWISE_ROWS] = joint.numpy()
        log_qz_marg[s:s + PAIRWISE_ROWS] = marg.numpy()
    log_qz_x = np.concatenate([q.log_prob(samples[s:s + chunk]).numpy()
                               for q, s in zip(q_parts, range(0, n, chunk))])
    log_pz_marg = gaussian_marginals(model.prior).log_prob(samples).numpy()
    sum_marg = log_qz_marg.sum(1)
    return {"mi": log_qz_x - log_qz, "tc": log_qz - sum_marg,
            "dim_kl": sum_marg - log_pz_marg.sum(1)}


def knn(model, samples, k):
    # The prior is factorized: log p(z) is the sum of the marginals (summed in float64, so
    # aggregate_kl = tc + dim_kl holds to round-off).
    log_pz_marg = gaussian_marginals(model.prior).log_prob(samples).numpy().astype(np.float64)
    log_pz = log_pz_marg.sum(1)
    h_joint = knn_entropy(samples, k=k)
    h_marg = np.array([knn_entropy(samples[:, j:j + 1], k=k) for j in range(samples.shape[1])])
    dim_kl = float(np.sum(-h_marg - log_pz_marg.mean(0)))
    return {"tc": float(np.sum(h_marg) - h_joint), "dim_kl": dim_kl,
            "aggregate_kl": float(-h_joint - log_pz.mean())}

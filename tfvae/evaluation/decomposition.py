"""The ELBO's rate decomposed over a dataset split, and the number of active units.

```none
E_x KL(q(z|x) || p(z)) = I_q(x; z) + KL(q(z) || p(z))                         (Hoffman & Johnson)
KL(q(z) || p(z))       = TC(q(z)) + sum_d KL(q(z_d) || p(z_d))                  (Chen et al.)
q(z) = (1/N) sum_n q(z | x_n)    over the N examples of the split
active units (Burda et al.):  #{d : Var_x( E_q(z|x)[z_d] ) > 0.01}
```

Two methods, picked by the posterior (`method="auto"`):

- **"minibatch"** (posteriors with a Gaussian density): one sample z_i ~ q(z|x_i) per
  example, and log q(z_i), log q(z_id) from the minibatch estimators of `tfvae.aggregate`
  ("mss" or "mws", with N = the split's size), or `estimator="exact"`: the full
  logsumexp over all N examples, O(N^2 D), exact for the split's aggregate posterior up to
  the one-sample Monte Carlo over z (unbiased; its standard errors are reported).
  `estimator="auto"` (the default) is "exact" up to EXACT_MAX_EXAMPLES examples and "mss"
  beyond, with the minibatch size reported: at realistic MI the minibatch estimates are
  biased by ~exp(MI) / M (MI high, TC low; -1.7 nats of TC at M = 256 and MI 6.5 in the
  table of `tfvae.aggregate`), enough to turn a small TC negative. `kl` is the analytic
  E_x KL(q(z|x) || p(z)).
- **"knn"** (any posterior, needed for point masses and implicit posteriors): the codes
  z_i ~ q(z|x_i) are treated as samples of q(z), and the entropies of q(z) and of each
  q(z_d) are estimated by `tfvae.evaluation.knn.knn_entropy`:

  ```none
  KL(q(z) || p(z)) ~= -H^(z) - mean_i log p(z_i)
  TC ~= sum_d H^(z_d) - H^(z),     dim_kl ~= sum_d [-H^(z_d) - mean_i log p(z_id)]
  ```
  (so aggregate_kl = tc + dim_kl exactly). For N point masses (the deterministic
  autoencoder) the true KL is +inf; the kNN number is the KL of the smoothed code density
  the codes sample. It is biased at finite n in high D: compare models at equal n and D.
  `mi` is kl - aggregate_kl when q(z|x) has a density, +inf for point masses, NaN for
  implicit posteriors.

What the numbers can show: q(z) here is the aggregate posterior of the N examples used, a
mixture of N posteriors, so I_q(x; z) <= H(x) = log N. A model whose E_x KL(q(z|x) || p(z))
exceeds log N has posteriors that barely overlap on the split: its MI estimate sits at
log N and the remainder of the rate shows up as KL(q(z) || p(z)), almost all of it as TC
(the joint of N narrow bumps is spiky; each 1-D marginal of N bumps is smooth).

MI, TC, the dimension-wise KL and the aggregate KL are all >= 0; an estimate below 0 is
reported in `flags` with its cause (Monte-Carlo noise, the minibatch bias, the kNN bias).

Both methods also report `gaussian_kl_bound`, KL(N(m, S) || p(z)) for the codes' mean m and
covariance S (see `gaussian_kl_bound`): a lower bound on KL(q(z) || N(0, I)) for *any* q(z)
with those moments (the Gaussian has the largest entropy for a given covariance, and
E_q log p(z) depends on the first two moments only).

The callback that logs these numbers every epoch is `tfvae.callbacks.DecompositionCallback`.

#### References
[1] Hoffman & Johnson (2016), ELBO surgery, NIPS AABI workshop.
[2] Chen, Li, Grosse & Duvenaud (2018), Isolating Sources of Disentanglement in VAEs,
    arXiv:1802.04942.
[3] Burda, Grosse & Salakhutdinov (2016), Importance Weighted Autoencoders,
    arXiv:1509.00519, Sec. 5.2 (active units).
"""

import math

import numpy as np

from tfvae import validation
from tfvae._tf import tf, tfd, tfp
from tfvae.aggregate import ESTIMATORS, MINIBATCH_BIAS, check_dataset_size, \
    gaussian_marginals
from tfvae.evaluation import _decomposition_methods as methods

METHODS = ("auto", "minibatch", "knn")
#: the largest split `estimator="auto"` decomposes exactly (O(N^2 D); timings in
#: benchmarks/README.md, "The exact decomposition's cost")
EXACT_MAX_EXAMPLES = 5000
#: the quantities whose true value is >= 0 (a KL or a mutual information)
NON_NEGATIVE = ("mi", "tc", "dim_kl", "aggregate_kl")
# Burda et al.'s threshold on the variance (over x) of the posterior mean of a latent.
ACTIVE_UNIT_THRESHOLD = 1e-2
KEYS = ("mi", "tc", "dim_kl", "aggregate_kl", "kl", "active_units", "gaussian_kl_bound")


def collect_images(data, num_examples=None):
    """Images [N, H, W, C] float32 from an array or a dataset of x or (x, y) batches.

    Args:
        data: a NumPy array / tensor of images, or a tf.data.Dataset of batches.
        num_examples: keep the first `num_examples` only. Default value: None (all).
    """
    if num_examples is not None:
        num_examples = validation.positive_int(num_examples, "num_examples")
    if isinstance(data, tf.data.Dataset):
        parts, count = [], 0
        for batch in data:
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            parts.append(np.asarray(x, np.float32))
            count += len(parts[-1])
            if num_examples is not None and count >= num_examples:
                break
        if not parts:
            raise ValueError("`data` is an empty dataset.")
        images = np.concatenate(parts)
    else:
        images = np.asarray(data, np.float32)
    return images[:num_examples] if num_examples is not None else images


def active_units(means, threshold=ACTIVE_UNIT_THRESHOLD):
    """The number of latent dimensions whose posterior mean varies with x (Burda et al.).

    Args:
        means: E_q(z|x)[z] per example, [N, D].
        threshold: minimum variance over x. Default value: 0.01.

    Returns:
        An int in [0, D].
    """
    means = np.asarray(means, np.float64)
    return int(np.sum(np.var(means, axis=0) > threshold))


def gaussian_kl_bound(z):
    """KL(N(m, S) || N(0, I)) for the mean m and covariance S of the distribution z samples.

    A lower bound on KL(q || N(0, I)) for any q with those moments. The plug-in value is
    biased up by ~D(D + 3) / (4n) nats, which can put the "bound" above the KL it bounds,
    so each part is corrected to be unbiased for Gaussian samples:

    ```none
    E tr(S^)            = tr(S)                                   (S^ with 1/(n - 1))
    E |m^|^2            = |m|^2 + tr(S) / n
    E log det(S^)       = log det(S) + sum_{i=1..D} psi((n - i) / 2) + D log(2 / (n - 1))
    ```

    Args:
        z: samples [n, D], n > D.

    Returns:
        A float, nats (+inf if the samples span fewer than D dimensions).
    """
    z = tf.constant(z, tf.float64)
    n, d = z.shape
    if n <= d:
        raise ValueError(f"`gaussian_kl_bound` needs more samples than dimensions; got {n} "
                         f"samples of dimension {d}.")
    mu = tf.reduce_mean(z, 0).numpy()
    # tfp.stats.covariance divides by n; the unbiased S^ divides by n - 1.
    cov = tfp.stats.covariance(z, sample_axis=0, event_axis=-1).numpy() * n / (n - 1)
    sign, logdet = np.linalg.slogdet(cov)
    if sign <= 0:
        return math.inf
    trace = float(np.trace(cov))
    wishart_bias = float(np.sum(tf.math.digamma(
        tf.constant((n - np.arange(1, d + 1)) / 2.0, tf.float64)).numpy())) \
        + d * math.log(2.0 / (n - 1))
    return float(0.5 * (trace + (mu @ mu - trace / n) - d - (logdet - wishart_bias)))


# ---------------------------------------------------------------------------- API

def elbo_decomposition(model, data, method="auto", estimator="auto", batch_size=500,
                       num_examples=None, dataset_size=None, k=3, seed=0):
    """Index-code MI, total correlation, dimension-wise KL and active units over a split.

    Args:
        model: a trained `tfvae.VAE` (any family model).
        data: images [N, H, W, C] or a tf.data.Dataset of x or (x, y) batches.
        method: "minibatch", "knn" or "auto" ("minibatch" when the posterior has a Gaussian
            density, else "knn"). Default value: "auto".
        estimator: for "minibatch": "exact", "mss", "mws" or "auto" ("exact" for up to
            EXACT_MAX_EXAMPLES examples, else "mss"). Default value: "auto".
        batch_size: examples per minibatch (>= 2) and per encoder call. Default value: 500.
        num_examples: use the first `num_examples` of `data`. Default value: all.
        dataset_size: N of the aggregate posterior for "mss"/"mws". Default value: the
            number of examples used, so every method estimates the same q(z): the
            aggregate posterior of this split.
        k: neighbour rank of the "knn" method. Default value: 3.
        seed: seeds the posterior samples. Default value: 0.

    Returns:
        dict of floats in nats: "mi", "tc", "dim_kl", "aggregate_kl" (= tc + dim_kl, the
        estimate of KL(q(z) || p(z))), "kl" (E_x KL(q(z|x) || p(z))), "gaussian_kl_bound",
        and "active_units" (an int); "method", "estimator", "num_examples"; for the
        "minibatch" method "batch_size" (the smallest number of examples an estimate
        summed over: N for "exact") and "standard_errors" ({"mi", "tc", "dim_kl",
        "aggregate_kl"}: the Monte-Carlo standard error of each mean over examples, not
        counting a minibatch estimator's bias); and "flags", one line for each of mi, tc,
        dim_kl, aggregate_kl whose estimate is below 0, naming the cause.
        kl ~= mi + aggregate_kl up to Monte-Carlo noise for the "minibatch" method.
    """
    validation.choice(method, "method", METHODS)
    validation.choice(estimator, "estimator", (*ESTIMATORS, "exact", "auto"))
    batch_size = validation.integer(batch_size, "batch_size", minimum=2)
    k = validation.positive_int(k, "k")
    images = collect_images(data, num_examples)
    n = len(images)
    if n < 2:
        raise ValueError(f"The decomposition needs at least 2 examples; got {n}.")
    if method == "auto":
        method = "minibatch" if _has_gaussian_density(model, images[:1]) else "knn"
    if method == "minibatch" and not _has_gaussian_density(model, images[:1]):
        raise ValueError("`method='minibatch'` needs a Gaussian posterior with a density; "
                         f"model {model.name!r} has {type(model.encode(images[:1])).__name__}. "
                         "Use method='knn'.")
    means, samples, kls = methods.encode_all(model, images, batch_size, seed)
    result = {"active_units": active_units(means),
              "gaussian_kl_bound": gaussian_kl_bound(samples),
              "method": method, "num_examples": n}
    if method == "minibatch":
        if estimator == "auto":
            estimator = "exact" if n <= EXACT_MAX_EXAMPLES else "mss"
        dataset_size = n if dataset_size is None else check_dataset_size(dataset_size)
        parts, result["batch_size"] = methods.minibatch(model, images, samples, estimator,
                                                 batch_size, dataset_size, seed)
        parts["aggregate_kl"] = parts["tc"] + parts["dim_kl"]
        result.update({key: float(np.mean(v)) for key, v in parts.items()})
        result["standard_errors"] = {key: float(np.std(v) / math.sqrt(n))
                                     for key, v in parts.items()}
        result["kl"] = float(np.mean(kls))
        result["estimator"] = estimator
    else:
        result.update(methods.knn(model, samples, k))
        if kls is not None:  # a density: I = E KL(q(z|x) || p) - KL(q(z) || p)
            result["kl"] = float(np.mean(kls))
            result["mi"] = result["kl"] - result["aggregate_kl"]
        else:
            point_mass = isinstance(model.encode(images[:1]), tfd.VectorDeterministic)
            # A point mass carries infinite information about x; an implicit q has no density.
            result["mi"] = math.inf if point_mass else math.nan
            result["kl"] = math.inf if point_mass else math.nan
        result["estimator"] = f"knn(k={k})"
    result["flags"] = negative_flags(result, samples.shape[1])
    return result


def negative_flags(values, latent_dim):
    """One line for each of `NON_NEGATIVE` whose estimate in `values` (an
    `elbo_decomposition` result) is below 0, which the true quantity cannot be, with the
    estimator's reason: the minibatch bias (TC and the aggregate KL read low, by
    ~exp(MI) / M), the kNN entropies' bias at finite n in high D, or else Monte-Carlo noise
    (how many standard errors below 0; the exact sums are unbiased, the minibatch MI is
    biased high and the minibatch dim_kl by < 0.15 nats in `tfvae.aggregate`'s table)."""
    flags = []
    for key in NON_NEGATIVE:
        value = values.get(key)
        if value is None or not value < 0:
            continue
        line = f"{key} estimate {value:.3f} < 0, which the true {key} cannot be: "
        estimator = values.get("estimator", "")
        se = values.get("standard_errors", {}).get(key)
        if estimator.startswith("knn"):
            line += (f"the kNN entropy estimates are biased at n = {values['num_examples']} "
                     f"in D = {latent_dim}; compare models at equal n and D")
        elif estimator in ESTIMATORS and key in ("tc", "aggregate_kl"):
            line += (f"the {estimator} minibatch estimator (batches of "
                     f"{values['batch_size']}) is biased low for it, by ~exp(MI) / M; "
                     "estimator='exact' has no bias")
        elif se and -value / se > 3:
            line += (f"{-value / se:.1f} standard errors below 0 (standard error {se:.3f}), "
                     "more than Monte-Carlo noise explains")
        else:
            line += (f"Monte-Carlo noise, {-value / se:.1f} standard errors below 0 "
                     f"(standard error {se:.3f})" if se else "Monte-Carlo noise")
        flags.append(line)
    return flags


def describe_estimator(values):
    """What an `elbo_decomposition` result's numbers are, in a few words."""
    estimator = values.get("estimator", "")
    if estimator == "exact":
        return "exact sums over all examples (unbiased; one posterior sample per example)"
    if "batch_size" in values:
        return (f"{estimator} minibatch estimates, batches of at least {values['batch_size']} "
                f"({MINIBATCH_BIAS})")
    return f"{estimator} entropy estimates (biased at finite n in high D)"


def _has_gaussian_density(model, x):
    if not model.has_density:
        return False
    try:
        gaussian_marginals(model.encode(x))
    except TypeError:
        return False
    return True

"""The ELBO's rate decomposed over a dataset split, and a callback that logs it every epoch.

```none
E_x KL(q(z|x) || p(z)) = I_q(x; z) + KL(q(z) || p(z))                         (Hoffman & Johnson)
KL(q(z) || p(z))       = TC(q(z)) + sum_d KL(q(z_d) || p(z_d))                  (Chen et al.)
q(z) = (1/N) sum_n q(z | x_n)    over the N examples of the split
active units (Burda et al.):  #{d : Var_x( E_q(z|x)[z_d] ) > 0.01}
```

Two methods, picked by the posterior (`method="auto"`):

- **"minibatch"** (posteriors with a Gaussian density): one sample z_i ~ q(z|x_i) per
  example, and log q(z_i), log q(z_id) from the minibatch estimators of `tfvae.math`
  ("mss" or "mws", with N = the split's size), or `estimator="exact"`: the full
  logsumexp over all N examples, O(N^2 D), exact for the split's aggregate posterior up to
  the one-sample Monte Carlo over z. `kl` is the analytic E_x KL(q(z|x) || p(z)).
- **"knn"** (any posterior, needed for point masses and implicit posteriors): the codes
  z_i ~ q(z|x_i) are treated as samples of q(z), and the entropies of q(z) and of each
  q(z_d) are estimated by the Kozachenko-Leonenko k-nearest-neighbour estimator,

  ```none
  H^(z) = psi(n) - psi(k) + log V_D + (D/n) sum_i log eps_i      eps_i: distance to the k-th NN
  KL(q(z) || p(z)) ~= -H^(z) - mean_i log p(z_i)
  TC ~= sum_d H^(z_d) - H^(z),     dim_kl ~= sum_d [-H^(z_d) - mean_i log p(z_id)]
  ```
  (so aggregate_kl = tc + dim_kl exactly). For the deterministic autoencoder the aggregate
  of N point masses has no density, so its true KL is +inf; the kNN number estimates the
  KL of the smoothed code density that the N codes sample, which is what "how far are the
  codes from the prior" means in practice. It is consistent but biased in high D at finite
  n: compare models at the same n and D only. Measured on n = 10000 exact samples of
  N(0, I_D), whose KL to the prior is 0: the kNN estimate is +0.01 nats at D = 2, +0.05 at
  D = 8 and -2.3 at D = 32 (it overestimates the entropy in high D), while the Gaussian bound
  below is within 0.003 of 0 at every D. In high D read the bound as the robust number and
  the kNN KL and TC as biased low by a few nats. `mi` is kl - aggregate_kl when q(z|x) has a
  density, +inf (with `kl`) for point masses, and unavailable (NaN) for implicit posteriors.

What the numbers can show: q(z) here is the aggregate posterior of the N examples used, a
mixture of N posteriors, so I_q(x; z) <= H(x) = log N (9.2 nats for a 10000-image test
split). A model whose E_x KL(q(z|x) || p(z)) exceeds log N has posteriors that barely
overlap on the split: its MI estimate sits at log N and the remainder of the rate shows up
as KL(q(z) || p(z)), almost all of it as TC (the joint of N narrow bumps is spiky; each
1-D marginal of N bumps is smooth). The population values would need N >> exp(E KL).

Both methods also report `gaussian_kl_bound`, KL(N(m, S) || p(z)) for the codes' mean m and
covariance S (estimated without the finite-sample bias, see `gaussian_kl_bound`): a lower
bound on KL(q(z) || N(0, I)) for *any* q(z) with those moments (the Gaussian has the largest
entropy for a given covariance, and E_q log p(z) depends on the first two moments only).

#### References
[1] Hoffman & Johnson (2016), ELBO surgery, NIPS AABI workshop.
[2] Chen, Li, Grosse & Duvenaud (2018), Isolating Sources of Disentanglement in VAEs,
    arXiv:1802.04942.
[3] Burda, Grosse & Salakhutdinov (2016), Importance Weighted Autoencoders,
    arXiv:1509.00519, Sec. 5.2 (active units).
[4] Kozachenko & Leonenko (1987), Sample estimate of the entropy of a random vector,
    Problems Inform. Transmission 23; Kraskov, Stoegbauer & Grassberger (2004), Estimating
    mutual information, Phys. Rev. E 69, Eq. 20.
"""

import logging
import math

import numpy as np

from tfvae import callbacks as callbacks_lib
from tfvae._tf import tf, tfd, tfk
from tfvae.math import ESTIMATORS, check_dataset_size, gaussian_marginals, \
    minibatch_decomposition
from tfvae.seeds import stateless_seed
from tfvae.types import has_analytic_kl

log = logging.getLogger(__name__)

METHODS = ("auto", "minibatch", "knn")
# Burda et al.'s threshold on the variance (over x) of the posterior mean of a latent.
ACTIVE_UNIT_THRESHOLD = 1e-2
KEYS = ("mi", "tc", "dim_kl", "aggregate_kl", "kl", "active_units", "gaussian_kl_bound")


# ---------------------------------------------------------------------------- helpers

def _check_int(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"`{name}` must be an int >= {minimum}; got {value!r}.")
    return int(value)


def collect_images(data, num_examples=None):
    """Images [N, H, W, C] float32 from an array or a dataset of x or (x, y) batches.

    Args:
        data: a NumPy array / tensor of images, or a tf.data.Dataset of batches.
        num_examples: keep the first `num_examples` only. Default value: None (all).
    """
    if num_examples is not None:
        num_examples = _check_int(num_examples, "num_examples", 1)
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

    A lower bound on KL(q || N(0, I)) for any q with those moments. Estimated without bias
    for Gaussian samples: the plug-in value is biased up by ~D(D + 3) / (4n) nats (0.28 for
    D = 32, n = 1000), which would put the "bound" above the KL it bounds, so each part is
    corrected:

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
    z = np.asarray(z, np.float64)
    n, d = z.shape
    if n <= d:
        raise ValueError(f"`gaussian_kl_bound` needs more samples than dimensions; got {n} "
                         f"samples of dimension {d}.")
    mu = z.mean(0)
    cov = np.atleast_2d(np.cov(z, rowvar=False))
    sign, logdet = np.linalg.slogdet(cov)
    if sign <= 0:
        return math.inf
    trace = float(np.trace(cov))
    wishart_bias = float(np.sum(tf.math.digamma(
        tf.constant((n - np.arange(1, d + 1)) / 2.0, tf.float64)).numpy())) \
        + d * math.log(2.0 / (n - 1))
    return float(0.5 * (trace + (mu @ mu - trace / n) - d - (logdet - wishart_bias)))


def _digamma_int(n):
    """psi(n) for a positive int: -Euler_gamma + sum_{m < n} 1/m."""
    return -0.5772156649015329 + float(np.sum(1.0 / np.arange(1, n)))


def knn_entropy(z, k=3, chunk_size=1000):
    """Kozachenko-Leonenko entropy estimate of the density that z samples, nats.

    Args:
        z: samples [n, D] (n > k).
        k: the neighbour rank. Default value: 3 (a few duplicate points, such as identical
            images mapped to identical codes, then cannot make a distance 0).
        chunk_size: rows per block of the pairwise-distance computation (memory
            O(chunk_size * n)).

    Returns:
        A float, H^ in nats.
    """
    z = np.asarray(z, np.float64)
    if z.ndim != 2:
        raise ValueError(f"`z` must be [n, D]; got shape {z.shape}.")
    n, d = z.shape
    k = _check_int(k, "k", 1)
    if n <= k:
        raise ValueError(f"The kNN entropy needs more than k={k} samples; got {n}.")
    if d == 1:
        eps = _knn_distances_1d(z[:, 0], k)
    else:
        sq = np.sum(z**2, 1)
        eps = np.empty(n)
        for start in range(0, n, chunk_size):
            block = z[start:start + chunk_size]
            dist2 = np.maximum(sq[start:start + chunk_size, None] + sq[None] - 2 * block @ z.T, 0)
            # index k of the sorted row skips the point itself (distance 0 at index 0)
            eps[start:start + len(block)] = np.sqrt(np.partition(dist2, k, axis=1)[:, k])
    zeros = int(np.sum(eps <= 0))
    if zeros:
        log.warning("knn_entropy: %d of %d points have %d+ exact duplicates; their distance is "
                    "floored, which biases the entropy down.", zeros, n, k)
        eps = np.maximum(eps, np.min(eps[eps > 0]) if np.any(eps > 0) else 1e-12)
    log_unit_ball = 0.5 * d * math.log(math.pi) - math.lgamma(0.5 * d + 1)
    return float(_digamma_int(n) - _digamma_int(k) + log_unit_ball + d * np.mean(np.log(eps)))


def _knn_distances_1d(x, k):
    """Distance from each point to its k-th nearest other point, in O(n k) by sorting."""
    order = np.argsort(x, kind="stable")
    xs = x[order]
    n = len(xs)
    padded = np.concatenate([np.full(k, -np.inf), xs, np.full(k, np.inf)])
    offsets = np.concatenate([np.arange(-k, 0), np.arange(1, k + 1)])
    window = padded[np.arange(n)[:, None] + k + offsets[None]]              # [n, 2k]
    dists = np.abs(window - xs[:, None])
    eps = np.empty(n)
    eps[order] = np.partition(dists, k - 1, axis=1)[:, k - 1]
    return eps


# ---------------------------------------------------------------------------- methods

def _encode_all(model, images, batch_size, seed):
    """Posterior means [N, D], one sample per example [N, D], and the analytic KL [N]."""
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
            kls.append(tfd.kl_divergence(q_z, model.prior).numpy()
                       if has_analytic_kl(q_z, model.prior)
                       else (q_z.log_prob(z) - model.prior.log_prob(z)).numpy())
    return (np.concatenate(means), np.concatenate(samples),
            np.concatenate(kls) if kls else None)


def _batches(n, batch_size):
    """Near-equal consecutive index ranges of batch_size to 2 batch_size - 1 examples (all
    n if n < batch_size): never a batch too small for the minibatch estimators."""
    count = max(1, n // batch_size)
    bounds = np.linspace(0, n, count + 1).round().astype(int)
    return list(zip(bounds[:-1], bounds[1:]))


def _minibatch(model, images, samples, estimator, batch_size, dataset_size, seed):
    """mi, tc, dim_kl per example [N] from the minibatch estimators or the exact sum."""
    n = len(images)
    parts = {"mi": [], "tc": [], "dim_kl": []}
    if estimator == "exact":
        return _exact(model, images, samples, batch_size)
    # The estimators assume each batch's other examples are uniform draws from the split:
    # shuffle, in case the split is ordered (say, by class).
    order = np.random.default_rng(seed).permutation(n)
    for start, stop in _batches(n, batch_size):
        index = order[start:stop]
        q_z = model.encode(images[index])
        d = minibatch_decomposition(q_z, samples[index], model.prior, dataset_size,
                                    estimator)
        for key in parts:
            parts[key].append(d[key].numpy()[0])
    return {key: np.concatenate(v) for key, v in parts.items()}


def _exact(model, images, samples, chunk):
    """log q(z_i) = logsumexp_n log q(z_i|x_n) - log N over the whole split: O(N^2 D)."""
    n = len(images)
    q_parts = [model.encode(images[s:s + chunk]) for s in range(0, n, chunk)]
    log_qz = np.empty(n)
    log_qz_marg = np.empty((n, samples.shape[1]))
    for s in range(0, n, chunk):
        z = tf.constant(samples[s:s + chunk])
        joint, marg = [], []
        for q_z in q_parts:
            joint.append(q_z.log_prob(z[:, None, :]))                        # [c, c']
            marg.append(gaussian_marginals(q_z).log_prob(z[:, None, :]))     # [c, c', D]
        log_qz[s:s + chunk] = (tf.reduce_logsumexp(tf.concat(joint, 1), 1) - math.log(n)).numpy()
        log_qz_marg[s:s + chunk] = (tf.reduce_logsumexp(tf.concat(marg, 1), 1)
                                    - math.log(n)).numpy()
    log_qz_x = np.concatenate([q.log_prob(samples[s:s + chunk]).numpy()
                               for q, s in zip(q_parts, range(0, n, chunk))])
    log_pz_marg = gaussian_marginals(model.prior).log_prob(samples).numpy()
    sum_marg = log_qz_marg.sum(1)
    return {"mi": log_qz_x - log_qz, "tc": log_qz - sum_marg,
            "dim_kl": sum_marg - log_pz_marg.sum(1)}


def _knn(model, samples, k):
    # The prior is factorized: log p(z) is the sum of the marginals (summed in float64, so
    # aggregate_kl = tc + dim_kl holds to round-off).
    log_pz_marg = gaussian_marginals(model.prior).log_prob(samples).numpy().astype(np.float64)
    log_pz = log_pz_marg.sum(1)
    h_joint = knn_entropy(samples, k=k)
    h_marg = np.array([knn_entropy(samples[:, j:j + 1], k=k) for j in range(samples.shape[1])])
    dim_kl = float(np.sum(-h_marg - log_pz_marg.mean(0)))
    return {"tc": float(np.sum(h_marg) - h_joint), "dim_kl": dim_kl,
            "aggregate_kl": float(-h_joint - log_pz.mean())}


# ---------------------------------------------------------------------------- API

def elbo_decomposition(model, data, method="auto", estimator="mss", batch_size=500,
                  num_examples=None, dataset_size=None, k=3, seed=0):
    """Index-code MI, total correlation, dimension-wise KL and active units over a split.

    Args:
        model: a trained `tfvae.VAE` (any family model).
        data: images [N, H, W, C] or a tf.data.Dataset of x or (x, y) batches.
        method: "minibatch", "knn" or "auto" ("minibatch" when the posterior has a Gaussian
            density, else "knn"). Default value: "auto".
        estimator: for "minibatch": "mss", "mws" or "exact". Default value: "mss".
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
        and "active_units" (an int); and "method", "estimator", "num_examples".
        kl ~= mi + aggregate_kl up to Monte-Carlo noise for the "minibatch" method.
    """
    if method not in METHODS:
        raise ValueError(f"`method` must be one of {list(METHODS)}; got {method!r}.")
    if estimator not in (*ESTIMATORS, "exact"):
        raise ValueError(f"`estimator` must be one of {[*ESTIMATORS, 'exact']}; got "
                         f"{estimator!r}.")
    batch_size = _check_int(batch_size, "batch_size", 2)
    k = _check_int(k, "k", 1)
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
    means, samples, kls = _encode_all(model, images, batch_size, seed)
    result = {"active_units": active_units(means),
              "gaussian_kl_bound": gaussian_kl_bound(samples),
              "method": method, "num_examples": n}
    if method == "minibatch":
        dataset_size = n if dataset_size is None else check_dataset_size(dataset_size)
        parts = _minibatch(model, images, samples, estimator, batch_size, dataset_size, seed)
        result.update({key: float(np.mean(v)) for key, v in parts.items()})
        result["aggregate_kl"] = result["tc"] + result["dim_kl"]
        result["kl"] = float(np.mean(kls))
        result["estimator"] = estimator
    else:
        result.update(_knn(model, samples, k))
        if kls is not None:  # a density: I = E KL(q(z|x) || p) - KL(q(z) || p)
            result["kl"] = float(np.mean(kls))
            result["mi"] = result["kl"] - result["aggregate_kl"]
        else:
            point_mass = isinstance(model.encode(images[:1]), tfd.VectorDeterministic)
            # A point mass carries infinite information about x; an implicit q has no density.
            result["mi"] = math.inf if point_mass else math.nan
            result["kl"] = math.inf if point_mass else math.nan
        result["estimator"] = f"knn(k={k})"
    return result


def _has_gaussian_density(model, x):
    if not model.has_density:
        return False
    try:
        gaussian_marginals(model.encode(x))
    except TypeError:
        return False
    return True


# ---------------------------------------------------------------------------- callback

class DecompositionCallback(tfk.callbacks.Callback):
    """Logs the decomposition and the active units to TensorBoard after every epoch.

    Scalars `decomposition/{mi, tc, dim_kl, aggregate_kl, kl, active_units,
    gaussian_kl_bound}` (step = epoch) go to `writer`, or to a writer of its own at
    `log_dir`; if `add_to_logs`, they also go into the epoch's `logs` as
    `decomposition_<key>`, so History and CSV loggers (and Keras' TensorBoard callback, if it
    runs after this one) see them. Non-finite values (the MI of a point mass) are skipped.
    If the model cannot be decomposed, the callback warns once and stops.

    Args:
        data: images or a dataset (usually the validation split).
        writer: a `tf.summary` writer to write to. Default value: None.
        log_dir: if no `writer`, the directory of a writer of its own; None writes no
            events. Default value: None.
        num_examples: examples of `data` to use. Default value: 2000.
        every: compute every `every` epochs. Default value: 1.
        add_to_logs: also put the values in `logs`. Default value: True.
        **kwargs: passed to `elbo_decomposition` (method, estimator, batch_size, k, seed).
    """

    def __init__(self, data, writer=None, log_dir=None, num_examples=2000, every=1,
                 add_to_logs=True, **kwargs):
        super().__init__()
        self.images = collect_images(data, num_examples)
        self.log_dir = log_dir
        self.every = _check_int(every, "every", 1)
        self.add_to_logs = bool(add_to_logs)
        self.kwargs = kwargs
        self.last = None
        self._writer = writer
        self._owns_writer = False
        self._disabled = False

    def _get_writer(self):
        if self._writer is None and self.log_dir is not None:
            self._writer = tf.summary.create_file_writer(str(self.log_dir))
            self._owns_writer = True
        return self._writer

    def on_epoch_end(self, epoch, logs=None):
        if self._disabled or (epoch + 1) % self.every:
            return
        try:
            values = elbo_decomposition(self.model, self.images, **self.kwargs)
        except (TypeError, ValueError, NotImplementedError) as e:
            log.warning("Decomposition disabled for model %r: %s", self.model.name, e)
            self._disabled = True
            return
        self.last = values
        scalars = {key: float(values[key]) for key in KEYS
                   if key in values and np.isfinite(values[key])}
        writer = self._get_writer()
        if writer is not None:
            with writer.as_default(step=epoch):
                for key, value in scalars.items():
                    tf.summary.scalar(f"decomposition/{key}", value)
            writer.flush()
        if self.add_to_logs and logs is not None:
            logs.update({f"decomposition_{key}": value for key, value in scalars.items()})

    def on_train_end(self, logs=None):
        if self._owns_writer and self._writer is not None:
            self._writer.close()
            self._writer = None
            self._owns_writer = False


@callbacks_lib.register_callback("elbo_decomposition")
def _train_app_callback(context):
    """The train app's hook: every model it trains logs its decomposition each epoch.

    On the app's fixed test images (up to 1000), into the run's `validation` TensorBoard
    run beside the epoch metrics; models that cannot be decomposed warn once and go on.
    """
    return DecompositionCallback(context.images, writer=context.writer("validation"),
                                 num_examples=None)

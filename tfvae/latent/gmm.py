"""Gaussian mixtures fitted by EM: the latent-variable model with a discrete z.

```none
z ~ Categorical(pi),  x | z = k ~ N(mu_k, Sigma_k)    =>    p(x) = sum_k pi_k N(x; mu_k, Sigma_k)
E-step:  r_nk = p(z = k | x_n)                         (exact posterior)
M-step:  from s0_k = mean_n r_nk,  s1_k = mean_n r_nk x_n,  s2_k = mean_n r_nk x_n x_n^T:
         pi_k = s0_k,  mu_k = s1_k / s0_k,  Sigma_k = clip_floor(s2_k / s0_k - mu_k mu_k^T)
```
The covariance floor clips the eigenvalues of Sigma_k (the variances, for "diag") at
`covariance_floor`. That is the exact maximizer of the M-step objective under the constraint
Sigma_k >= floor * I, so EM stays monotone: the log-likelihood never decreases, and it cannot
run to +inf on a component that shrinks onto one point. Initialization: k-means++ seeding
(Arthur & Vassilvitskii 2007), each point assigned to its nearest seed, then one M-step.

`fit_online` is stochastic (online) EM for data that does not fit in memory (Cappe &
Moulines 2009): the sufficient statistics are a running average s <- (1 - rho_t) s +
rho_t s_batch with rho_t = (t + 1)^-kappa, kappa in (1/2, 1], and each batch is followed by
the M-step. Statistics are accumulated about a fixed shift (the data mean, or the first
batch's) so the raw second moments do not cancel catastrophically.

#### References
[1] Dempster, Laird & Rubin (1977), Maximum Likelihood from Incomplete Data via the EM Algorithm.
[2] Cappe & Moulines (2009), On-line expectation-maximization algorithm for latent data models.
[3] Arthur & Vassilvitskii (2007), k-means++: The Advantages of Careful Seeding.
"""

import numpy as np

from tfvae._tf import tf, tfd
from tfvae.latent import _checks
from tfvae.seeds import stateless_seed

COVARIANCES = ("full", "diag")
_CHUNK_ELEMENTS = 4_000_000  # x-minus-mean elements materialized at once by the E-step


def kmeans_plus_plus(x, k, rng):
    """k seeds drawn from the rows of `x` [N, D]: the first uniformly, each next one with
    probability proportional to its squared distance to the nearest seed so far."""
    n = len(x)
    centres = [x[rng.integers(n)]]
    d2 = np.sum((x - centres[0]) ** 2, 1)
    for _ in range(1, k):
        total = d2.sum()
        i = rng.integers(n) if total <= 0 else rng.choice(n, p=d2 / total)
        centres.append(x[i])
        d2 = np.minimum(d2, np.sum((x - x[i]) ** 2, 1))
    return np.stack(centres)


class GaussianMixture:
    """A mixture of K Gaussians with full or diagonal covariances, fitted by EM.

    After fitting: `weights` [K], `means` [K, D], `covariances` [K, D, D] ("full") or the
    variances [K, D] ("diag"), float64; `log_likelihood_history` (mean log p(x) per EM
    iteration in nats: exact for `fit`, a per-batch estimate for `fit_online`); `converged`.

    Args:
        num_components: K >= 1.
        covariance: "full" or "diag". Default value: "full".
        covariance_floor: lower bound on every eigenvalue (variance) of every component.
            Default value: 1e-6.
    """

    def __init__(self, num_components, covariance="full", covariance_floor=1e-6):
        self.num_components = _checks.check_positive_int(num_components, "num_components")
        if covariance not in COVARIANCES:
            raise ValueError(f"`covariance` must be one of {list(COVARIANCES)}; got "
                             f"{covariance!r}.")
        self.covariance = covariance
        self.covariance_floor = _checks.check_positive_float(covariance_floor,
                                                             "covariance_floor", allow_zero=True)
        self.weights = self.means = self.covariances = None
        self.data_shape = None
        self.log_likelihood_history = []
        self.converged = False

    # ------------------------------------------------------------------ batch EM

    def fit(self, x, max_iter=200, tol=1e-6, seed=0):
        """EM on all of `x` [N, D] or [N, H, W, C] until the mean log p(x) rises by less than
        `tol` nats per example, or `max_iter` iterations. `log_likelihood_history[i]` is the
        mean log p(x) after i M-steps (0: the k-means++ start). Returns self."""
        x, shape = _checks.check_data(x)
        max_iter = _checks.check_positive_int(max_iter, "max_iter")
        tol = _checks.check_positive_float(tol, "tol", allow_zero=True)
        self._check_enough(x)
        shift = x.mean(0)
        xs = tf.constant(x - shift)
        self.data_shape = shape
        self._init_from_seeds(x - shift, np.random.default_rng(seed))
        self.log_likelihood_history, self.converged = [], False
        log_px, stats = self._e_step(xs)
        self.log_likelihood_history.append(log_px)
        for _ in range(max_iter):
            self._m_step(*stats)
            log_px, stats = self._e_step(xs)
            self.log_likelihood_history.append(log_px)
            if self.log_likelihood_history[-1] - self.log_likelihood_history[-2] < tol:
                self.converged = True
                break
        self._unshift(shift)
        return self

    def fit_online(self, batches, step_exponent=0.6, seed=0):
        """Stochastic EM over an iterable of batches [B, ...] (arrays, tensors, a tf.data
        pipeline); one pass. The first batch seeds k-means++ and sets the shift. Returns self.

        Args:
            step_exponent: kappa in rho_t = (t + 1)^-kappa, in (0.5, 1]. Default value: 0.6.
        """
        kappa = _checks.check_positive_float(step_exponent, "step_exponent")
        if not 0.5 < kappa <= 1.0:
            raise ValueError(f"`step_exponent` must be in (0.5, 1]; got {step_exponent!r}.")
        rng = np.random.default_rng(seed)
        shift, stats, history = None, None, []
        for t, batch in enumerate(batches):
            batch, shape = _checks.check_data(np.asarray(batch), "batch", min_examples=1)
            if shift is None:
                self._check_enough(batch)
                shift, self.data_shape = batch.mean(0), shape
                self._init_from_seeds(batch - shift, rng)
            elif shape != self.data_shape:
                raise ValueError(f"batch {t} has examples of shape {list(shape)}; the first "
                                 f"had {list(self.data_shape)}.")
            log_px, batch_stats = self._e_step(tf.constant(batch - shift))
            history.append(log_px)
            rho = (t + 1.0) ** -kappa if t else 1.0
            stats = batch_stats if stats is None else tuple(
                (1 - rho) * s + rho * b for s, b in zip(stats, batch_stats))
            self._m_step(*stats)
        if shift is None:
            raise ValueError("`batches` yielded no batch.")
        self.log_likelihood_history, self.converged = history, False
        self._unshift(shift)
        return self

    def _check_enough(self, x):
        if len(x) < self.num_components:
            raise ValueError(f"{self.num_components} components need at least as many "
                             f"examples; got {len(x)}.")

    def _init_from_seeds(self, x, rng):
        centres = kmeans_plus_plus(x, self.num_components, rng)
        d2 = (x ** 2).sum(1)[:, None] - 2 * x @ centres.T + (centres ** 2).sum(1)[None]
        resp = np.eye(self.num_components)[np.argmin(d2, 1)]
        self._m_step(*(s.numpy() for s in self._stats(tf.constant(x), tf.constant(resp))))

    def _stats(self, x, resp):
        """(s0 [K], s1 [K, D], s2 [K, D, D] or [K, D]): means over the batch."""
        n = tf.cast(tf.shape(x)[0], x.dtype)
        s0 = tf.reduce_sum(resp, 0) / n
        s1 = tf.matmul(resp, x, transpose_a=True) / n
        if self.covariance == "diag":
            s2 = tf.matmul(resp, x * x, transpose_a=True) / n
        else:
            s2 = tf.einsum("nk,nd,ne->kde", resp, x, x) / n
        return s0, s1, s2

    def _m_step(self, s0, s1, s2):
        safe = np.maximum(s0, 1e-300)[:, None]
        self.weights = s0 / s0.sum()
        self.means = s1 / safe
        floor = self.covariance_floor
        if self.covariance == "diag":
            self.covariances = np.maximum(s2 / safe - self.means ** 2, floor)
        else:
            cov = s2 / safe[:, :, None] - self.means[:, :, None] * self.means[:, None, :]
            vals, vecs = np.linalg.eigh(0.5 * (cov + np.swapaxes(cov, 1, 2)))
            self.covariances = np.einsum("kij,kj,klj->kil", vecs, np.maximum(vals, floor), vecs)

    def _e_step(self, x):
        """(mean log p(x) [exact, nats], sufficient statistics) at the current parameters."""
        log_px, stats = [], None
        params = self._parameters()
        for xb in self._chunks(x):
            lse, *chunk = self._compiled("e_step")(xb, *params)
            log_px.append(lse.numpy())
            chunk = [s.numpy() * int(xb.shape[0]) for s in chunk]
            stats = chunk if stats is None else [a + b for a, b in zip(stats, chunk)]
        n = int(x.shape[0])
        return float(np.concatenate(log_px).mean()), tuple(s / n for s in stats)

    def _chunks(self, x):
        if self.covariance == "diag":  # no [n, K, D] tensor: chunk only to bound [n, D]
            size = max(1, 20 * _CHUNK_ELEMENTS // int(x.shape[1]))
        else:
            size = max(1, _CHUNK_ELEMENTS // (self.num_components * int(x.shape[1])))
        return [x[i:i + size] for i in range(0, int(x.shape[0]), size)]

    def _parameters(self):
        """(log weights [K], means [K, D], scale [K, D] or Cholesky factors [K, D, D]) tensors."""
        with np.errstate(divide="ignore"):
            log_w = np.log(self.weights)
        scale = (np.sqrt(self.covariances) if self.covariance == "diag"
                 else np.linalg.cholesky(self.covariances))
        return tf.constant(log_w), tf.constant(self.means), tf.constant(scale)

    def _components_from(self, means, scale):
        if self.covariance == "diag":
            return tfd.MultivariateNormalDiag(means, scale)
        return tfd.MultivariateNormalTriL(means, scale)

    def _components(self):
        return self._components_from(*self._parameters()[1:])

    def _compiled(self, name):
        """The E-step and log-joint as tf.functions (eager TFP costs ~10 ms per call)."""
        cache = self.__dict__.setdefault("_functions", {})
        if name not in cache:
            def log_joint(x, log_w, means, scale):
                """log pi_k + log N(x_n; mu_k, Sigma_k), [n, K]."""
                if self.covariance == "diag":
                    # The same density as MultivariateNormalDiag, expanded into three matmuls
                    # instead of an [n, K, D] tensor: ~20x faster for images (float64).
                    precision = scale ** -2
                    quadratic = (tf.matmul(x * x, precision, transpose_b=True)
                                 - 2.0 * tf.matmul(x, means * precision, transpose_b=True)
                                 + tf.reduce_sum(means * means * precision, 1))
                    log_det = 2.0 * tf.reduce_sum(tf.math.log(scale), 1)
                    dim = tf.cast(tf.shape(x)[1], x.dtype)
                    return log_w - 0.5 * (quadratic + log_det + dim * np.log(2 * np.pi))
                return self._components_from(means, scale).log_prob(x[:, None, :]) + log_w

            def e_step(x, log_w, means, scale):
                joint = log_joint(x, log_w, means, scale)
                lse = tf.reduce_logsumexp(joint, 1)
                return (lse, *self._stats(x, tf.exp(joint - lse[:, None])))
            fn = {"log_joint": log_joint, "e_step": e_step}[name]
            cache[name] = tf.function(fn, reduce_retracing=True)
        return cache[name]

    def _log_joint(self, x):
        return self._compiled("log_joint")(x, *self._parameters())

    def _unshift(self, shift):
        self.means = self.means + shift

    # ------------------------------------------------------------------ the fitted model

    def _check_fitted(self):
        if self.means is None:
            raise ValueError("This GaussianMixture is not fitted yet; call `fit(x)` or "
                             "`GaussianMixture.load(path)`.")

    def distribution(self):
        """p(x) as a float64 `tfd.MixtureSameFamily` over flattened examples (event [D])."""
        self._check_fitted()
        return tfd.MixtureSameFamily(tfd.Categorical(probs=tf.constant(self.weights)),
                                     self._components(), name="p_x")

    def log_prob(self, x):
        """Exact log p(x) per example, [N] float64 nats."""
        self._check_fitted()
        x = tf.constant(_checks.check_features(x, self.means.shape[1]))
        return np.concatenate([tf.reduce_logsumexp(self._log_joint(xb), 1).numpy()
                               for xb in self._chunks(x)])

    def responsibilities(self, x):
        """p(z = k | x), [N, K] (exact)."""
        self._check_fitted()
        x = tf.constant(_checks.check_features(x, self.means.shape[1]))
        return np.concatenate([tf.nn.softmax(self._log_joint(xb), 1).numpy()
                               for xb in self._chunks(x)])

    def sample(self, n, seed=0):
        """`n` draws of x from p(x), [n, *data_shape] float64."""
        n = _checks.check_positive_int(n, "n")
        draws = self.distribution().sample(n, seed=stateless_seed(seed)).numpy()
        return draws.reshape(n, *self.data_shape)

    # ------------------------------------------------------------------ files

    def save(self, path):
        """Writes the fitted model to `path` (.npz, atomically); returns the path."""
        self._check_fitted()
        return _checks.save_npz(path, "gmm", {
            "num_components": self.num_components, "covariance": self.covariance,
            "covariance_floor": self.covariance_floor, "data_shape": list(self.data_shape),
            "converged": self.converged},
            {"weights": self.weights, "means": self.means, "covariances": self.covariances,
             "log_likelihood_history": np.asarray(self.log_likelihood_history)})

    @classmethod
    def load(cls, path):
        """The model `save` wrote to `path`."""
        config, arrays = _checks.load_npz(path, "gmm")
        model = cls(config["num_components"], config["covariance"], config["covariance_floor"])
        model.data_shape = tuple(config["data_shape"])
        model.converged = bool(config["converged"])
        model.weights, model.means = arrays["weights"], arrays["means"]
        model.covariances = arrays["covariances"]
        model.log_likelihood_history = arrays["log_likelihood_history"].tolist()
        return model

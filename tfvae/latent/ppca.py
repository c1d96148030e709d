"""Probabilistic PCA (Tipping & Bishop 1999), fitted three ways.

```none
z ~ N(0, I_K),   x | z ~ N(W z + mu, s2 I_D)    =>    x ~ N(mu, C),   C = W W^T + s2 I_D
log p(X) / N = -1/2 [ D log 2 pi + log|C| + tr(C^-1 S) ],   S = (1/N) sum_n (x_n - mu)(x_n - mu)^T
p(z | x)     = N( M^-1 W^T (x - mu), s2 M^-1 ),             M = W^T W + s2 I_K
```
The maximum-likelihood mean is the sample mean whatever W and s2 are, so every method fixes
mu there and works with S alone:

- `closed_form`: S = U diag(l) U^T with l descending; s2 = mean(l_{K+1..D}) (the variance
  the K-dimensional subspace leaves out) and W = U_K (diag(l_{1..K}) - s2 I)^1/2, the global
  maximum (up to a rotation W R).
- `em`: Tipping & Bishop's EM updates, a generalized EM whose E-step is exact, so log p(X)
  never decreases:  W' = S W (s2 I + M^-1 W^T S W)^-1,  s2' = tr(S - S W M^-1 W'^T) / D.
- `gradient`: Adam on -log p(X) itself, evaluated by TFP's
  `MultivariateNormalDiagPlusLowRankCovariance` (Woodbury and the determinant lemma inside,
  O(N D K) per step), with s2 = exp(log_s2) so it stays positive.

All arithmetic is float64: the tests compare the three solutions to 1e-6.

#### References
[1] Tipping & Bishop (1999), Probabilistic Principal Component Analysis, JRSS B 61(3).
[2] Roweis (1998), EM Algorithms for PCA and SPCA, NIPS.
"""

import math

import numpy as np

from tfvae._tf import tf, tfd, tfk
from tfvae.latent import _checks
from tfvae.seeds import stateless_seed

METHODS = ("closed_form", "em", "gradient")


def log_likelihood_from_moments(cov, w, s2):
    """Mean log p(x) per example, nats (exact), for data with covariance `cov` about mu.

    Uses log|C| = (D - K) log s2 + log|M| and C^-1 = (I - W M^-1 W^T) / s2, so nothing D x D
    is inverted. Args are float64 tensors: cov [D, D], w [D, K], s2 [].
    """
    d, k = int(w.shape[0]), int(w.shape[1])
    m = tf.matmul(w, w, transpose_a=True) + s2 * tf.eye(k, dtype=w.dtype)
    chol = tf.linalg.cholesky(m)
    log_det_c = (d - k) * tf.math.log(s2) + 2.0 * tf.reduce_sum(
        tf.math.log(tf.linalg.diag_part(chol)))
    sw = tf.matmul(cov, w)
    trace = (tf.linalg.trace(cov) - tf.linalg.trace(
        tf.linalg.cholesky_solve(chol, tf.matmul(w, sw, transpose_a=True)))) / s2
    return -0.5 * (d * math.log(2 * math.pi) + log_det_c + trace)


def em_step(cov, w, s2):
    """One Tipping & Bishop EM update of (W, s2) for data covariance `cov` (float64 tensors)."""
    d, k = int(w.shape[0]), int(w.shape[1])
    eye = tf.eye(k, dtype=w.dtype)
    m = tf.matmul(w, w, transpose_a=True) + s2 * eye
    sw = tf.matmul(cov, w)                                           # S W       [D, K]
    minv_wtsw = tf.linalg.solve(m, tf.matmul(w, sw, transpose_a=True))  # M^-1 W^T S W
    w_new = tf.transpose(tf.linalg.solve(tf.transpose(s2 * eye + minv_wtsw), tf.transpose(sw)))
    s2_new = (tf.linalg.trace(cov) - tf.linalg.trace(
        tf.matmul(sw, tf.linalg.solve(m, tf.transpose(w_new))))) / d
    return w_new, s2_new


class PPCA:
    """Probabilistic PCA with K latent dimensions.

    After `fit`: `mean` [D], `weights` W [D, K], `noise_variance` s2 (float64),
    `log_likelihood_history` (mean train log p(x) in nats after each EM iteration, or before
    each gradient step: exact, except with a `batch_size`, where it is the minibatch's
    estimate) and `data_shape` (the shape of one example, used by `sample`).

    Args:
        latent_dim: K, 1 <= K < D.
    """

    def __init__(self, latent_dim):
        self.latent_dim = _checks.check_positive_int(latent_dim, "latent_dim")
        self.mean = self.weights = self.noise_variance = None
        self.data_shape = None
        self.method = None
        self.log_likelihood_history = []

    # ------------------------------------------------------------------ fitting

    def fit(self, x, method="closed_form", max_iter=1000, tol=1e-10, steps=1000,
            learning_rate=0.02, batch_size=None, seed=0):
        """Fits mu, W and s2 to `x` [N, D] or [N, H, W, C] by maximum likelihood.

        Args:
            method: "closed_form", "em" or "gradient". Default value: "closed_form".
            max_iter, tol: EM stops after `max_iter` iterations or when the mean log p(x)
                rises by less than `tol` nats. Default values: 1000, 1e-10.
            steps, learning_rate, batch_size: Adam steps (the rate decays linearly to 1% of
                `learning_rate`), and examples per step (None: all of them, exact gradients).
            seed: seeds the random initial W of "em" and "gradient" and the minibatches.

        Returns:
            self.
        """
        if method not in METHODS:
            raise ValueError(f"`method` must be one of {list(METHODS)}; got {method!r}.")
        x, shape = _checks.check_data(x)
        d, k = x.shape[1], self.latent_dim
        if k >= d:
            raise ValueError(f"`latent_dim` K={k} must be smaller than the data dimension "
                             f"D={d} (s2 is the variance left outside K dimensions).")
        mean = x.mean(0)
        centred = x - mean
        cov = tf.constant(centred.T @ centred / len(x))
        eig = np.sort(np.linalg.eigvalsh(cov.numpy()))[::-1]
        if not eig[k:].mean() > 1e-12 * max(eig[0], 1e-300):
            raise ValueError(f"The data have no variance outside {k} dimensions, so s2 = 0 and "
                             "log p(x) is infinite; use a smaller `latent_dim` or add noise "
                             "(dequantize).")
        self.mean, self.data_shape, self.method = mean, shape, method
        self.log_likelihood_history = []
        if method == "closed_form":
            w, s2 = self._closed_form(cov)
        else:
            rng = np.random.default_rng(seed)
            scale = math.sqrt(float(tf.linalg.trace(cov)) / d)
            w0 = tf.constant(rng.normal(scale=scale / math.sqrt(k), size=(d, k)))
            s2_0 = tf.constant(scale**2, tf.float64)
            if method == "em":
                _checks.check_positive_int(max_iter, "max_iter")
                w, s2 = self._em(cov, w0, s2_0, max_iter, _checks.check_positive_float(
                    tol, "tol", allow_zero=True))
            else:
                w, s2 = self._gradient(centred, w0, s2_0, _checks.check_positive_int(
                    steps, "steps"), _checks.check_positive_float(learning_rate,
                                                                  "learning_rate"),
                    batch_size, seed)
        self.weights, self.noise_variance = np.asarray(w, np.float64), float(s2)
        return self

    def _closed_form(self, cov):
        eigvals, eigvecs = tf.linalg.eigh(cov)                 # ascending
        eigvals, eigvecs = eigvals[::-1], eigvecs[:, ::-1]
        k = self.latent_dim
        s2 = tf.reduce_mean(eigvals[k:])
        w = eigvecs[:, :k] * tf.sqrt(tf.maximum(eigvals[:k] - s2, 0.0))
        self.log_likelihood_history = [float(log_likelihood_from_moments(cov, w, s2))]
        return w.numpy(), s2.numpy()

    def _em(self, cov, w, s2, max_iter, tol):
        step = tf.function(em_step)
        history = [float(log_likelihood_from_moments(cov, w, s2))]
        for _ in range(max_iter):
            w, s2 = step(cov, w, s2)
            history.append(float(log_likelihood_from_moments(cov, w, s2)))
            if history[-1] - history[-2] < tol:
                break
        self.log_likelihood_history = history
        return w.numpy(), s2.numpy()

    def _gradient(self, centred, w0, s2_0, steps, learning_rate, batch_size, seed):
        data = tf.constant(centred)
        n = len(centred)
        if batch_size is not None:
            batch_size = min(_checks.check_positive_int(batch_size, "batch_size"), n)
        w = tf.Variable(w0)
        log_s2 = tf.Variable(tf.math.log(s2_0))
        schedule = tfk.optimizers.schedules.PolynomialDecay(
            learning_rate, steps, end_learning_rate=0.01 * learning_rate)
        optimizer = tfk.optimizers.Adam(schedule)
        base_seed = stateless_seed(seed)

        def train_step(i):
            if batch_size is None:
                xb = data
            else:
                idx = tf.random.stateless_uniform(
                    [batch_size], tf.random.experimental.stateless_fold_in(base_seed, i),
                    maxval=n, dtype=tf.int32)
                xb = tf.gather(data, idx)
            with tf.GradientTape() as tape:
                dist = _marginal(tf.zeros_like(data[0]), w, tf.exp(log_s2))
                loss = -tf.reduce_mean(dist.log_prob(xb))
            grads = tape.gradient(loss, [w, log_s2])
            optimizer.apply_gradients(zip(grads, [w, log_s2]))
            return -loss

        @tf.function
        def run():  # the whole loop in one graph: ~20x faster than a Python loop of steps
            history = tf.TensorArray(tf.float64, size=steps)
            for i in tf.range(steps):
                history = history.write(i, train_step(i))
            return history.stack()

        self.log_likelihood_history = run().numpy().tolist()
        return w.numpy(), np.exp(log_s2.numpy())

    # ------------------------------------------------------------------ the fitted model

    def _check_fitted(self):
        if self.weights is None:
            raise ValueError("This PPCA is not fitted yet; call `fit(x)` or `PPCA.load(path)`.")

    @property
    def data_dim(self):
        self._check_fitted()
        return len(self.mean)

    def covariance(self):
        """C = W W^T + s2 I, [D, D] float64 (exact)."""
        self._check_fitted()
        return self.weights @ self.weights.T + self.noise_variance * np.eye(self.data_dim)

    def marginal(self):
        """p(x) = N(mu, W W^T + s2 I) as a float64 `tfd.MultivariateNormalDiagPlusLowRankCovariance`
        over flattened examples (event shape [D])."""
        self._check_fitted()
        return _marginal(tf.constant(self.mean), tf.constant(self.weights),
                         tf.constant(self.noise_variance, tf.float64))

    def log_prob(self, x):
        """Exact log p(x) per example, [N] float64 nats; `x` is [N, D] or [N, *data_shape]."""
        x = _checks.check_features(x, self.data_dim)
        return self.marginal().log_prob(tf.constant(x)).numpy()

    def posterior(self, x):
        """p(z | x) = N(M^-1 W^T (x - mu), s2 M^-1): a float64 `tfd.MultivariateNormalTriL`,
        batch [N], event [K] (exact)."""
        x = _checks.check_features(x, self.data_dim)
        w = self.weights
        m = w.T @ w + self.noise_variance * np.eye(self.latent_dim)
        loc = np.linalg.solve(m, w.T @ (x - self.mean).T).T
        chol = np.linalg.cholesky(self.noise_variance * np.linalg.inv(m))
        return tfd.MultivariateNormalTriL(loc=tf.constant(loc), scale_tril=tf.constant(
            np.broadcast_to(chol, (len(x), *chol.shape)).copy()), name="p_z_given_x")

    def sample(self, n, seed=0):
        """`n` draws of x from p(x), [n, *data_shape] float64."""
        n = _checks.check_positive_int(n, "n")
        draws = self.marginal().sample(n, seed=stateless_seed(seed)).numpy()
        return draws.reshape(n, *self.data_shape)

    def components(self):
        """(directions [K, *data_shape], variances [K]): the orthonormal principal axes of the
        fitted W (its left singular vectors, whatever rotation the fit ended in) and the
        variance of p(x) along each, s_i^2 + s2, in decreasing order (exact)."""
        self._check_fitted()
        u, s, _ = np.linalg.svd(self.weights, full_matrices=False)
        u = u * np.where(u.sum(0) < 0, -1.0, 1.0)  # a fixed sign per axis, for plots
        return u.T.reshape(self.latent_dim, *self.data_shape), s**2 + self.noise_variance

    # ------------------------------------------------------------------ files

    def save(self, path):
        """Writes the fitted model to `path` (.npz, atomically); returns the path."""
        self._check_fitted()
        return _checks.save_npz(path, "ppca", {
            "latent_dim": self.latent_dim, "data_shape": list(self.data_shape),
            "method": self.method, "noise_variance": self.noise_variance},
            {"mean": self.mean, "weights": self.weights,
             "log_likelihood_history": np.asarray(self.log_likelihood_history)})

    @classmethod
    def load(cls, path):
        """The model `save` wrote to `path`."""
        config, arrays = _checks.load_npz(path, "ppca")
        model = cls(config["latent_dim"])
        model.data_shape = tuple(config["data_shape"])
        model.method = config["method"]
        model.noise_variance = float(config["noise_variance"])
        model.mean, model.weights = arrays["mean"], arrays["weights"]
        model.log_likelihood_history = arrays["log_likelihood_history"].tolist()
        return model


def _marginal(mean, w, s2):
    return tfd.MultivariateNormalDiagPlusLowRankCovariance(
        loc=mean, cov_diag_factor=s2 * tf.ones_like(mean), cov_perturb_factor=w, name="p_x")

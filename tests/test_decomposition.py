"""The rate decomposition over a dataset split: closed forms on a linear-Gaussian encoder,
kNN entropies, active units, the AE path, and the TensorBoard callback."""

import glob
import math

import numpy as np
import pytest

import tfvae
from tfvae._tf import tf, tfd, tfk
from tfvae.evaluation import decomposition as dec
from tfvae.posteriors.base import Posterior
from tfvae.registry import MODELS

# q(z|x) = N(A x, s^2 I) with x ~ N(0, I_4): q(z) = N(0, A A^T + s^2 I) (see test_objectives).
A = np.array([[1.0, 0.5, 0.0, 0.0], [0.6, 1.0, 0.3, 0.0], [0.0, 0.2, 0.5, 0.8]])
S_ENC = 0.5
IMAGE = (2, 2, 1)


def closed_forms():
    d = A.shape[0]
    cov = A @ A.T + S_ENC**2 * np.eye(d)
    var = np.diag(cov)
    logdet = np.linalg.slogdet(cov)[1]
    forms = {"mi": 0.5 * logdet - d * np.log(S_ENC),
             "tc": 0.5 * np.sum(np.log(var)) - 0.5 * logdet,
             "dim_kl": 0.5 * np.sum(var - 1 - np.log(var)),
             # E_x KL(N(Ax, s^2 I) || N(0, I)) = (D s^2 + tr(A A^T) - D) / 2 - D log s
             "kl": 0.5 * (d * S_ENC**2 + np.trace(A @ A.T) - d) - d * np.log(S_ENC)}
    forms["aggregate_kl"] = forms["tc"] + forms["dim_kl"]
    return forms


class LinearPosterior(Posterior):
    """q(z|x) = N(A vec(x), s^2 I): fixed, so the decomposition has closed forms."""

    def __init__(self, **kwargs):
        super().__init__(A.shape[0], **kwargs)
        self.a = tf.constant(A.T, tf.float32)

    @staticmethod
    def params_size(latent_dim):
        return 0

    def call(self, h):
        loc = h @ self.a
        return tfd.MultivariateNormalDiag(loc, tf.fill(tf.shape(loc), S_ENC))


@pytest.fixture(scope="module")
def linear():
    model = tfvae.VAE(latent_dim=3, posterior=LinearPosterior(), likelihood="normal",
                      input_shape=IMAGE, hidden_units=(8,),
                      encoder=tfk.Sequential([tfk.layers.Flatten(input_shape=IMAGE)]), seed=0)
    x = np.random.default_rng(0).normal(size=(3000, *IMAGE)).astype(np.float32)
    return model, x


@pytest.mark.parametrize("estimator", ["mss", "mws", "exact"])
def test_decomposition_matches_closed_forms(linear, estimator):
    model, x = linear
    closed = closed_forms()
    values = dec.elbo_decomposition(model, x, estimator=estimator, batch_size=1000, seed=1)
    assert values["method"] == "minibatch" and values["num_examples"] == 3000
    # One posterior sample per example over a split of 3000: each mean has a standard
    # error of ~0.02 nats (MI) and ~0.01 (TC, dim_kl); the split's own aggregate posterior
    # differs from the population's by less; the minibatch (M = 1000) Jensen bias adds
    # ~+0.02 to MI. Tolerances ~3 standard errors + that bias.
    for key, tol in (("mi", 0.08), ("tc", 0.04), ("dim_kl", 0.04), ("aggregate_kl", 0.05)):
        assert values[key] == pytest.approx(closed[key], abs=tol), (key, values[key], closed[key])
    # The analytic mean KL is exact up to the sampling of x (sd ~0.8 nats / sqrt(3000)).
    assert values["kl"] == pytest.approx(closed["kl"], abs=0.05)
    # E KL(q(z|x) || p) = I + KL(q(z) || p): the per-sample parts sum to the MC KL exactly,
    # so the identity holds up to the MC error of one sample per example (~0.03 nats).
    assert values["kl"] == pytest.approx(values["mi"] + values["aggregate_kl"], abs=0.1)
    assert values["active_units"] == 3
    # q(z) is Gaussian here, so the moment-matched bound is tight.
    assert values["gaussian_kl_bound"] == pytest.approx(closed["aggregate_kl"], abs=0.04)


def test_knn_method_matches_closed_forms(linear):
    model, x = linear
    closed = closed_forms()
    values = dec.elbo_decomposition(model, x, method="knn", seed=1)
    assert values["method"] == "knn"
    # kNN entropies of 3000 samples in 3-D (and 1-D) are good to a few hundredths of a nat;
    # their differences (TC, KL) to ~0.1. mi = analytic kl - aggregate_kl here.
    for key in ("tc", "dim_kl", "aggregate_kl", "mi"):
        assert values[key] == pytest.approx(closed[key], abs=0.1), (key, values[key], closed[key])
    assert values["aggregate_kl"] == pytest.approx(values["tc"] + values["dim_kl"], abs=1e-9)


def test_knn_entropy_of_gaussians():
    r = np.random.default_rng(2)
    cov = np.array([[1.0, 0.6, 0.0], [0.6, 2.0, 0.3], [0.0, 0.3, 0.5]])
    z = r.multivariate_normal(np.zeros(3), cov, size=4000)
    entropy = 0.5 * np.linalg.slogdet(2 * np.pi * np.e * cov)[1]
    # Kozachenko-Leonenko on 4000 points in 3-D: bias and sd both ~0.02 nats.
    assert dec.knn_entropy(z, k=3) == pytest.approx(entropy, abs=0.06)
    assert dec.knn_entropy(z[:, 1:2], k=3) == pytest.approx(
        0.5 * np.log(2 * np.pi * np.e * 2.0), abs=0.05)
    # The 1-D path (sorting, O(n k)) equals the brute-force k-th neighbour distance.
    col = z[:500, 0]
    brute = np.sort(np.abs(col[:, None] - col[None]), axis=1)[:, 3]
    np.testing.assert_allclose(dec._knn_distances_1d(col, 3), brute)


def test_gaussian_bound_is_below_the_kl_of_a_non_gaussian():
    # q = 0.5 N(-2, 0.5^2) + 0.5 N(2, 0.5^2): KL(q || N(0, 1)) by quadrature.
    grid = np.linspace(-8, 8, 200001)

    def normal_pdf(t, m, s):
        return np.exp(-0.5 * ((t - m) / s) ** 2) / (s * np.sqrt(2 * np.pi))

    q = 0.5 * normal_pdf(grid, -2, 0.5) + 0.5 * normal_pdf(grid, 2, 0.5)
    kl = np.sum(q * (np.log(q + 1e-300) - np.log(normal_pdf(grid, 0, 1)))) * (grid[1] - grid[0])
    r = np.random.default_rng(3)
    z = np.where(r.random(5000) < 0.5, -2.0, 2.0) + 0.5 * r.normal(size=5000)
    bound = dec.gaussian_kl_bound(z[:, None])
    knn_kl = -dec.knn_entropy(z[:, None]) + np.mean(0.5 * z**2 + 0.5 * np.log(2 * np.pi))
    assert bound < kl - 0.3                      # the Gaussian bound misses the bimodality
    assert knn_kl == pytest.approx(kl, abs=0.05)  # kNN does not


def test_gaussian_bound_is_unbiased_for_gaussian_samples():
    r = np.random.default_rng(5)
    d, n = 20, 400
    a = r.normal(size=(d, d)) * 0.2
    cov, mu = a @ a.T + 0.5 * np.eye(d), r.normal(size=d) * 0.3
    kl = 0.5 * (np.trace(cov) + mu @ mu - d - np.linalg.slogdet(cov)[1])     # 3.28 nats
    values = [dec.gaussian_kl_bound(r.multivariate_normal(mu, cov, size=n)) for _ in range(40)]
    se = np.std(values) / np.sqrt(len(values))                              # ~0.025
    # Within 4 standard errors; the uncorrected plug-in is biased up by ~0.29 here (12 SE).
    assert abs(np.mean(values) - kl) < 4 * se, (np.mean(values), kl, se)


def test_active_units_counts_varying_means():
    r = np.random.default_rng(4)
    means = r.normal(size=(5000, 4)) * np.sqrt([1.0, 0.02, 0.005, 0.0])
    assert dec.active_units(means) == 2
    assert dec.active_units(means, threshold=1e-3) == 3


def test_autoencoder_uses_knn_and_reports_infinite_mi(synthetic_batch):
    model = MODELS.get("ae")(latent_dim=3, hidden_units=(32,), seed=0)
    values = dec.elbo_decomposition(model, synthetic_batch)
    assert values["method"] == "knn"
    assert values["mi"] == math.inf and values["kl"] == math.inf
    assert all(np.isfinite(values[k]) for k in ("tc", "dim_kl", "aggregate_kl",
                                                "gaussian_kl_bound"))
    assert values["aggregate_kl"] == pytest.approx(values["tc"] + values["dim_kl"])
    with pytest.raises(ValueError, match="`method='minibatch'` needs a Gaussian posterior"):
        dec.elbo_decomposition(model, synthetic_batch, method="minibatch")


@pytest.mark.parametrize("kwargs,match", [
    ({"method": "mc"}, "`method` must be one of"),
    ({"estimator": "iwae"}, "`estimator` must be one of"),
    ({"batch_size": 1}, "`batch_size` must be an int >= 2"),
    ({"num_examples": 0}, "`num_examples` must be an int >= 1"),
    ({"k": 0}, "`k` must be an int >= 1"),
    ({"dataset_size": 1}, "`dataset_size`"),
])
def test_decomposition_errors(linear, kwargs, match):
    model, x = linear
    with pytest.raises(ValueError, match=match):
        dec.elbo_decomposition(model, x[:50], **kwargs)


def _scalar_tags(log_dir):
    tags = {}
    for path in glob.glob(f"{log_dir}/**/events.out.tfevents.*", recursive=True):
        for record in tf.data.TFRecordDataset(path):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                tags.setdefault(value.tag, []).append(event.step)
    return tags


@pytest.mark.parametrize("name", ["vae", "ae"])
def test_callback_logs_every_epoch(tmp_path, name):
    train = tfvae.data.load("synthetic", "train", 64, binarize="static", limit=128)
    test = tfvae.data.load("synthetic", "test", 100, binarize="static", limit=200)
    model = MODELS.get(name)(latent_dim=3, hidden_units=(32,), seed=0)
    model.compile(optimizer=tfk.optimizers.Adam(1e-3))
    callback = dec.DecompositionCallback(test, log_dir=str(tmp_path), batch_size=100)
    history = model.fit(train, epochs=2, verbose=0, callbacks=[callback]).history
    tags = _scalar_tags(tmp_path)
    logged = {"tc", "dim_kl", "aggregate_kl", "active_units", "gaussian_kl_bound"}
    logged |= {"mi", "kl"} if name == "vae" else set()
    assert {f"decomposition/{k}" for k in logged} == set(tags)
    assert all(steps == [0, 1] for steps in tags.values())
    assert {f"decomposition_{k}" for k in logged} <= set(history)
    assert callback.last["num_examples"] == 200

"""The rate decomposition over a dataset split: closed forms on a linear-Gaussian encoder,
an independent NumPy computation over a finite split, kNN entropies, active units, the AE
path, and the TensorBoard callback."""

import glob
import math

import numpy as np
import pytest

import tfvae
from tfvae._tf import tf, tfd, tfk
from tfvae import callbacks
from tfvae.evaluation import decomposition as dec
from tfvae.evaluation import knn
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
    assert values["active_units"] == 3
    # q(z) is Gaussian here, so the moment-matched bound is tight.
    assert values["gaussian_kl_bound"] == pytest.approx(closed["aggregate_kl"], abs=0.04)


# A finite split: N0 distinct inputs, each repeated R times. Its aggregate posterior is the
# mixture q(z) = (1/N0) sum_n N(z; A x_n, s^2 I) (the copies have equal weights), which is
# not Gaussian, so the population closed forms above do not apply; NumPy computes MI, TC and
# dim-KL of that mixture directly by logsumexp over its components.
N0, REPEATS = 40, 40


def logsumexp(a, axis):
    top = a.max(axis=axis, keepdims=True)
    return np.squeeze(top, axis) + np.log(np.sum(np.exp(a - top), axis=axis))


def _log_normal(z, loc, scale):
    """log N(z_d; loc_nd, scale^2) for every sample and component, [n, N0, D]."""
    return (-0.5 * ((z[:, None, :] - loc[None]) / scale) ** 2 - np.log(scale)
            - 0.5 * np.log(2 * np.pi))


def mixture_decomposition(loc, scale, per_component=2000, seed=11):
    """(mean, standard deviation) of the per-sample mi, tc and dim_kl under the mixture of
    N(loc_n, scale^2 I): NumPy float64, its own samples, per_component per component."""
    r = np.random.default_rng(seed)
    n0, d = loc.shape
    z = (loc[:, None, :] + scale * r.normal(size=(n0, per_component, d))).reshape(-1, d)
    own = np.repeat(np.arange(n0), per_component)
    log_q = _log_normal(z, loc, scale)                                      # [n, N0, D]
    log_qz_x = log_q[np.arange(len(z)), own].sum(-1)
    log_qz = logsumexp(log_q.sum(-1), axis=1) - np.log(n0)                 # self-normalized
    log_qz_d = logsumexp(log_q, axis=1) - np.log(n0)                       # [n, D]
    log_pz_d = -0.5 * z**2 - 0.5 * np.log(2 * np.pi)
    parts = {"mi": log_qz_x - log_qz, "tc": log_qz - log_qz_d.sum(1),
             "dim_kl": (log_qz_d - log_pz_d).sum(1)}
    return {key: (v.mean(), v.std()) for key, v in parts.items()}


@pytest.mark.parametrize("estimator", ["exact", "mss", "mws"])
def test_decomposition_of_a_finite_split_matches_numpy(linear, estimator):
    model, _ = linear
    x = 1.5 * np.random.default_rng(0).normal(size=(N0, 4))
    oracle = mixture_decomposition(x @ A.T, S_ENC)
    # MI ~2.7 nats of at most log N0 = 3.7, TC ~0.8, dim_kl ~1.2: all three matter.
    assert oracle["mi"][0] > 2.0 and oracle["tc"][0] > 0.5 and oracle["dim_kl"][0] > 0.5
    images = np.tile(x.reshape(N0, *IMAGE), (REPEATS, 1, 1, 1)).astype(np.float32)
    n = len(images)
    estimates = {key: [] for key in oracle}
    for seed in range(4):
        values = dec.elbo_decomposition(model, images, estimator=estimator, batch_size=400,
                                        seed=seed)
        for key in estimates:
            estimates[key].append(values[key])
    for key, (mean, sd) in oracle.items():
        # One sample per example: a standard error of sd / sqrt(n) (0.03-0.06 nats) per seed,
        # plus the oracle's own (sd / sqrt(80000)). Weights off by a constant factor, such as
        # Chen et al.'s 1/(NM) (log N = 7.4 nats per density), or a log q(z) that is not
        # normalized over the split's examples miss by tens of standard errors; so would a
        # joint log q(z) taken from the marginals' weights.
        se = np.hypot(sd / np.sqrt(n), sd / np.sqrt(N0 * 2000))
        values = np.array(estimates[key])
        assert np.all(np.abs(values - mean) < 4.5 * se), (key, values, mean, se)
        assert abs(values.mean() - mean) < 4 * se / 2, (key, values.mean(), mean, se)


class SharpPosterior(Posterior):
    """q(z|x) = N(vec(x), SHARP^2 I) in 8 dimensions: MI ~11 nats, beyond log N of any split
    used here, so the minibatch estimators' bias (~exp(MI) / M) is large."""

    def __init__(self, **kwargs):
        super().__init__(8, **kwargs)

    @staticmethod
    def params_size(latent_dim):
        return 0

    def call(self, h):
        return tfd.MultivariateNormalDiag(h, tf.fill(tf.shape(h), SHARP))


SHARP = 0.25


@pytest.fixture(scope="module")
def sharp():
    shape = (2, 4, 1)
    model = tfvae.VAE(latent_dim=8, posterior=SharpPosterior(), likelihood="normal",
                      input_shape=shape, hidden_units=(8,),
                      encoder=tfk.Sequential([tfk.layers.Flatten(input_shape=shape)]), seed=0)
    x = np.random.default_rng(7).normal(size=(800, 8))
    return model, x


def test_auto_sums_exactly_where_minibatches_turn_tc_negative(sharp, monkeypatch, caplog):
    model, x = sharp
    images = x.reshape(-1, 2, 4, 1).astype(np.float32)
    # NumPy's decomposition of this split's aggregate posterior (800 bumps of sd 0.25 in 8-D:
    # MI near log 800 = 6.7, and the rest of the rate as TC, ~3 nats).
    oracle = mixture_decomposition(x, SHARP, per_component=2)
    assert oracle["tc"][0] > 2
    auto = dec.elbo_decomposition(model, images, batch_size=50, seed=3)
    assert auto["estimator"] == "exact" and auto["batch_size"] == 800
    for key in ("mi", "tc", "dim_kl"):
        se = np.hypot(auto["standard_errors"][key], oracle[key][1] / np.sqrt(1600))
        assert abs(auto[key] - oracle[key][0]) < 4 * se, (key, auto[key], oracle[key], se)
    assert auto["flags"] == []
    # The aggregate over a large population (N = 1e6, as a training set's), whose TC is 0
    # (q(z) = N(0, (1 + SHARP^2) I)), in batches of 50: log q(z) misses the few examples
    # whose posteriors overlap z, so TC reads negative, and the result says why.
    population = {"estimator": "mss", "batch_size": 50, "dataset_size": 10**6, "seed": 3}
    mss = dec.elbo_decomposition(model, images, **population)
    assert mss["batch_size"] == 50 and mss["tc"] < -1, mss["tc"]
    assert any(f.startswith("tc estimate") and "mss minibatch estimator (batches of 50)" in f
               for f in mss["flags"]), mss["flags"]
    # Beyond EXACT_MAX_EXAMPLES, "auto" is the minibatch estimator, and says so.
    monkeypatch.setattr(dec, "EXACT_MAX_EXAMPLES", 799)
    auto = dec.elbo_decomposition(model, images, **{**population, "estimator": "auto"})
    assert auto["estimator"] == "mss" and auto["flags"] == mss["flags"]
    # The callback warns once per negative quantity, not every epoch.
    callback = callbacks.DecompositionCallback(images, num_examples=None, **population)
    callback.set_model(model)
    with caplog.at_level("WARNING", logger="tfvae.callbacks.decomposition"):
        callback.on_epoch_end(0, {})
        callback.on_epoch_end(1, {})
    warned = [r.getMessage() for r in caplog.records if "decomposition: tc estimate" in r.message]
    assert len(warned) == 1 and "Epoch 1" in warned[0], warned


def test_negative_flags_name_the_cause():
    exact = {"estimator": "exact", "num_examples": 1000, "batch_size": 1000,
             "standard_errors": {"tc": 0.1, "mi": 0.1}, "tc": -0.05, "mi": -0.5}
    flags = dec.negative_flags(exact, 32)
    assert len(flags) == 2
    assert flags[0].startswith("mi estimate -0.500") and "5.0 standard errors below 0" in \
        flags[0] and "more than Monte-Carlo noise" in flags[0]
    assert flags[1].startswith("tc estimate -0.050") and \
        "Monte-Carlo noise, 0.5 standard errors below 0" in flags[1]
    knn = {"estimator": "knn(k=3)", "num_examples": 1000, "aggregate_kl": -2.0, "mi": 1.0}
    assert dec.negative_flags(knn, 32) == [
        "aggregate_kl estimate -2.000 < 0, which the true aggregate_kl cannot be: the kNN "
        "entropy estimates are biased at n = 1000 in D = 32; compare models at equal n and D"]
    assert dec.negative_flags({**exact, "tc": 0.0, "mi": 0.2}, 32) == []


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
    assert knn.knn_entropy(z, k=3) == pytest.approx(entropy, abs=0.06)
    assert knn.knn_entropy(z[:, 1:2], k=3) == pytest.approx(
        0.5 * np.log(2 * np.pi * np.e * 2.0), abs=0.05)
    # The 1-D path (sorting, O(n k)) and the blockwise D-dim path equal the brute-force
    # k-th neighbour distance.
    col = z[:500, :1]
    brute = np.sort(np.abs(col - col.T), axis=1)[:, 3]
    np.testing.assert_allclose(knn.knn_distances(col, 3), brute)
    padded = np.concatenate([col, np.zeros_like(col)], axis=1)           # same distances, 2-D
    np.testing.assert_allclose(knn.knn_distances(padded, 3, chunk_size=64), brute, atol=1e-6)


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
    knn_kl = -knn.knn_entropy(z[:, None]) + np.mean(0.5 * z**2 + 0.5 * np.log(2 * np.pi))
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
    ({"num_examples": 0}, "`num_examples` must be a positive int"),
    ({"k": 0}, "`k` must be a positive int"),
    ({"dataset_size": 1}, r"`dataset_size \(N, the number of training examples\)` must be"),
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
    callback = callbacks.DecompositionCallback(test, log_dir=str(tmp_path), batch_size=100)
    history = model.fit(train, epochs=2, verbose=0, callbacks=[callback]).history
    tags = _scalar_tags(tmp_path)
    logged = {"tc", "dim_kl", "aggregate_kl", "active_units", "gaussian_kl_bound"}
    logged |= {"mi", "kl"} if name == "vae" else set()
    assert {f"decomposition/{k}" for k in logged} == set(tags)
    assert all(steps == [0, 1] for steps in tags.values())
    assert {f"decomposition_{k}" for k in logged} <= set(history)
    assert callback.last["num_examples"] == 200


def test_importing_the_callbacks_registers_the_train_app_hook():
    assert "elbo_decomposition" in callbacks.EXTRA_CALLBACKS.names()


def test_the_exact_sum_traces_once_for_a_split_decomposed_every_epoch(linear):
    # The callback decomposes the same validation images after every epoch: one trace must
    # serve every call. A trace per call, closing over the posteriors, kept each epoch's
    # graph with their parameters as constants (+7 MB of resident memory per call).
    from tfvae.evaluation import _decomposition_methods as methods
    model, x = linear
    counts = []
    for seed in range(4):
        values = dec.elbo_decomposition(model, x[:600], estimator="exact", batch_size=200,
                                        seed=seed)
        assert values["num_examples"] == 600 and np.isfinite(values["tc"])
        counts.append(methods._exact_rows_traced.experimental_get_tracing_count())
    assert counts[1] >= 1 and counts[1:] == [counts[1]] * 3, counts

"""GaussianMixture: monotone EM, recovered clusters, the one-component MLE, the floor."""

import numpy as np
import pytest

from tfvae.latent import GaussianMixture
from tfvae.latent.gmm import kmeans_plus_plus

MEANS = np.array([[0.0, 0.0, 0.0], [8.0, 0.0, 1.0], [0.0, 8.0, -1.0]])


def clusters(seed, n=300, means=MEANS, spread=1.0):
    r = np.random.default_rng(seed)
    shear = np.array([[1.0, 0.4, 0.0], [0.0, 0.6, 0.2], [0.0, 0.0, 0.8]])
    x = np.concatenate([spread * r.normal(size=(n, 3)) @ shear + m for m in means])
    return x[r.permutation(len(x))]


def numpy_mixture_log_px(x, weights, means, covs):
    """log sum_k pi_k N(x; mu_k, Sigma_k) with slogdet and explicit inverses."""
    logs = []
    for w, m, c in zip(weights, means, covs):
        d = x - m
        _, log_det = np.linalg.slogdet(c)
        maha = np.einsum("ni,ij,nj->n", d, np.linalg.inv(c), d)
        logs.append(np.log(w) - 0.5 * (maha + log_det + x.shape[1] * np.log(2 * np.pi)))
    logs = np.stack(logs, 1)
    top = logs.max(1)
    return top + np.log(np.exp(logs - top[:, None]).sum(1))


def as_full(model):
    c = model.covariances
    return c if model.covariance == "full" else np.stack([np.diag(v) for v in c])


@pytest.mark.parametrize("covariance", ["full", "diag"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_em_log_likelihood_never_decreases(covariance, seed):
    # Overlapping clusters and too many components: EM takes many small steps.
    x = clusters(seed, n=150, spread=3.0)
    model = GaussianMixture(5, covariance).fit(x, tol=0.0, max_iter=60, seed=seed)
    history = np.array(model.log_likelihood_history)
    assert len(history) > 5
    assert np.all(np.diff(history) >= -1e-12 * np.abs(history[1:])), np.diff(history).min()
    # The history is the exact log-likelihood of the parameters it was computed for.
    assert history[-1] == pytest.approx(model.log_prob(x).mean(), abs=1e-9)


@pytest.mark.parametrize("covariance", ["full", "diag"])
@pytest.mark.parametrize("seed", [0, 4])
def test_recovers_separated_means(covariance, seed):
    model = GaussianMixture(3, covariance).fit(clusters(seed), seed=seed)
    assert model.converged
    order = [int(np.argmin(np.linalg.norm(model.means - m, axis=1))) for m in MEANS]
    assert sorted(order) == [0, 1, 2]
    # 300 points per cluster: the mean's standard error is ~0.06 per coordinate.
    np.testing.assert_allclose(model.means[order], MEANS, atol=0.25)
    np.testing.assert_allclose(model.weights[order], 1 / 3, atol=0.01)


@pytest.mark.parametrize("covariance", ["full", "diag"])
def test_one_component_is_the_gaussian_mle(covariance):
    x = clusters(0, n=100)
    model = GaussianMixture(1, covariance, covariance_floor=0.0).fit(x)
    cov = np.cov(x.T, bias=True)
    expected = cov if covariance == "full" else np.diag(np.diag(cov))
    np.testing.assert_allclose(model.means[0], x.mean(0), atol=1e-12)
    np.testing.assert_allclose(as_full(model)[0], expected, atol=1e-12)
    assert model.weights[0] == 1.0
    ll = numpy_mixture_log_px(x, [1.0], [x.mean(0)], [expected]).mean()
    assert model.log_prob(x).mean() == pytest.approx(ll, abs=1e-10)


@pytest.mark.parametrize("covariance", ["full", "diag"])
def test_distribution_and_log_prob_match_numpy(covariance):
    x = clusters(2)
    model = GaussianMixture(3, covariance).fit(x, seed=2)
    expected = numpy_mixture_log_px(x, model.weights, model.means, as_full(model))
    np.testing.assert_allclose(model.log_prob(x), expected, atol=1e-9)
    np.testing.assert_allclose(model.distribution().log_prob(x).numpy(), expected, atol=1e-9)
    np.testing.assert_allclose(model.responsibilities(x).sum(1), 1.0, atol=1e-12)


@pytest.mark.parametrize("covariance", ["full", "diag"])
def test_floor_bounds_every_eigenvalue(covariance):
    x = clusters(1, n=50)
    x[:, 2] = 0.5  # a constant feature: without the floor its variance is 0
    model = GaussianMixture(3, covariance, covariance_floor=1e-3).fit(x, seed=1)
    eig = np.linalg.eigvalsh(as_full(model))
    assert eig.min() >= 1e-3 * (1 - 1e-9)
    assert np.all(np.isfinite(model.log_prob(x)))


def test_online_em_approaches_batch_em():
    x = clusters(3, n=1000)
    batch = GaussianMixture(3, "full").fit(x, seed=0)
    r = np.random.default_rng(0)
    batches = [x[i] for _ in range(3) for i in np.array_split(r.permutation(len(x)), 30)]
    online = GaussianMixture(3, "full").fit_online(batches, seed=0)
    assert len(online.log_likelihood_history) == 90
    order = [int(np.argmin(np.linalg.norm(online.means - m, axis=1))) for m in batch.means]
    np.testing.assert_allclose(online.means[order], batch.means, atol=0.15)
    assert batch.log_prob(x).mean() - online.log_prob(x).mean() < 0.02


def test_kmeans_plus_plus_seeds_are_data_points_in_distinct_clusters():
    x = clusters(0)
    seeds = kmeans_plus_plus(x, 3, np.random.default_rng(0))
    assert all(np.any(np.all(x == s, 1)) for s in seeds)
    nearest = {int(np.argmin(np.linalg.norm(MEANS - s, axis=1))) for s in seeds}
    assert nearest == {0, 1, 2}


def test_save_load_round_trip(tmp_path):
    x = clusters(0, n=50).reshape(150, 3, 1)
    model = GaussianMixture(2, "diag").fit(x)
    loaded = GaussianMixture.load(model.save(tmp_path / "g.npz"))
    np.testing.assert_array_equal(loaded.log_prob(x), model.log_prob(x))
    assert loaded.sample(4).shape == (4, 3, 1) and loaded.covariance == "diag"


@pytest.mark.parametrize("make, error, match", [
    (lambda: GaussianMixture(0), ValueError, "positive int"),
    (lambda: GaussianMixture(2, "spherical"), ValueError, "full"),
    (lambda: GaussianMixture(2).fit(np.full((10, 3), np.nan)), ValueError, "NaN"),
    (lambda: GaussianMixture(1).fit(np.ones((1, 3))), ValueError, "at least 2 examples"),
    (lambda: GaussianMixture(5).fit(np.eye(3)), ValueError, "at least as many"),
    (lambda: GaussianMixture(2, covariance_floor=-1.0), ValueError, ">= 0"),
    (lambda: GaussianMixture(2).fit_online([]), ValueError, "no batch"),
    (lambda: GaussianMixture(2).fit_online([np.eye(3)], step_exponent=0.3), ValueError,
     r"\(0.5, 1\]"),
    (lambda: GaussianMixture(2).sample(3), ValueError, "not fitted"),
])
def test_bad_inputs_raise_one_line_errors(make, error, match):
    with pytest.raises(error, match=match) as info:
        make()
    assert "\n" not in str(info.value)

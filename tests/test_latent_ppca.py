"""PPCA: three fits agree with each other, with NumPy and with the generating parameters."""

import numpy as np
import pytest

from tfvae.latent import PPCA

D, K, S2 = 6, 2, 0.3


def generate(seed, n):
    """x ~ N(mu, W W^T + S2 I) drawn through z; returns x and the true covariance."""
    r = np.random.default_rng(seed)
    w = r.normal(size=(D, K))
    mu = r.normal(size=D)
    x = r.normal(size=(n, K)) @ w.T + mu + np.sqrt(S2) * r.normal(size=(n, D))
    return x, w @ w.T + S2 * np.eye(D)


def numpy_log_px(x, cov):
    """Mean log N(x; mean(x), cov), from slogdet and an explicit inverse."""
    d = x - x.mean(0)
    _, log_det = np.linalg.slogdet(cov)
    maha = np.einsum("ni,ij,nj->n", d, np.linalg.inv(cov), d)
    return float(np.mean(-0.5 * (maha + log_det + x.shape[1] * np.log(2 * np.pi))))


@pytest.mark.parametrize("seed", [0, 1, pytest.param(2, marks=pytest.mark.slow)])
def test_closed_form_em_and_gradient_agree(seed):
    x, _ = generate(seed, 2000)
    closed = PPCA(K).fit(x)
    em = PPCA(K).fit(x, method="em", tol=0.0, max_iter=3000, seed=seed)
    grad = PPCA(K).fit(x, method="gradient", steps=600, learning_rate=0.05, seed=seed)
    # EM converges linearly along the slowest direction: it stops ~1e-6 short in C entries
    # of size ~1; Adam with a decaying rate on the exact likelihood lands to ~1e-13.
    np.testing.assert_allclose(em.covariance(), closed.covariance(), atol=1e-5)
    np.testing.assert_allclose(grad.covariance(), closed.covariance(), atol=1e-8)
    np.testing.assert_allclose(em.noise_variance, closed.noise_variance, rtol=1e-6)
    np.testing.assert_allclose(grad.noise_variance, closed.noise_variance, rtol=1e-8)
    ll = closed.log_prob(x).mean()
    assert abs(em.log_prob(x).mean() - ll) < 1e-8
    assert abs(grad.log_prob(x).mean() - ll) < 1e-10
    # A random pPCA of the right shape is far worse: the agreement is not vacuous.
    assert ll - PPCA(K).fit(x, method="em", max_iter=1, seed=seed).log_prob(x).mean() > 0.05


@pytest.mark.parametrize("seed", [0, 3])
def test_closed_form_matches_numpy_eigendecomposition(seed):
    x, _ = generate(seed, 500)
    model = PPCA(K).fit(x)
    eigvals, eigvecs = np.linalg.eigh(np.cov(x.T, bias=True))
    eigvals, eigvecs = eigvals[::-1], eigvecs[:, ::-1]
    s2 = eigvals[K:].mean()
    ww = eigvecs[:, :K] @ np.diag(eigvals[:K] - s2) @ eigvecs[:, :K].T
    assert model.noise_variance == pytest.approx(s2, rel=1e-12)
    np.testing.assert_allclose(model.weights @ model.weights.T, ww, atol=1e-12)
    np.testing.assert_allclose(model.mean, x.mean(0), atol=1e-12)
    expected = numpy_log_px(x, ww + s2 * np.eye(D))
    assert model.log_prob(x).mean() == pytest.approx(expected, abs=1e-10)
    assert model.log_likelihood_history[-1] == pytest.approx(expected, abs=1e-10)
    directions, variances = model.components()
    np.testing.assert_allclose(variances, eigvals[:K], rtol=1e-10)
    np.testing.assert_allclose(np.abs(directions @ eigvecs[:, :K]), np.eye(K), atol=1e-10)


def test_recovers_generating_parameters_as_n_grows():
    errors = []
    for n in (300, 3000, 30000):
        x, true_cov = generate(5, n)
        model = PPCA(K).fit(x)
        errors.append(np.linalg.norm(model.covariance() - true_cov) / np.linalg.norm(true_cov))
    # The error of a covariance estimate shrinks like 1/sqrt(N): ~3.2x per 10x of data.
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.02 and errors[0] / errors[2] > 4


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_em_log_likelihood_never_decreases(seed):
    x, _ = generate(seed, 400)
    history = np.array(PPCA(K).fit(x, method="em", tol=0.0, max_iter=300,
                                   seed=seed).log_likelihood_history)
    assert len(history) > 10
    assert np.all(np.diff(history) >= -1e-12 * np.abs(history[1:])), np.diff(history).min()
    assert history[-1] - history[0] > 0.1


def test_posterior_is_the_gaussian_conditional():
    x, _ = generate(0, 300)
    model = PPCA(K).fit(x)
    w, c = model.weights, model.covariance()
    # Conditioning the joint N([0, mu], [[I, W^T], [W, C]]) on x, written with C^-1 (D x D)
    # rather than the model's M^-1 (K x K).
    gain = w.T @ np.linalg.inv(c)
    post = model.posterior(x[:5])
    np.testing.assert_allclose(post.mean().numpy(), (x[:5] - model.mean) @ gain.T, atol=1e-10)
    np.testing.assert_allclose(post.covariance().numpy()[0], np.eye(K) - gain @ w, atol=1e-10)


def test_sample_marginal_and_save_load(tmp_path):
    x, _ = generate(1, 1000)
    model = PPCA(K).fit(x.reshape(1000, 3, 2, 1))
    assert model.marginal().event_shape == [D]
    draws = model.sample(40000, seed=3)
    assert draws.shape == (40000, 3, 2, 1)
    flat = draws.reshape(40000, D)
    # Sample covariance of 40k draws: entries within ~4 standard errors (~0.03 here).
    np.testing.assert_allclose(np.cov(flat.T), model.covariance(), atol=0.06)
    path = model.save(tmp_path / "ppca.npz")
    loaded = PPCA.load(path)
    np.testing.assert_array_equal(loaded.log_prob(x), model.log_prob(x))
    assert loaded.data_shape == (3, 2, 1) and loaded.method == "closed_form"


@pytest.mark.parametrize("make, error, match", [
    (lambda: PPCA(D).fit(generate(0, 50)[0]), ValueError, "smaller than the data dimension"),
    (lambda: PPCA(K).fit(np.where(np.eye(50, D) > 0, np.nan, 1.0)), ValueError, "NaN"),
    (lambda: PPCA(K).fit(np.ones((1, D))), ValueError, "at least 2 examples"),
    (lambda: PPCA(0), ValueError, "positive int"),
    (lambda: PPCA(K).fit(generate(0, 50)[0], method="svd"), ValueError, "closed_form"),
    (lambda: PPCA(K).fit(np.array([["a"] * D] * 5)), TypeError, "numeric"),
    (lambda: PPCA(K).fit(np.tile(np.arange(D, dtype=float), (20, 1))), ValueError, "no variance"),
    (lambda: PPCA(K).log_prob(np.ones((3, D))), ValueError, "not fitted"),
    (lambda: PPCA(K).fit(generate(0, 50)[0]).log_prob(np.ones((3, D + 1))), ValueError,
     "fitted on 6"),
])
def test_bad_inputs_raise_one_line_errors(make, error, match):
    with pytest.raises(error, match=match) as info:
        make()
    assert "\n" not in str(info.value)

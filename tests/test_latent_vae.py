"""The linear VAE against the pPCA MLE, the three gradient estimators against the exact
gradient, and per-example refinement against the exact log p(x) of a linear-Gaussian model."""

import math

import numpy as np
import pytest

import linear_gaussian as lg
from tfvae._tf import tf
from tfvae.latent import (PPCA, analytic_elbo, build_linear_vae, compare_with_ppca,
                          gradient_variance, posterior_collapse, refine_posterior,
                          train_linear_vae)
from tfvae.latent import linear_vae as linear_vae_lib
from tfvae.latent.gradients import encoder_variables
from tfvae.registry import LIKELIHOODS

D, K = 5, 2


def ppca_data(seed, n=1000, s2=0.3):
    r = np.random.default_rng(seed)
    w, mu = r.normal(size=(D, K)), r.normal(size=D)
    x = r.normal(size=(n, K)) @ w.T + mu + math.sqrt(s2) * r.normal(size=(n, D))
    return x.astype(np.float32).reshape(n, D, 1, 1)


# ---------------------------------------------------------------------- linear VAE

def test_analytic_elbo_matches_monte_carlo_and_bounds_log_px():
    x = ppca_data(0, n=64)
    model = build_linear_vae((D, 1, 1), K, variance=0.7, seed=1)
    exact = analytic_elbo(model, x)
    mc = model.elbo(x, num_samples=4000, seed=0).numpy()
    # One example's MC error is ~0.1-0.3 nats here (log p(x|z) spreads over tens of nats);
    # the mean over 64 examples is within ~0.03. A missing tr(W S W^T) / 2 s2 costs ~1 nat.
    assert abs(np.mean(mc - exact)) < 0.06
    np.testing.assert_allclose(mc, exact, atol=1.0)
    report = compare_with_ppca(model, x)
    assert report["elbo_gap"] > 0.1  # an untrained encoder is far from the true posterior


@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=pytest.mark.slow)])
def test_linear_vae_recovers_the_ppca_mle(seed):
    x = ppca_data(seed)
    model = train_linear_vae(build_linear_vae((D, 1, 1), K, seed=seed), x, steps=1500)
    report = compare_with_ppca(model, x, PPCA(K).fit(x))
    assert report["subspace_distance"] <= 1e-2
    assert report["noise_variance_relative_error"] <= 0.01
    assert abs(report["elbo"] - report["log_px_mle"]) <= 0.01
    assert 0 <= report["elbo_gap"] <= 0.01


def test_scalar_likelihood_is_one_shared_normal():
    model = build_linear_vae((D, 1, 1), K, variance=0.49, learn_variance=False)
    assert [v.name for v in model.likelihood.trainable_variables] == []
    loc = tf.constant(np.random.default_rng(0).normal(size=(3, D, 1, 1)), tf.float32)
    x = np.zeros((3, D, 1, 1), np.float32)
    expected = -0.5 * np.sum(loc.numpy().reshape(3, -1) ** 2, 1) / 0.49 \
        - D * 0.5 * math.log(2 * math.pi * 0.49)
    np.testing.assert_allclose(model.likelihood(loc).log_prob(x).numpy(), expected, rtol=1e-5)
    # Registered, and its config rebuilds it through the registry.
    config = model.likelihood.get_config()
    rebuilt = LIKELIHOODS.build({**config, "name": "normal_scalar"})
    assert (rebuilt.initial_variance, rebuilt.learn_variance) == (0.49, False)


def test_posterior_collapse_when_variance_is_held_above_an_eigenvalue():
    r = np.random.default_rng(0)
    x = r.normal(size=(1000, D)) * np.sqrt([4.0, 1.0, 0.2, 0.2, 0.2])
    out = posterior_collapse(x, K, variance=2.0, steps=1000)
    assert out["eigenvalues"][0] > 2.0 > out["eigenvalues"][1]
    assert out["collapsed"] == 1 and out["kl_per_dim"][1] < 0.01 < out["kl_per_dim"][0]
    np.testing.assert_allclose(out["singular_values"], out["expected_singular_values"],
                               atol=0.02)


# ---------------------------------------------------------------------- gradient estimators

def exact_encoder_gradient(model, x, s2):
    """grad_phi of the batch-mean ELBO written in closed form (no sampling)."""
    with tf.GradientTape() as tape:
        q = model.encode(x)
        m, cov = q.mean(), q.covariance()[0]
        dense = model.decoder.get_layer("linear_decoder")
        w = tf.transpose(dense.kernel)
        resid = tf.reshape(x, [len(x), -1]) - tf.matmul(m, dense.kernel) - dense.bias
        ell = -0.5 * D * math.log(2 * math.pi * s2) - (
            tf.reduce_sum(resid**2, 1) + tf.linalg.trace(w @ cov @ tf.transpose(w))) / (2 * s2)
        kl = 0.5 * (tf.linalg.trace(cov) + tf.reduce_sum(m**2, 1) - K - tf.linalg.logdet(cov))
        elbo = tf.reduce_mean(ell - kl)
    return np.concatenate([g.numpy().ravel() for g in tape.gradient(
        elbo, encoder_variables(model))])


def test_gradient_estimators_are_unbiased_and_reparameterization_has_least_variance():
    x = np.random.default_rng(0).normal(size=(32, D, 1, 1)).astype(np.float32)
    model = build_linear_vae((D, 1, 1), K, variance=0.5, learn_variance=False, seed=0)
    exact = exact_encoder_gradient(model, x, 0.5)
    stats = {e: gradient_variance(model, x, e, num_draws=2000, seed=1) for e in
             ("reparameterization", "score_function", "score_function_baseline")}
    for name, s in stats.items():
        stderr = np.sqrt(s.flat_variance() / s.num_draws)
        # 16 parameters x 3 estimators: |z| > 4.5 anywhere has probability ~3e-4.
        assert np.all(np.abs(s.flat_mean() - exact) <= 4.5 * stderr), name
        assert np.all(stderr > 0), name
    # Measured here: score function ~40x, with the baseline ~11x the reparameterized variance.
    reparam = stats["reparameterization"].total_variance
    assert stats["score_function"].total_variance > 10 * reparam
    assert stats["score_function_baseline"].total_variance > 4 * reparam
    assert stats["score_function"].total_variance > 2 * stats[
        "score_function_baseline"].total_variance


# ---------------------------------------------------------------------- refinement

def closed_form_elbo(w, b, x, loc, cov):
    """log p(x) - KL(q || p(z|x)) for q = N(loc, cov) in the linear-Gaussian model."""
    sigma2 = lg.SIGMA**2
    post_cov = np.linalg.inv(np.eye(lg.LATENT) + w.T.astype(np.float64) @ w / sigma2)
    flat = x.reshape(len(x), -1).astype(np.float64)
    post_mean = (flat - b) @ w @ post_cov / sigma2
    inv = np.linalg.inv(post_cov)
    kl = 0.5 * (np.trace(inv @ cov, axis1=-2, axis2=-1)
                + np.einsum("bi,ij,bj->b", post_mean - loc, inv, post_mean - loc) - lg.LATENT
                + np.linalg.slogdet(post_cov)[1] - np.linalg.slogdet(cov)[1])
    return lg.exact_log_px(w, b, x) - kl


@pytest.mark.parametrize("seed", [0, 1])
def test_refined_elbo_reaches_exact_log_px_from_a_mean_field_start(seed):
    w, b = lg.make_params(seed)
    x = lg.sample_x(w, b, 16, seed=seed + 10)
    model = lg.make_model(w, b, posterior="mean_field")
    q = model.encode(x)
    amortized_exact = closed_form_elbo(w, b, x, q.mean().numpy(), q.covariance().numpy())
    gaps = refine_posterior(model, x, steps=200, seed=seed)
    exact = lg.exact_log_px(w, b, x)
    # The amortized estimate averages 1000 draws of log w, whose spread under this q is a few
    # nats: ~0.1 nats of noise per example, ~0.03 on the mean of 16.
    assert abs(np.mean(gaps.amortized_elbo - amortized_exact)) < 0.08
    np.testing.assert_allclose(gaps.amortized_elbo, amortized_exact, atol=0.5)
    assert np.all(exact - amortized_exact > 0.2)  # there is a gap to close
    # q* reaches the true posterior: the spread of log w, hence the noise, vanishes there.
    np.testing.assert_allclose(gaps.refined_elbo, exact, atol=1e-3)
    np.testing.assert_allclose(gaps.log_px, exact, atol=1e-3)
    assert np.all(gaps.refined_elbo >= gaps.amortized_elbo) and gaps.kept_initial == 0
    np.testing.assert_allclose(gaps.amortization_gap, gaps.refined_elbo - gaps.amortized_elbo)
    assert np.all(np.abs(gaps.approximation_gap) < 1e-3)


def test_refinement_never_goes_below_an_exact_start():
    w, b = lg.make_params(2)
    x = lg.sample_x(w, b, 8, seed=3)
    gaps = refine_posterior(lg.make_model(w, b, posterior="exact"), x, steps=20)
    assert np.all(gaps.refined_elbo >= gaps.amortized_elbo)
    np.testing.assert_allclose(gaps.amortized_elbo, lg.exact_log_px(w, b, x), atol=1e-3)
    assert set(gaps.summary()) == {"amortized_elbo", "refined_elbo", "log_px",
                                   "amortization_gap", "approximation_gap"}


@pytest.mark.parametrize("call, match", [
    (lambda m, x: refine_posterior(m, x, steps=0), "positive int"),
    (lambda m, x: refine_posterior(m, x[..., :0]), "shape"),
    (lambda m, x: gradient_variance(m, x, "reinforce"), "reparameterization"),
    (lambda m, x: gradient_variance(m, x, num_draws=1), ">= 2"),
    (lambda m, x: gradient_variance(m, np.full_like(x, np.nan)), "NaN"),
])
def test_bad_inputs_raise_one_line_errors(call, match):
    model = build_linear_vae((D, 1, 1), K)
    with pytest.raises(ValueError, match=match) as info:
        call(model, np.zeros((4, D, 1, 1), np.float32))
    assert "\n" not in str(info.value)


def test_refinement_is_scale_free_for_a_narrow_posterior():
    # s2 = 1e-4: the true posterior is ~1e-2 wide. The encoder's q starts 2 true widths off
    # and 10x too narrow. Steps are relative to q's width, so the default rate that suits
    # the unit-scale model above neither diverges nor crawls here.
    model = build_linear_vae((D, 1, 1), K, variance=1e-4, learn_variance=False, seed=0)
    w, b, s2 = linear_vae_lib.decoder_parameters(model)
    m = w.T @ w + s2 * np.eye(K)
    gain = np.linalg.solve(m, w.T)                                   # [K, D]
    width = np.sqrt(np.diag(s2 * np.linalg.inv(m)))
    model.posterior.loc_layer.set_weights([gain.T.astype(np.float32),
                                           (2 * width - gain @ b).astype(np.float32)])
    model.posterior.log_scale.assign(np.log(width / 10).astype(np.float32))
    r = np.random.default_rng(0)
    x = (r.normal(size=(8, K)) @ w.T + b + math.sqrt(s2) * r.normal(size=(8, D)))
    x = x.astype(np.float32).reshape(8, D, 1, 1)
    cov = w @ w.T + s2 * np.eye(D)
    d = x.reshape(8, -1) - b
    exact = -0.5 * (np.einsum("ni,ij,nj->n", d, np.linalg.inv(cov), d)
                    + np.linalg.slogdet(cov)[1] + D * math.log(2 * math.pi))
    gaps = refine_posterior(model, x, steps=300, seed=0)
    assert np.all(gaps.amortization_gap > 1.0) and gaps.kept_initial == 0
    np.testing.assert_allclose(gaps.refined_elbo, exact, atol=0.01)
    np.testing.assert_allclose(gaps.log_px, exact, atol=0.01)

"""Posterior heads: closed-form KL, the full-covariance log-density, initialization, contract."""

import numpy as np
import pytest

import tfvae
from tfvae._tf import tf, tfd, tfk, tfpl
from tfvae.registry import POSTERIORS

D = 6


def _features(batch=5, width=16, seed=0):
    return tf.constant(np.random.default_rng(seed).normal(size=(batch, width)), tf.float32)


def _random_full_cov_head(seed=0):
    """A head whose off-diagonals are far from zero, so the tests exercise them."""
    head = POSTERIORS.get("full_covariance")(D, offdiag_scale=1.0, validate_args=True)
    head(_features())
    r = np.random.default_rng(seed)
    for v in head.trainable_variables:
        v.assign(r.normal(scale=0.3, size=v.shape))
    return head


def test_analytic_kl_matches_closed_form_and_monte_carlo():
    q = _random_full_cov_head()(_features())
    p = tfvae.priors.standard_normal(D, validate_args=True)
    mu = q.loc.numpy().astype(np.float64)
    scale_tril = q.scale.to_dense().numpy().astype(np.float64)
    assert np.abs(np.tril(scale_tril, -1)).max() > 0.1  # really full covariance
    sigma = scale_tril @ np.swapaxes(scale_tril, -1, -2)
    closed = 0.5 * (np.trace(sigma, axis1=-2, axis2=-1) + np.sum(mu**2, -1) - D
                    - np.linalg.slogdet(sigma)[1])
    analytic = tfd.kl_divergence(q, p).numpy()
    np.testing.assert_allclose(analytic, closed, rtol=1e-4)  # float32 vs float64
    # Monte Carlo with n = 200k: the std error of the mean of log q - log p is ~ sd / sqrt(n),
    # below 1% of these KLs (1-10 nats); a wrong closed form is off by far more.
    z = q.sample(200_000, seed=(1, 2))
    mc = tf.reduce_mean(q.log_prob(z) - p.log_prob(z), 0).numpy()
    np.testing.assert_allclose(mc, closed, rtol=2e-2)
    assert closed.min() > 0.5


def test_full_covariance_log_prob_is_kingma_welling_formula():
    head = _random_full_cov_head(seed=3)
    q = head(_features(seed=1))
    eps = np.random.default_rng(4).normal(size=(7, 5, D)).astype(np.float32)
    scale_tril = q.scale.to_dense().numpy()
    z = q.loc.numpy() + np.einsum("bij,sbj->sbi", scale_tril, eps)
    expected = (-0.5 * np.sum(eps**2 + np.log(2 * np.pi), -1)
                - np.sum(np.log(np.diagonal(scale_tril, axis1=-2, axis2=-1)), -1))
    np.testing.assert_allclose(q.log_prob(z).numpy(), expected, rtol=1e-4, atol=1e-4)


def test_full_covariance_head_starts_as_the_diagonal_head():
    """Regression test for the parameterization fix: at step 0 the off-diagonals are zero
    and the diagonal starts at init_scale, so the initial KL is as small as a diagonal
    head's. The straightforward tfpl head starts with KL ~ 20+ nats for D = 32."""
    d, h = 32, tf.nn.relu(_features(batch=64, width=256, seed=5))
    full = POSTERIORS.get("full_covariance")(d)(h)
    diag = POSTERIORS.get("diagonal")(d)(h)
    scale = full.scale.to_dense().numpy()
    assert np.all(np.tril(scale, -1) == 0.0)
    # Same parameterization, independently drawn kernels: equal in distribution.
    full_sd = np.diagonal(scale, axis1=-2, axis2=-1)
    assert abs(np.mean(np.log(full_sd)) - np.mean(np.log(diag.stddev().numpy()))) < 0.15
    prior = tfvae.priors.standard_normal(d)
    naive_params = tfk.layers.Dense(tfpl.MultivariateNormalTriL.params_size(d))(h)
    naive = tfpl.MultivariateNormalTriL.new(naive_params, d)

    def covariance_kl(q):
        """The KL minus its mean part |mu|^2 / 2: what the scale parameterization costs."""
        kl = tfd.kl_divergence(q, prior) - 0.5 * tf.reduce_sum(q.loc**2, -1)
        return tf.reduce_mean(kl).numpy()

    kl_full, kl_diag, kl_naive = covariance_kl(full), covariance_kl(diag), covariance_kl(naive)
    assert abs(kl_full - kl_diag) < 3.0, (kl_full, kl_diag)
    assert kl_naive > kl_full + 8.0, (kl_naive, kl_full)


@pytest.mark.parametrize("name", POSTERIORS.names())
def test_posterior_contract(name):
    """Every registered head: shapes, reparameterized gradients, eager == tf.function."""
    head = POSTERIORS.get(name)(D, validate_args=True)
    h = _features(batch=4)
    q = head(h)
    assert q.event_shape == [D] and q.batch_shape == [4]
    with tf.GradientTape() as tape:
        q = head(h)
        z = q.sample(3, seed=(0, 1))
        loss = tf.reduce_sum(z**2)
        if head.has_density:
            loss -= tf.reduce_sum(q.log_prob(z))
    assert z.shape == (3, 4, D)
    grads = tape.gradient(loss, head.trainable_variables)
    assert any(g is not None for g in grads)
    assert all(g is None or np.all(np.isfinite(g.numpy())) for g in grads)
    assert any(g is not None and np.abs(g.numpy()).max() > 0 for g in grads)
    if head.has_density:
        compiled = tf.function(lambda h: head(h).log_prob(tf.zeros([4, D])))
        np.testing.assert_allclose(compiled(h).numpy(),
                                   head(h).log_prob(tf.zeros([4, D])).numpy(), rtol=1e-5)


def test_posterior_bad_arguments():
    for bad in (0, -3):
        with pytest.raises(ValueError, match=f"`latent_dim` must be a positive int; got {bad}"):
            POSTERIORS.get("diagonal")(bad)
    for bad in (2.5, True):  # not ints at all: a TypeError
        with pytest.raises(TypeError, match=f"`latent_dim` must be an int; got {bad}"):
            POSTERIORS.get("diagonal")(bad)
    # sigma = softplus(.) + 1e-5 can never reach the shift, so that is the bound.
    for bad in (0.0, 1e-5):
        with pytest.raises(ValueError, match=r"`init_scale` must be > 1e-05; got "):
            POSTERIORS.get("full_covariance")(4, init_scale=bad)
    with pytest.raises(ValueError, match="`offdiag_scale` must be positive; got 0.0"):
        POSTERIORS.get("full_covariance")(4, offdiag_scale=0.0)
    with pytest.raises(ValueError, match=r"Unknown posterior 'ful_covariance'.*did you mean "
                                         r"'full_covariance'"):
        POSTERIORS.get("ful_covariance")

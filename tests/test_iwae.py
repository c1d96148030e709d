"""Importance-weighted log-likelihood against the exact log p(x) of a linear-Gaussian VAE."""

import numpy as np
import pytest

import tfvae
from tfvae._tf import tf
from tfvae.seeds import stateless_seed

import linear_gaussian as lg

log_likelihood = tfvae.evaluation.log_likelihood


@pytest.fixture(scope="module")
def linear():
    w, b = lg.make_params()
    x = lg.sample_x(w, b, 16)
    return w, b, x, lg.exact_log_px(w, b, x)


@pytest.mark.parametrize("k", [1, 7, 100])
def test_exact_posterior_gives_exact_log_px_for_every_k(linear, k):
    w, b, x, log_px = linear
    model = lg.make_model(w, b)
    r = model.encode(x)
    z = r.sample(50, seed=(1, 2))
    log_w = (model.decode(z).log_prob(x) + model.prior.log_prob(z) - r.log_prob(z)).numpy()
    # The weights are constant in z: their spread is float32 round-off only.
    assert np.abs(log_w - log_w.mean(0)).max() < 2e-3
    np.testing.assert_allclose(log_likelihood(model, x, num_samples=k, seed=0).numpy(), log_px,
                               atol=2e-3)


# A clearly imperfect proposal (mean 1 sd off, 1.6x too wide): an ELBO gap of ~3 nats.
POOR = {"shift": 1.0, "widen": 1.6}


def closed_form_elbo(w, b, x, shift, widen, sigma=lg.SIGMA):
    """E_q[log p(x|z) + log p(z) - log q(z|x)] for the mean-field proposal, NumPy float64.

    q = N(m, diag(v)) with m = S W^T (x - b) / s^2 + shift * sd, v = (widen * sd)^2,
    sd = sqrt(diag S) (tests/linear_gaussian.py); every expectation is a Gaussian moment.
    """
    w = w.astype(np.float64)
    pixels, d = w.shape
    cov = np.linalg.inv(np.eye(d) + w.T @ w / sigma**2)
    sd = np.sqrt(np.diag(cov))
    centred = x.reshape(len(x), -1).astype(np.float64) - b
    m = centred @ (cov @ w.T / sigma**2).T + shift * sd                    # [B, d]
    v = (widen * sd) ** 2                                                   # [d]
    # E ||x - b - W z||^2 = ||x - b - W m||^2 + tr(W diag(v) W^T)
    sq_error = np.sum((centred - m @ w.T) ** 2, 1) + np.sum(w**2 * v)
    log_lik = -0.5 * pixels * np.log(2 * np.pi * sigma**2) - sq_error / (2 * sigma**2)
    log_prior = -0.5 * d * np.log(2 * np.pi) - 0.5 * (np.sum(m**2, 1) + np.sum(v))
    entropy = 0.5 * d * np.log(2 * np.pi * np.e) + 0.5 * np.sum(np.log(v))
    return log_lik + log_prior + entropy


def _copies(model, x, k, seed, reps=200):
    """Estimates for `reps` copies of each example (independent noise per copy), [reps, B]."""
    tiled = np.tile(x, (reps, 1, 1, 1))
    out = log_likelihood(model, tiled, num_samples=k, seed=seed, batch_size=800)
    return out.numpy().reshape(reps, len(x))


def test_one_sample_estimate_is_unbiased_for_the_closed_form_elbo(linear):
    w, b, x, log_px = linear
    model = lg.make_model(w, b, posterior="mean_field", posterior_kwargs=POOR)
    elbo = closed_form_elbo(w, b, x, **POOR)
    assert np.all(elbo < log_px) and np.mean(log_px - elbo) > 2.0    # a gap worth detecting
    single = _copies(model, x, k=1, seed=1)
    # The mean of 200 one-sample estimates has a standard error of ~0.1 nats per example;
    # dropping log q(z|x) (the entropy, ~-3 nats) or log p(z) moves it by tens of those.
    stderr = single.std(0, ddof=1) / np.sqrt(len(single))
    assert np.all(np.abs(single.mean(0) - elbo) < 5 * stderr), (single.mean(0), elbo, stderr)
    pooled = np.sqrt(np.sum(stderr**2)) / len(elbo)                        # ~0.03 nats
    assert abs(np.mean(single.mean(0) - elbo)) < 4 * pooled


def test_bound_rises_with_k(linear):
    w, b, x, log_px = linear
    model = lg.make_model(w, b, posterior="mean_field", posterior_kwargs=POOR)
    means = [_copies(model, x, k, seed=k, reps=100).mean() for k in (1, 10, 100, 1000)]
    assert means == sorted(means), means
    assert means[-1] - means[0] > 0.5 * np.mean(log_px - closed_form_elbo(w, b, x, **POOR))


def test_large_k_estimate_matches_the_exact_log_px(linear):
    """k = 1000 closes a ~3-nat ELBO gap to within its Monte-Carlo error.

    The remaining bias is Var(w / p(x)) / (2k) to first order (the delta method), with the
    relative variance of the weights measured from one-sample estimates; the tolerance is
    that bias plus 4.5 standard errors of the mean over 200 copies per example.
    """
    w, b, x, log_px = linear
    model = lg.make_model(w, b, posterior="mean_field", posterior_kwargs=POOR)
    k = 1000
    relative_variance = np.mean(np.expm1(2 * (_copies(model, x, k=1, seed=2) - log_px)), 0)
    bias = relative_variance / (2 * k)                                     # ~0.002 nats
    big = _copies(model, x, k=k, seed=7)
    stderr = big.std(0, ddof=1) / np.sqrt(len(big))                       # ~0.004 nats
    gap = log_px - big.mean(0)
    assert np.all(np.abs(gap - bias) < 4.5 * stderr + 1e-3), (gap, bias, stderr)
    pooled = np.sqrt(np.sum(stderr**2)) / len(gap)                         # ~0.001 nats
    assert abs(np.mean(gap - bias)) < 4 * pooled + 1e-3, (np.mean(gap), np.mean(bias), pooled)


def test_naive_estimator_is_consistent_but_noisier(linear):
    w, b, x, log_px = linear
    model = lg.make_model(w, b, posterior="mean_field")
    x8 = x[:8]
    naive = np.stack([tfvae.evaluation.naive_log_likelihood(model, x8, num_samples=100,
                                                            seed=s).numpy() for s in range(12)])
    iwae = np.stack([log_likelihood(model, x8, num_samples=100, seed=s).numpy()
                     for s in range(12)])
    # At equal sample count the prior-sampling estimate spreads much more across seeds.
    assert np.median(naive.std(0)) > 5 * np.median(iwae.std(0)), (naive.std(0), iwae.std(0))
    # Consistent: with many prior samples it approaches log p(x) (16 pixels, 3 latents).
    big = tfvae.evaluation.naive_log_likelihood(model, x8, num_samples=200_000, seed=5,
                                                chunk_size=5000).numpy()
    np.testing.assert_allclose(big, log_px[:8], atol=0.5)
    assert np.mean(np.abs(big - log_px[:8])) < np.mean(np.abs(naive.mean(0) - log_px[:8]))


def test_chunking_and_xla_do_not_change_the_result(synthetic_batch):
    model = tfvae.VAE(latent_dim=4, hidden_units=(32,), seed=0)
    x = synthetic_batch[:24]
    whole = log_likelihood(model, x, num_samples=60, batch_size=24, chunk_size=60, seed=9)
    split = log_likelihood(model, x, num_samples=60, batch_size=5, chunk_size=7, seed=9)
    xla = log_likelihood(model, x, num_samples=60, batch_size=10, chunk_size=20, seed=9,
                         jit_compile=True)
    assert whole.shape == (24,)
    np.testing.assert_allclose(split.numpy(), whole.numpy(), atol=1e-3)
    np.testing.assert_allclose(xla.numpy(), whole.numpy(), atol=1e-3)
    other = log_likelihood(model, x, num_samples=60, seed=10)
    assert np.abs(other.numpy() - whole.numpy()).max() > 1e-3  # the seed matters


def test_one_batch_reproduces_the_evaluation_inside_a_tf_function(synthetic_batch):
    model = tfvae.VAE(latent_dim=4, hidden_units=(32,), seed=0)
    x = synthetic_batch[:12]
    full = log_likelihood(model, x, num_samples=30, batch_size=5, chunk_size=7, seed=4)

    @tf.function(input_signature=[tf.TensorSpec([None, 28, 28, 1], tf.float32),
                                  tf.TensorSpec([2], tf.int32)])
    def batch(xb, seed):
        return tfvae.evaluation.log_likelihood_batch(model, xb, num_samples=30, chunk_size=10,
                                                     seed=seed)

    # Examples 0..B-1 get the same draws as in the batched evaluation, whatever the chunks.
    np.testing.assert_allclose(batch(x, stateless_seed(4)).numpy(), full.numpy(), atol=1e-4)
    later = tfvae.evaluation.log_likelihood_batch(model, x[5:], num_samples=30, chunk_size=30,
                                                  seed=4, first_index=5)
    np.testing.assert_allclose(later.numpy(), full.numpy()[5:], atol=1e-4)
    assert tfvae.evaluation.proposal(model, x).batch_shape == (12,)


def test_large_k_stays_in_bounded_memory(synthetic_batch):
    model = tfvae.VAE(latent_dim=4, hidden_units=(32,), seed=0)
    # 5000 x 32 x 784 decoder outputs would be 500 MB at once; chunks keep it at 50 x 32.
    out = log_likelihood(model, synthetic_batch[:32], num_samples=5000, chunk_size=50, seed=1)
    assert out.shape == (32,) and np.all(np.isfinite(out.numpy()))


@pytest.mark.parametrize("kwargs,match", [({"num_samples": 0}, "`num_samples` must be"),
                                          ({"batch_size": -1}, "`batch_size` must be"),
                                          ({"chunk_size": 0}, "`chunk_size` must be")])
def test_bad_arguments(synthetic_batch, kwargs, match):
    model = tfvae.VAE(latent_dim=2, hidden_units=(8,), seed=0)
    with pytest.raises(ValueError, match=match):
        log_likelihood(model, synthetic_batch[:2], **kwargs)


# ---------------------------------------------------------------------- IWAE objective

def test_iwae_objective_is_exact_for_the_true_posterior(linear):
    w, b, x, log_px = linear
    model = lg.make_model(w, b, objective="iwae", num_samples=5)
    losses = model.compute_losses(x)
    np.testing.assert_allclose(losses["iwae"].numpy(), -log_px.mean(), rtol=1e-4)
    np.testing.assert_allclose(losses["loss"].numpy(), -log_px.mean(), rtol=1e-4)


def test_iwae_objective_with_one_sample_is_the_closed_form_elbo_and_tightens_with_k(linear):
    w, b, x, log_px = linear
    kwargs = {"posterior": "mean_field", "posterior_kwargs": POOR}
    tiled = np.tile(x, (50, 1, 1, 1))
    bounds = []
    for k in (1, 8, 64):
        model = lg.make_model(w, b, objective="iwae", num_samples=k, **kwargs)
        # Each call draws fresh noise: 8 independent means over 800 examples.
        bounds.append([-float(model.compute_losses(tiled)["iwae"]) for _ in range(8)])
    bounds = np.array(bounds)
    elbo = closed_form_elbo(w, b, x, **POOR).mean()
    stderr = bounds[0].std(ddof=1) / np.sqrt(len(bounds[0]))              # ~0.02 nats
    assert abs(bounds[0].mean() - elbo) < 5 * stderr + 1e-3, (bounds[0].mean(), elbo, stderr)
    means = list(bounds.mean(1))
    assert means == sorted(means) and means[-1] < log_px.mean() + 0.05, means


def test_iwae_objective_trains_on_synthetic():
    train = tfvae.data.load("synthetic", "train", 64, binarize="static", limit=512)
    model = tfvae.VAE(latent_dim=4, hidden_units=(32,), objective="iwae", num_samples=4, seed=0)
    model.compile(optimizer=tfvae._tf.tfk.optimizers.Adam(2e-3))
    history = model.fit(train, epochs=3, verbose=0).history
    assert {"iwae", "elbo", "loss"} <= set(history)
    assert np.all(np.isfinite(history["loss"])) and history["loss"][-1] < history["loss"][0] - 20
    # L_4 >= ELBO on average over the epoch.
    assert all(-l >= e for l, e in zip(history["loss"], history["elbo"]))
    with pytest.raises(ValueError, match="`objective` must be one of"):
        tfvae.VAE(latent_dim=2, objective="vimco")


def test_train_app_selects_the_iwae_objective(tmp_path, capsys):
    import json
    from tfvae.apps import train as train_app
    code = train_app.main(["--dataset", "synthetic", "--limit", "128", "--test-limit", "64",
                           "--epochs", "1", "--latent-dim", "2", "--hidden-units", "16",
                           "--objective", "iwae", "--num-samples", "3", "--no-export",
                           "--no-jit", "--logdir", str(tmp_path), "--run-name", "iw",
                           "--verbose", "0"])
    assert code == 0
    model = json.loads((tmp_path / "iw" / "run.json").read_text())["recipe"]["model"]
    assert model["objective"] == "iwae" and model["num_samples"] == 3
    assert train_app.main(["--objective", "vimco", "--dataset", "synthetic"]) == 2

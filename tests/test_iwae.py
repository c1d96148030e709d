"""Importance-weighted log-likelihood against the exact log p(x) of a linear-Gaussian VAE."""

import numpy as np
import pytest

import tfvae
from tfvae._tf import tf, tfd

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


def test_approximate_posterior_bound_rises_with_k_and_stays_below(linear):
    w, b, x, log_px = linear
    # A clearly imperfect proposal (mean 1 sd off, 1.6x too wide): an ELBO gap of nats.
    model = lg.make_model(w, b, posterior="mean_field",
                          posterior_kwargs={"shift": 1.0, "widen": 1.6})
    exact_q = lg.ExactPosterior(w, b)(tf.reshape(x, [len(x), -1]))
    true_elbo = log_px - tfd.kl_divergence(model.encode(x), exact_q).numpy()
    assert np.mean(log_px - true_elbo) > 1.0
    # Every example copied 200 times: each copy gets independent noise.
    reps = 200
    tiled = np.tile(x, (reps, 1, 1, 1))

    def estimates(k, seed):
        out = log_likelihood(model, tiled, num_samples=k, seed=seed, batch_size=800)
        return out.numpy().reshape(reps, len(x))

    single = estimates(1, seed=1)
    # k = 1 is one draw of the ELBO: unbiased, within 5 standard errors per example.
    stderr = single.std(0) / np.sqrt(reps)
    assert np.all(np.abs(single.mean(0) - true_elbo) < 5 * stderr), (single.mean(0), true_elbo)
    means = [single.mean()] + [estimates(k, seed=k).mean() for k in (10, 100, 1000)]
    assert means == sorted(means), means
    assert means[-1] - means[0] > 0.5 * np.mean(log_px - true_elbo)
    # Below the truth, up to Monte-Carlo error (the per-example mean over 200 copies).
    big = estimates(1000, seed=7)
    assert np.all(big.mean(0) < log_px + 3 * big.std(0) / np.sqrt(reps) + 1e-3)


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


def test_iwae_objective_with_one_sample_is_the_elbo_and_tightens_with_k(linear):
    w, b, x, log_px = linear
    kwargs = {"posterior": "mean_field", "posterior_kwargs": {"shift": 1.0, "widen": 1.6}}
    one = lg.make_model(w, b, objective="iwae", num_samples=1, kl="mc", **kwargs)
    fwd = one.forward(x, seed=3)
    # One sample, Monte-Carlo KL: -L_1 is exactly the single-sample negative ELBO.
    np.testing.assert_allclose(one.terms[0](fwd).numpy(), -fwd.elbo.numpy(), rtol=1e-5)
    bounds = []
    for k in (1, 8, 64):
        model = lg.make_model(w, b, objective="iwae", num_samples=k, **kwargs)
        tiled = np.tile(x, (50, 1, 1, 1))
        bounds.append(-model.compute_losses(tiled)["iwae"].numpy())
    assert bounds == sorted(bounds) and bounds[-1] < log_px.mean() + 0.05, bounds


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
    config = json.loads((tmp_path / "iw" / "run.json").read_text())["config"]
    assert config["objective"] == "iwae" and config["num_samples"] == 3
    assert train_app.main(["--objective", "vimco", "--dataset", "synthetic"]) == 2

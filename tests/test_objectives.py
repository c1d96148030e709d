"""The objective family: schedules, kernels and MMD, minibatch log q(z) estimators against
closed forms, the FactorVAE critic, and every family model training on `synthetic`."""

import glob
import os
import types

import numpy as np
import pytest

import tfvae
from tfvae import aggregate, kernels, priors
from tfvae._tf import tf, tfd, tfk, tfpl
from tfvae.critics import DensityRatioEstimator
from tfvae.registry import MODELS, TERMS
from tfvae.schedules import LinearSchedule, warmup

import oracles

SMALL = {"latent_dim": 3, "hidden_units": (32,), "seed": 3}


# ---------------------------------------------------------------------------- schedules

def test_linear_schedule_values():
    s = LinearSchedule(0.0, 10.0, steps=100)
    values = [float(s(t)) for t in (0, 25, 50, 100, 1000)]
    np.testing.assert_allclose(values, [0.0, 2.5, 5.0, 10.0, 10.0], rtol=1e-6)
    delayed = LinearSchedule(2.0, 1.0, steps=10, delay=5)
    steps = [tf.constant(t, tf.int64) for t in (0, 5, 10, 15, 99)]
    np.testing.assert_allclose([float(delayed(t)) for t in steps], [2.0, 2.0, 1.5, 1.0, 1.0],
                               rtol=1e-6)
    w = warmup(4.0, 1000)
    np.testing.assert_allclose([float(w(t)) for t in (0, 500, 1000, 5000)], [0, 2, 4, 4])
    compiled = tf.function(lambda t: w(t))
    assert float(compiled(tf.constant(250, tf.int64))) == pytest.approx(1.0)


def test_beta_vae_warmup_weights_the_kl(synthetic_batch):
    model = MODELS.get("beta_vae")(beta=4.0, warmup_steps=100, **SMALL)
    kl_term = model.terms[1]
    np.testing.assert_allclose([float(kl_term.weight_at(t)) for t in (0, 50, 100, 200)],
                               [0.0, 2.0, 4.0, 4.0], rtol=1e-6)
    model.compile(optimizer=tfk.optimizers.Adam(1e-3))
    losses = model.compute_losses(synthetic_batch)       # step 0: a plain autoencoder loss
    np.testing.assert_allclose(losses["loss"].numpy(), losses["reconstruction"].numpy(),
                               rtol=1e-6)
    model.optimizer.iterations.assign(50)
    losses = model.compute_losses(synthetic_batch)
    np.testing.assert_allclose(losses["loss"].numpy(),
                               losses["reconstruction"].numpy() + 2.0 * losses["kl"].numpy(),
                               rtol=1e-5)


# ---------------------------------------------------------------------------- capacity

def _fake_pass(rate, step):
    return types.SimpleNamespace(rate=rate, step=tf.constant(step, tf.int64))


def test_capacity_target_and_gradient_sign_flip():
    term = TERMS.get("capacity")(weight=2.0, capacity_max=10.0, steps=100)
    np.testing.assert_allclose([float(term.target(t)) for t in (0, 50, 100, 400)],
                               [0.0, 5.0, 10.0, 10.0], rtol=1e-6)
    kl = tf.Variable([4.0, 8.0])                     # batch-mean KL = 6 nats
    grads = {}
    for step in (0, 50, 100):                         # C = 0, 5, 10: below, below, above
        with tf.GradientTape() as tape:
            value = term(_fake_pass(kl * 1.0, step))
        grads[step] = tape.gradient(value, kl).numpy()
        assert float(value) == pytest.approx(abs(6.0 - 10.0 * min(step, 100) / 100))
    # d|mean KL - C| / d KL_b = sign(KL - C) / B: pushes the KL down above C, up below it.
    np.testing.assert_allclose(grads[0], [0.5, 0.5])
    np.testing.assert_allclose(grads[50], [0.5, 0.5])
    np.testing.assert_allclose(grads[100], [-0.5, -0.5])


def test_capacity_model_gradient_flips_with_the_target(synthetic_batch):
    """Through the real encoder: the capacity term's gradient is +- the KL's gradient."""
    model = MODELS.get("capacity")(gamma=5.0, capacity_max=50.0, capacity_steps=1000, **SMALL)
    term = model.terms[1]
    variables = model.posterior.trainable_variables
    fwd = model.forward(synthetic_batch[:16])
    kl = float(tf.reduce_mean(fwd.rate))
    below, above = int(1000 * kl / 50.0 * 0.5), int(1000 * kl / 50.0 * 2.0)  # C = KL/2, 2 KL
    signs = []
    for step in (below, above):
        with tf.GradientTape(persistent=True) as tape:
            fwd = model.forward(synthetic_batch[:16], seed=1)
            fwd.step = tf.constant(step, tf.int64)
            value = term(fwd)
            mean_kl = tf.reduce_mean(fwd.rate)
        g_term = np.concatenate([g.numpy().ravel() for g in tape.gradient(value, variables)])
        g_kl = np.concatenate([g.numpy().ravel() for g in tape.gradient(mean_kl, variables)])
        cosine = g_term @ g_kl / (np.linalg.norm(g_term) * np.linalg.norm(g_kl))
        signs.append(cosine)
    np.testing.assert_allclose(signs, [1.0, -1.0], atol=1e-5)


# ---------------------------------------------------------------------------- kernels, MMD

def _gaussian(r, mean, cov, n):
    return r.multivariate_normal(mean, cov, size=n).astype(np.float32)


def test_expected_rbf_kernel_matches_monte_carlo():
    r = np.random.default_rng(0)
    m1, m2 = np.array([0.0, 0.5]), np.array([1.0, -0.5])
    c1, c2 = np.array([[1.0, 0.3], [0.3, 0.5]]), np.diag([0.7, 1.2])
    x, y = _gaussian(r, m1, c1, 3000), _gaussian(r, m2, c2, 3000)
    k = kernels.rbf_kernel(x, y, bandwidth=1.5).numpy()
    # 9e6 pairs of 3000 + 3000 draws: the mean's error is ~ 1e-3; 0.01 would miss a wrong
    # det or a missing h^2 term in the closed form (both change it by > 0.05).
    assert k.mean() == pytest.approx(oracles.expected_rbf_kernel(m1, c1, m2, c2, 1.5), abs=0.01)


@pytest.mark.parametrize("kernel", ["rbf", "imq"])
def test_mmd_unbiased_near_zero_for_equal_distributions(kernel):
    r = np.random.default_rng(1)
    cov = np.array([[1.0, 0.5, 0.0], [0.5, 1.0, 0.2], [0.0, 0.2, 1.0]])
    both = tf.function(lambda x, y: (kernels.mmd(x, y, kernel),
                                     kernels.mmd(x, y, kernel, unbiased=False)))
    unbiased, biased = [], []
    for _ in range(60):
        u, b = both(_gaussian(r, np.zeros(3), cov, 64), _gaussian(r, np.zeros(3), cov, 64))
        unbiased.append(float(u))
        biased.append(float(b))
    se = np.std(unbiased) / np.sqrt(len(unbiased))
    # The U-statistic's mean is exactly 0 here: within 4 standard errors. The V-statistic
    # is biased up by O(1/n), which that interval excludes: the test can tell them apart.
    assert abs(np.mean(unbiased)) < 4 * se, (np.mean(unbiased), se)
    assert np.mean(biased) > 10 * se
    x, y = _gaussian(r, np.zeros(3), cov, 64), _gaussian(r, np.ones(3), cov, 64)
    assert float(kernels.mmd(x, y, kernel)) == pytest.approx(float(kernels.mmd(y, x, kernel)),
                                                             rel=1e-5)
    assert float(kernels.mmd(x, y, kernel)) > 0.05


def test_mmd_matches_closed_form_between_two_gaussians():
    r = np.random.default_rng(2)
    m1, c1 = np.zeros(2), np.eye(2)
    m2, c2 = np.array([0.8, 0.0]), np.array([[0.6, 0.2], [0.2, 0.9]])
    h2 = 2.0
    expected = (oracles.expected_rbf_kernel(m1, c1, m1, c1, h2)
                + oracles.expected_rbf_kernel(m2, c2, m2, c2, h2)
                - 2 * oracles.expected_rbf_kernel(m1, c1, m2, c2, h2))
    compiled = tf.function(lambda x, y: kernels.mmd(x, y, "rbf", h2))
    values = [float(compiled(_gaussian(r, m1, c1, 128), _gaussian(r, m2, c2, 128)))
              for _ in range(80)]
    se = np.std(values) / np.sqrt(len(values))
    assert expected > 0.05                                   # a real difference to detect
    assert abs(np.mean(values) - expected) < 4 * se, (np.mean(values), expected, se)


def test_kernel_errors():
    with pytest.raises(ValueError,
                       match=r"`kernel` must be one of \['imq', 'rbf'\]; got 'laplace'"):
        kernels.mmd(np.zeros((4, 2)), np.zeros((4, 2)), kernel="laplace")
    with pytest.raises(ValueError, match="`bandwidth` must be positive"):
        kernels.kernel_matrix(np.zeros((4, 2), np.float32), np.zeros((4, 2), np.float32),
                         bandwidth=-1.0)
    with pytest.raises(ValueError, match="same D"):
        kernels.mmd(np.zeros((4, 2)), np.zeros((4, 3)))


# ---------------------------------------------------------------------------- log q(z)

# Linear-Gaussian encoder q(z|x) = N(A x, s^2 I), x ~ N(0, I_P): q(z) = N(0, S),
# S = A A^T + s^2 I, so every part of the decomposition has a closed form.
A = np.array([[1.0, 0.5, 0.0, 0.0], [0.6, 1.0, 0.3, 0.0], [0.0, 0.2, 0.5, 0.8]])
S_ENC = 0.5


def linear_gaussian_closed_forms(a=A, s=S_ENC):
    d = a.shape[0]
    cov = a @ a.T + s**2 * np.eye(d)
    var = np.diag(cov)
    _, logdet = np.linalg.slogdet(cov)
    return {"mi": 0.5 * logdet - d * np.log(s),
            "tc": 0.5 * np.sum(np.log(var)) - 0.5 * logdet,
            "dim_kl": 0.5 * np.sum(var - 1 - np.log(var))}


def _linear_posterior(x):
    loc = (x @ A.T).astype(np.float32)
    return tfd.MultivariateNormalDiag(loc, np.full(loc.shape, S_ENC, np.float32))


@pytest.mark.parametrize("estimator", ["mws", "mss"])
def test_minibatch_estimators_match_closed_forms(estimator):
    closed = linear_gaussian_closed_forms()
    r = np.random.default_rng(3)
    prior = priors.standard_normal(3)
    estimates = []
    for rep in range(4):
        x = r.normal(size=(1500, 4))
        q_z = _linear_posterior(x)
        z = q_z.sample(seed=(rep, 5))
        # N >> M: a batch of x ~ N(0, I) is a uniform draw from a (huge) dataset.
        parts = aggregate.minibatch_decomposition(q_z, z, prior, dataset_size=10**7,
                                           estimator=estimator)
        assert parts["mi"].shape == (1, 1500)
        estimates.append({k: float(tf.reduce_mean(v)) for k, v in parts.items()})
    # Measured over 10 batches of 1500: the spread of one batch is 0.026-0.028 nats for MI
    # and 0.011-0.018 for TC and dim_kl, so the mean of 4 has a standard error <= 0.014 and
    # <= 0.009; the Jensen bias of log(unbiased q(z) estimate) is O(1/M): +0.014-0.021 for
    # MI, < 0.01 for the others. Tolerances: bias + ~3 standard errors. (Chen et al.'s
    # published 1/(NM) normalization would be off by (D - 1) log N = 32 nats in the TC.)
    for key, tol in (("mi", 0.06), ("tc", 0.04), ("dim_kl", 0.04)):
        values = np.array([e[key] for e in estimates])
        assert abs(values.mean() - closed[key]) < tol, (key, values, closed[key])


@pytest.mark.parametrize("estimator", ["mws", "mss"])
def test_minibatch_weights_are_unbiased_for_q_of_z(estimator):
    """On a finite dataset of N examples, the weighted sum over random batches containing
    the sample's own example averages to the exact q(z) = (1/N) sum_n q(z|x_n)."""
    n, m, reps = 40, 8, 20000
    r = np.random.default_rng(4)
    x = r.normal(size=(n, 4))
    q_all = _linear_posterior(x)
    z = q_all.sample(seed=(1, 2)).numpy()[0]                           # z ~ q(z|x_0)
    dens = np.exp(q_all.log_prob(z).numpy().astype(np.float64))         # q(z | x_n), [N]
    exact = dens.mean()
    w = np.exp(aggregate.log_importance_weights(m, n, estimator).astype(np.float64))
    np.testing.assert_allclose(w.sum(1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(np.diag(w), 1.0 / n, rtol=1e-6)
    # Row 0 of each batch is example 0; the other M - 1 are drawn without replacement.
    others = np.argsort(r.random((reps, n - 1)), axis=1)[:, :m - 1] + 1
    batches = np.concatenate([np.zeros((reps, 1), int), others], axis=1)
    estimates = dens[batches] @ w[0]
    se = estimates.std() / np.sqrt(reps)
    assert abs(estimates.mean() - exact) < 4 * se, (estimates.mean(), exact, se)
    # Chen et al.'s published 1/(NM) weights average to ~q(z)/N: far outside it.
    assert abs(dens[batches].mean(1).mean() / n - exact) > 100 * se


def test_pairwise_full_covariance_log_prob_matches_tfp():
    """The solve-once path for full-covariance posteriors equals TFP's broadcast log_prob."""
    from tfvae._tf import tfpl
    r = np.random.default_rng(7)
    params = r.normal(size=(16, tfpl.MultivariateNormalTriL.params_size(5))).astype(np.float32)
    q_z = tfpl.MultivariateNormalTriL.new(params * 0.5, 5)
    z = q_z.sample(3, seed=(5, 6))                                          # [S=3, M=16, D=5]
    joint, marginal = aggregate.pairwise_log_qz(q_z, z)
    expected = q_z.log_prob(z[:, :, None, :]).numpy()
    assert joint.shape == (3, 16, 16) and marginal.shape == (3, 16, 16, 5)
    np.testing.assert_allclose(joint.numpy(), expected, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("head", ["diagonal", "full_covariance"])
@pytest.mark.parametrize("estimator", ["mss", "mws"])
def test_minibatch_estimates_built_rows_at_a_time_are_the_same(head, estimator):
    # rows= builds the pairwise terms a few samples at a time (the evaluation's memory
    # bound): each row's weights must stay those of its own index, and the full-covariance
    # solve must take fewer samples than examples.
    r = np.random.default_rng(11)
    m, d = 50, 4
    if head == "diagonal":
        q_z = tfd.MultivariateNormalDiag(r.normal(size=(m, d)).astype(np.float32),
                                         np.exp(r.normal(size=(m, d)) * 0.3).astype(np.float32))
    else:
        params = r.normal(size=(m, tfpl.MultivariateNormalTriL.params_size(d)))
        q_z = tfpl.MultivariateNormalTriL.new(params.astype(np.float32) * 0.5, d)
    z = q_z.sample(2, seed=(1, 2))                                          # [S=2, M, D]
    whole = aggregate.minibatch_decomposition(q_z, z, priors.standard_normal(d), 1000,
                                              estimator)
    chunked = aggregate.minibatch_decomposition(q_z, z, priors.standard_normal(d), 1000,
                                                estimator, rows=7)
    for key in ("mi", "tc", "dim_kl"):
        assert chunked[key].shape == (2, m)
        np.testing.assert_allclose(chunked[key].numpy(), whole[key].numpy(), rtol=1e-5,
                                   atol=1e-4)
    # and the rows really differ from each other (a chunking that repeated one would fail)
    assert np.ptp(whole["tc"].numpy()) > 0.1


def test_minibatch_estimator_errors():
    with pytest.raises(ValueError, match="`estimator` must be one of"):
        aggregate.log_importance_weights(8, 100, "iwae")
    with pytest.raises(ValueError, match=r"`dataset_size` \(4\) must be at least the batch size"):
        aggregate.log_importance_weights(8, 4)
    with pytest.raises(ValueError, match="at least 2 examples"):
        aggregate.log_importance_weights(1, 100)
    with pytest.raises(TypeError, match="`dataset_size.*must be an int"):
        aggregate.log_importance_weights(8, 0.5)
    with pytest.raises(ValueError, match="`dataset_size.*must be an int >= 2"):
        aggregate.log_importance_weights(8, 1)
    with pytest.raises(TypeError, match="needs a Gaussian posterior"):
        aggregate.gaussian_marginals(tfd.VectorDeterministic(tf.zeros([2, 3])))


# ---------------------------------------------------------------------------- FactorVAE

def test_permute_dims_permutes_each_column_independently():
    z = tf.constant(np.random.default_rng(6).multivariate_normal(
        [0, 0], [[1, 0.9], [0.9, 1]], size=4000), tf.float32)
    p = aggregate.permute_dims(z, seed=tf.constant([1, 2]))
    np.testing.assert_array_equal(np.sort(p.numpy(), 0), np.sort(z.numpy(), 0))
    assert abs(np.corrcoef(p.numpy().T)[0, 1]) < 0.06          # 4 / sqrt(4000)
    np.testing.assert_array_equal(p.numpy(),
                                  aggregate.permute_dims(z, tf.constant([1, 2])).numpy())


def test_critic_estimates_total_correlation_of_a_correlated_gaussian():
    d, rho = 3, 0.7
    corr = np.full((d, d), rho) + (1 - rho) * np.eye(d)
    tc = -0.5 * np.linalg.slogdet(corr)[1]                       # 0.766 nats
    chol = tf.constant(np.linalg.cholesky(corr).T, tf.float32)
    steps = 600
    critic = DensityRatioEstimator(hidden_units=(64, 64), optimizer=tfk.optimizers.Adam(
        tfk.optimizers.schedules.PolynomialDecay(3e-3, steps, 1e-4)))

    @tf.function
    def step(seed):
        s1, s2 = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        z = tf.random.stateless_normal([1024, d], seed=s1) @ chol
        return critic.update(z, aggregate.permute_dims(z, s2))

    for i in range(steps):
        step(tf.constant([i, 11]))
    z = tf.random.stateless_normal([50000, d], seed=(99, 1)) @ chol
    estimate = float(tf.reduce_mean(critic(z)))
    # Measured over seeds: 0.72-0.73 (the logistic estimator is biased low by ~0.04 nats at
    # this budget; 0.73-0.74 after 1000 steps); 0.08 nats is ~10% of the TC and excludes
    # TC = 0 and the 2x of a sign slip.
    assert estimate == pytest.approx(tc, abs=0.08), (estimate, tc)


def _factor_vae(**kwargs):
    return MODELS.get("factor_vae")(**{**SMALL, "tc_weight": 5.0, **kwargs})


def test_factor_vae_tc_moves_encoder_not_critic(synthetic_batch):
    model = _factor_vae()
    term = model.terms[2]
    critic_vars = term.critic.trainable_variables
    owned = {v.ref() for v in critic_vars}
    assert critic_vars and not owned & {v.ref() for v in model.model_variables()}
    encoder_vars = model.encoder.trainable_variables + model.posterior.trainable_variables
    with tf.GradientTape() as tape:
        value = term(model.forward(synthetic_batch[:32]))
    grads = tape.gradient(value, encoder_vars + critic_vars)
    # The TC estimate reaches the encoder through z (the critic's input) ...
    assert all(g is not None and np.abs(g.numpy()).max() > 0 for g in grads[:len(encoder_vars)])

    def snapshot(variables):
        return [v.numpy().copy() for v in variables]

    def changed(before, variables):
        return [not np.array_equal(b, v.numpy()) for b, v in zip(before, variables)]

    # ... but the model's step leaves the critic alone (critic lr 0: nothing may move it),
    # run_eagerly: one step each, so tracing would cost more than it saves.
    model.compile(optimizer=tfk.optimizers.Adam(1e-3), run_eagerly=True)
    term.critic.critic_optimizer.learning_rate = 0.0
    before_c, before_m = snapshot(critic_vars), snapshot(model.model_variables())
    logs = model.train_on_batch(synthetic_batch, return_dict=True)
    assert not any(changed(before_c, critic_vars))
    assert all(changed(before_m, model.model_variables()))
    assert {"factor_tc", "factor_tc_critic_loss", "factor_tc_critic_accuracy_positive",
            "factor_tc_critic_accuracy_negative"} <= set(logs)
    # and the critic's step leaves the model alone (model lr 0).
    model = _factor_vae()
    model.compile(optimizer=tfk.optimizers.SGD(0.0), run_eagerly=True)
    critic_vars = model.terms[2].critic.trainable_variables
    before_c, before_m = snapshot(critic_vars), snapshot(model.model_variables())
    model.train_on_batch(synthetic_batch, return_dict=True)
    assert all(changed(before_c, critic_vars))
    assert not any(changed(before_m, model.model_variables()))


# ---------------------------------------------------------------------------- models

def test_beta_tcvae_with_unit_weights_is_the_monte_carlo_vae(synthetic_batch):
    model = MODELS.get("beta_tcvae")(dataset_size=2048, tc_weight=1.0, **SMALL)
    fwd = model.forward(synthetic_batch[:32])
    total = sum(float(t.weight_at(0)) * float(t(fwd)) for t in model.terms[1:])
    mc_kl = float(tf.reduce_mean(fwd.log_qz - fwd.log_pz))
    assert total == pytest.approx(mc_kl, abs=1e-3)


def test_info_vae_weights(synthetic_batch):
    model = MODELS.get("info_vae")(alpha=0.5, lambda_mmd=10.0, kernel="imq", **SMALL)
    losses = model.compute_losses(synthetic_batch)
    np.testing.assert_allclose(
        losses["loss"].numpy(), losses["reconstruction"].numpy() + 0.5 * losses["kl"].numpy()
        + 9.5 * losses["mmd"].numpy(), rtol=1e-5)


def test_ae_is_deterministic_and_has_no_elbo(synthetic_batch):
    model = MODELS.get("ae")(**SMALL)
    q = model.encode(synthetic_batch[:8])
    assert not model.has_density and q.event_shape == [3] and q.batch_shape == [8]
    fwd = model.forward(synthetic_batch[:8], num_samples=2)
    np.testing.assert_array_equal(fwd.z.numpy()[0], q.mean().numpy())
    np.testing.assert_array_equal(fwd.z.numpy()[1], q.mean().numpy())
    losses = model.compute_losses(synthetic_batch)
    assert set(losses) == {"loss", "reconstruction"}
    np.testing.assert_allclose(losses["loss"].numpy(), losses["reconstruction"].numpy())
    with pytest.raises(ValueError, match="the ELBO are undefined"):
        model.elbo(synthetic_batch)
    # A point mass has no density: its log_prob and KL refuse rather than return a
    # probability mass or TFP's cross-entropy "KL" -log p(loc).
    with pytest.raises(ValueError, match="is a point mass: it has no density"):
        q.log_prob(q.mean())
    with pytest.raises(ValueError, match="is a point mass: it has no density"):
        tfvae.VAE(posterior="deterministic", **SMALL).compute_losses(synthetic_batch)
    with pytest.raises(ValueError, match="no importance sampling proposal"):
        tfvae.evaluation.log_likelihood(model, synthetic_batch[:2], num_samples=2)


FAMILY = {
    "vae": ({}, set()),
    "beta_vae": ({"beta": 4.0, "warmup_steps": 10}, set()),
    "capacity": ({"gamma": 10.0, "capacity_max": 5.0, "capacity_steps": 20},
                 {"capacity", "capacity_target"}),
    "beta_tcvae": ({"dataset_size": 256}, {"mi", "tc", "dim_kl"}),
    "info_vae": ({"kernel": "imq", "lambda_mmd": 10.0}, {"mmd"}),
    "factor_vae": ({}, {"factor_tc", "factor_tc_critic_loss",
                        "factor_tc_critic_accuracy_positive",
                        "factor_tc_critic_accuracy_negative"}),
    "ae": ({}, set()),
}


@pytest.mark.parametrize("name", sorted(FAMILY))
def test_family_trains_on_synthetic_and_reports_metrics(name):
    kwargs, extra = FAMILY[name]
    train = tfvae.data.load("synthetic", "train", 64, binarize="static", limit=192)
    model = MODELS.get(name)(**SMALL, **kwargs)
    before = [v.numpy().copy() for v in model.model_variables()]
    model.compile(optimizer=tfk.optimizers.Adam(1e-3))
    history = model.fit(train, epochs=1, verbose=0).history
    base = {"loss", "reconstruction"} | (set() if name == "ae" else {"elbo", "kl"})
    assert set(history) == base | extra, set(history) ^ (base | extra)
    assert all(np.all(np.isfinite(v)) for v in history.values())
    assert all(not np.array_equal(b, v.numpy()) for b, v in zip(before, model.model_variables()))
    clone = type(model).from_config(model.get_config())            # hyperparameters survive
    assert type(clone) is type(model) and clone.get_config() == model.get_config()


@pytest.mark.parametrize("name,kwargs,error,match", [
    ("beta_vae", {"beta": -1.0}, ValueError, "`beta` must be non-negative"),
    ("beta_vae", {"warmup_steps": 0}, ValueError, "`warmup_steps` must be a positive int"),
    ("capacity", {"gamma": -2.0}, ValueError, "`gamma` must be non-negative"),
    ("capacity", {"capacity_max": -1.0}, ValueError, r"`capacity_max \(C_max, nats\)` must be"),
    ("capacity", {"capacity_steps": 0}, ValueError, "`capacity_steps` must be a positive int"),
    ("beta_tcvae", {}, ValueError, "needs `dataset_size`"),
    ("beta_tcvae", {"dataset_size": 100, "tc_weight": -1.0}, ValueError,
     "`tc_weight` must be non-negative"),
    ("beta_tcvae", {"dataset_size": 100, "estimator": "is"}, ValueError,
     r"`estimator` must be one of \['mss', 'mws'\]"),
    ("beta_tcvae", {"dataset_size": 100, "posterior": "deterministic"}, TypeError,
     "needs a Gaussian posterior"),
    ("info_vae", {"kernel": "laplace"}, ValueError, r"`kernel` must be one of \['imq', 'rbf'\]"),
    ("info_vae", {"alpha": 1.5}, ValueError, r"`alpha \(the KL weight is 1 - alpha\)` must be <= 1"),
    ("info_vae", {"lambda_mmd": 0.0}, ValueError, "`lambda_mmd` must be positive"),
    ("info_vae", {"alpha": -2.0, "lambda_mmd": 1.0}, ValueError, "the MMD weight"),
    ("factor_vae", {"tc_weight": -1.0}, ValueError, "`tc_weight` must be non-negative"),
    ("factor_vae", {"discriminator_lr": 0.0}, ValueError, "`discriminator_lr` must be positive"),
    ("ae", {"posterior": "diagonal"}, ValueError, "`posterior` must be 'deterministic'"),
    ("beta_vae", {"terms": ["reconstruction"]}, TypeError, "multiple values for keyword argument 'terms'"),
    ("beta_vae", {"objective": "iwae"}, ValueError, "`objective` does not apply to model 'beta_vae'"),
    ("capacity", {"beta": 4.0}, ValueError, "`beta` does not apply to model 'capacity'"),
    ("ae", {"beta": 2.0}, ValueError, "`beta` does not apply"),
    ("ae", {"num_samples": 3}, ValueError, "`num_samples` does not apply"),
])
def test_bad_hyperparameters(name, kwargs, error, match):
    with pytest.raises(error, match=match):
        MODELS.get(name)(**{**SMALL, **kwargs})


@pytest.mark.parametrize("kwargs,match", [
    ({"start": 0.0, "end": 1.0, "steps": 0}, "`steps` must be a positive int"),
    ({"start": 0.0, "end": 1.0, "steps": -5}, "`steps` must be a positive int"),
    ({"start": 0.0, "end": 1.0, "steps": 2.5}, "`steps` must be a positive int"),
    ({"start": float("nan"), "end": 1.0, "steps": 5}, "`start` must be a finite number"),
    ({"start": 0.0, "end": 1.0, "steps": 5, "delay": -1}, "`delay` must be a non-negative int"),
])
def test_bad_schedules(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LinearSchedule(**kwargs)


def test_bad_terms():
    with pytest.raises(ValueError, match="needs `dataset_size`"):
        TERMS.get("tc")()
    with pytest.raises(ValueError, match="`capacity_max \\(C_max, nats\\)` must be non-negative"):
        TERMS.get("capacity")(capacity_max=-3.0)
    with pytest.raises(ValueError, match="`steps` must be a positive int"):
        TERMS.get("capacity")(steps=0)
    with pytest.raises(ValueError, match="`weight` must be non-negative"):
        TERMS.get("mmd")(weight=-1.0)
    with pytest.raises(ValueError, match=r"`kernel` must be one of"):
        TERMS.get("mmd")(kernel="gauss")


# ---------------------------------------------------------------------------- train app

APPS = os.path.join(os.path.dirname(__file__), os.pardir, "apps")
# Tiny settings for the in-process app runs (no XLA: compiling costs more than 4 steps).
TINY_APP = ["--dataset", "synthetic", "--latent-dim", "4", "--hidden-units", "32",
            "--batch-size", "64", "--steps-per-epoch", "4", "--test-limit", "128",
            "--export-iwae-samples", "4", "--no-jit", "--verbose", "0", "--epochs", "1"]


@pytest.mark.parametrize("preset,expected", [
    ("beta_vae", {"beta": 4.0}),
    ("vae_warmup", {"beta": 1.0, "warmup_steps": 938}),
    ("capacity", {"gamma": 100.0, "capacity_max": 25.0, "capacity_steps": 4000}),
    ("beta_tcvae", {"tc_weight": 6.0, "estimator": "mss", "dataset_size": 60000}),
    ("info_vae", {"alpha": 0.0, "lambda_mmd": 1000.0, "kernel": "rbf"}),
    ("factor_vae", {"tc_weight": 10.0, "discriminator_lr": 1e-4}),
    ("ae", {"posterior": {"name": "deterministic"}}),
])
def test_presets_build_their_models(preset, expected):
    from tfvae.apps import train as train_app
    _, recipe, _ = train_app.parse(["--config", os.path.join(APPS, f"{preset}.toml"),
                                    "--latent-dim", "4", "--hidden-units", "32"])
    model = recipe.build((28, 28, 1), seed=0, dataset_size=60000)
    config = model.get_config()
    assert model.registry_name == recipe.name
    assert {k: config[k] for k in expected} == expected


def test_app_flags_reach_the_models():
    from tfvae.apps import _cli
    from tfvae.apps import train as train_app

    def build(argv):
        cfg, recipe, _ = train_app.parse(argv + ["--latent-dim", "4", "--hidden-units", "32"])
        data = types.SimpleNamespace(image_shape=(28, 28, 1), num_train=1000, steps_per_epoch=8,
                                     test_images=np.zeros((2, 28, 28, 1), np.float32))
        return train_app.build_model(cfg, recipe, data).get_config()

    assert build(["--model", "beta_vae"])["beta"] == 4.0     # the model's default beta
    assert build(["--model", "beta_vae"])["warmup_steps"] == 40  # half of 10 epochs x 8 steps
    config = build(["--model", "beta_vae", "--beta", "2", "--warmup-steps", "10"])
    assert (config["beta"], config["warmup_steps"]) == (2.0, 10)  # its own warm-up is kept
    config = build(["--model", "beta_tcvae", "--tc-weight", "3", "--estimator", "mws",
                    "--mi-weight", "0.5"])
    assert (config["tc_weight"], config["mi_weight"], config["estimator"],
            config["dataset_size"]) == (3.0, 0.5, "mws", 1000)
    assert build(["--model", "info_vae", "--kernel", "imq", "--alpha", "0.5"])["kernel"] == "imq"
    assert build(["--model", "factor_vae", "--tc-weight", "2"])["tc_weight"] == 2.0
    assert build(["--model", "ae"])["posterior"] == {"name": "deterministic"}
    for argv, match in ((["--model", "ae", "--posterior", "diagonal"], "must be 'deterministic'"),
                        (["--model", "capacity", "--beta", "2"], "unrecognized arguments: --beta"),
                        (["--model", "info_vae", "--kernel", "rbf", "--alpha", "3"], "<= 1")):
        with pytest.raises(_cli.UsageError, match=match):
            build(argv)


def test_train_app_trains_ae_and_logs_its_decomposition(tmp_path):
    from tfvae.apps import train as train_app
    cfg, model_cls, args = train_app.parse(TINY_APP + [
        "--model", "ae", "--logdir", str(tmp_path / "runs"), "--export-dir",
        str(tmp_path / "saved")])
    result = train_app.train(cfg, model_cls, args, out=lambda s: None)
    assert set(result.metrics) == {"loss", "reconstruction"}
    tags = set()
    for path in glob.glob(os.path.join(result.run_dir, "validation", "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            tags |= {v.tag for v in event.summary.value}
    # The point mass has no finite MI or KL; the rest is logged by the registered callback.
    assert {f"4_decomposition/{k}" for k in ("tc", "dim_kl", "aggregate_kl", "active_units",
                                             "gaussian_kl_bound")} <= tags
    assert "4_decomposition/mi" not in tags

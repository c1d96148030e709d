"""The noise-basis implicit posterior z = z0(x) + sum_i a_i(x) * v_i(eps_i): its sampler
against a NumPy recomputation, its moments against the closed form of linear bases, and
AVB's adaptive contrast built from those moments."""

import numpy as np
import pytest

from tfvae._tf import tf, tfd, tfk
from tfvae.objectives.avb import AVBTerm
from tfvae.posteriors.implicit_basis import GroupedDense
from tfvae.registry import POSTERIORS

D, BASES, K = 3, 4, 5


def _head(basis_units=(8,), seed=0, **kwargs):
    """A built head whose weights (biases included) are random, so every a_i differs from
    the others and from 1, and every v_i has a nonzero mean. The bases' effective weights
    (stored ones times `basis_step_scale`, the default 1e-2) are the ones drawn."""
    head = POSTERIORS.get("implicit_basis")(D, bases=BASES, noise_dim=K,
                                            basis_units=basis_units, **kwargs)
    head.build((None, 6))
    rng = np.random.default_rng(seed)
    basis = {id(w) for layer in head.basis_layers for w in layer.weights}
    for w in head.weights:
        scale = 0.5 / (head.basis_step_scale if id(w) in basis else 1.0)
        w.assign(rng.normal(scale=scale, size=w.shape).astype(np.float32))
    return head


def _features(batch=4, seed=1):
    return tf.constant(np.random.default_rng(seed).normal(size=(batch, 6)), tf.float32)


def _softplus(x):
    return np.logaddexp(0.0, x)


def _elu(x):
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0.0)))


def _numpy_z(head, h, eps):
    """z0 + sum_i a_i * v_i, written out per basis with NumPy; eps [S, B or 1, n * k]."""
    h = h.numpy()
    z0 = h @ head.loc_layer.kernel.numpy() + head.loc_layer.bias.numpy()
    a = _softplus(h @ head.scale_layer.kernel.numpy() + head.scale_layer.bias.numpy()) + 1e-5
    a = a.reshape(len(h), BASES, D)
    z = np.broadcast_to(z0, (eps.shape[0], len(h), D)).copy()
    for i in range(BASES):
        v = eps[..., i * K:(i + 1) * K]
        for j, layer in enumerate(head.basis_layers):
            kernel, bias = (w.numpy() for w in layer.effective_weights())
            v = v @ kernel[i] + bias[i]
            v = _elu(v) if j < len(head.basis_layers) - 1 else v
        z += a[:, i] * v
    return z


@pytest.mark.parametrize("shared", [False, True])
def test_the_sampler_is_z0_plus_the_weighted_noise_basis(shared):
    head = _head()
    h = _features()
    eps = np.random.default_rng(2).normal(size=(3, 1 if shared else 4, BASES * K))
    z = head.transform(h, tf.constant(eps, tf.float32)).numpy()
    assert z.shape == (3, 4, D)
    np.testing.assert_allclose(z, _numpy_z(head, h, eps), rtol=1e-5, atol=1e-5)
    q = head(h)
    assert not head.has_density and q.event_shape == [D] and q.batch_shape == [4]
    assert q.sample(7, seed=(1, 2)).shape == (7, 4, D)


def test_the_sample_is_differentiable_in_every_weight():
    head = _head()
    h = _features()
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(head(h).sample(2, seed=(0, 1)) ** 2)
    grads = tape.gradient(loss, head.trainable_variables)
    # z0, a (kernel, bias), two grouped layers (kernel, bias) each.
    assert len(grads) == 8 and all(np.abs(g.numpy()).max() > 0 for g in grads)


def _closed_form(head, h):
    """Linear bases v_i = eps_i K_i + c_i: E[z|x] = z0 + sum_i a_i c_i and
    Cov[z|x] = sum_i diag(a_i) K_i^T K_i diag(a_i)."""
    h = h.numpy()
    z0 = h @ head.loc_layer.kernel.numpy() + head.loc_layer.bias.numpy()
    a = _softplus(h @ head.scale_layer.kernel.numpy() + head.scale_layer.bias.numpy()) + 1e-5
    a = a.reshape(len(h), BASES, D)
    kernel, bias = (w.numpy() for w in head.basis_layers[0].effective_weights())
    mean = z0 + np.einsum("bnd,nd->bd", a, bias)
    cov = np.einsum("bni,nki,nkj,bnj->bij", a, kernel, kernel, a)
    return mean, cov


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_moments_match_the_closed_form_of_linear_bases(seed):
    """n = 40000 shared draws; the sd of a basis's sample covariance entry is at most
    sqrt(2) s_i s_j / sqrt(n), so 4 times that summed over the bases bounds the error.
    A weight a_i where a_i^2 belongs, a dropped diag(a_i), or the bases' variances added
    without their weights each miss by far more (the a_i range over ~0.1-3)."""
    head = _head(basis_units=(), seed=seed)
    h = _features(seed=seed + 10)
    mean, cov = _closed_form(head, h)
    n = 40000
    got_mean, got_cov = head.sample_moments(h, n, tf.constant([seed, 7]), full=True)
    _, got_var = head.sample_moments(h, n, tf.constant([seed, 7]), full=False)
    sd = np.sqrt(np.diagonal(cov, axis1=1, axis2=2))                     # [B, D]
    np.testing.assert_allclose(got_mean.numpy(), mean, atol=5 * sd.max() / np.sqrt(n))
    tol = 4 * np.sqrt(2.0 / n) * np.einsum("bi,bj->bij", sd, sd)
    assert np.all(np.abs(got_cov.numpy() - cov) <= tol), np.abs(got_cov.numpy() - cov) / tol
    np.testing.assert_allclose(got_var.numpy(), np.diagonal(got_cov.numpy(), axis1=1, axis2=2),
                               rtol=1e-4)
    # The draws of z themselves (per-example noise, the transform path) agree as well.
    z = head(h).sample(n, seed=(seed, 9)).numpy()
    for b in range(len(h)):
        assert np.all(np.abs(np.cov(z[:, b].T) - cov[b]) <= 2 * tol[b])


def test_adaptive_contrast_whitens_with_the_heads_moments():
    """With linear bases q(z|x) is the Gaussian of the closed form, so AVB's contrast r must
    be that Gaussian, and the whitened draws z~ must have mean 0 and covariance I."""
    head = _head(basis_units=(), seed=3)
    h = _features(seed=4)
    mean, cov = _closed_form(head, h)
    q = head(h)
    z = q.sample(20000, seed=(5, 6))
    for covariance in ("full", "diagonal"):
        term = AVBTerm(adaptive_contrast=True, moment_samples=20000,
                       contrast_covariance=covariance)
        r, whiten = term.contrast(q, tf.constant([1, 2]))
        target = cov if covariance == "full" else np.einsum(
            "bi,ij->bij", np.diagonal(cov, axis1=1, axis2=2), np.eye(D))
        np.testing.assert_allclose(r.mean().numpy(), mean, atol=0.05 * np.sqrt(cov.max()))
        np.testing.assert_allclose(r.covariance().numpy(), target, rtol=0.06,
                                   atol=0.03 * cov.max())
        zt = whiten(z).numpy()
        if covariance == "full":
            for b in range(len(h)):
                np.testing.assert_allclose(np.cov(zt[:, b].T), np.eye(D), atol=0.08)
        else:
            np.testing.assert_allclose(zt.var(0), np.ones((len(h), D)), atol=0.08)


def test_bad_arguments_are_named():
    make = POSTERIORS.get("implicit_basis")
    for kwargs, match in (({"bases": 0}, "bases"), ({"noise_dim": 0}, "noise_dim"),
                          ({"basis_units": (0,)}, "basis_units"),
                          ({"init_scale": 0.0}, "init_scale"),
                          ({"init_scale": 2e-5, "bases": 16}, "sqrt\\(bases\\)"),
                          ({"proposal_samples": 2}, "proposal_samples"),
                          ({"basis_step_scale": -1.0}, "basis_step_scale")):
        with pytest.raises(ValueError, match=match):
            make(D, **kwargs)
    with pytest.raises(ValueError, match=r"eps.*shape"):
        _head().transform(_features(), tf.zeros([2, 4, 3]))


def test_initial_scale_is_init_scale_over_root_bases():
    head = POSTERIORS.get("implicit_basis")(D, bases=BASES, init_scale=0.5)
    a, _ = head.weights_and_shift(tf.zeros([1, 6]))
    np.testing.assert_allclose(a.numpy(), 0.5 / np.sqrt(BASES), rtol=1e-5)
    assert isinstance(head(tf.zeros([2, 6])).sample(seed=(0, 0)), tf.Tensor)
    assert tfd.FULLY_REPARAMETERIZED == head(tf.zeros([2, 6])).reparameterization_type


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_analytic_gaussian_part_has_the_gradient_of_the_closed_form_kl(seed):
    """Linear bases make q(z|x) the Gaussian of the closed form. With a fixed critic T, AVB's
    KL estimate with `gaussian_part="analytic"` must be KL(r || p) + E_q[T(x, z~)] in value
    and gradient, for every weight of the head, where z~ whitens z with r's moments held
    fixed: checked against tfd's KL of the closed-form Gaussian and the closed-form
    whitening, built in TensorFlow from the same weights (the moments' 4000 shared draws
    leave a few percent). T = 0 is the critic's optimum here; T = |z~|^2 / 2 checks that no
    gradient reaches the moments through the whitening. With the moments' gradient stopped
    the estimate has no gradient in a_i through the Gaussian part."""
    head = _head(basis_units=(), seed=seed)
    h = _features(seed=seed + 20)
    p_z = tfd.MultivariateNormalDiag(tf.zeros(D), tf.ones(D))
    term = AVBTerm(adaptive_contrast=True, moment_samples=4000, contrast_covariance="full",
                   gaussian_part="analytic")
    weights = head.trainable_variables
    for critic in (lambda z: tf.zeros(tf.shape(z)[:-1]),
                   lambda z: 0.5 * tf.reduce_sum(tf.square(z), -1)):
        term.critic_value = lambda x, z, average=True, critic=critic: critic(z)
        with tf.GradientTape(persistent=True) as tape:
            q = head(h)
            z = q.sample(1, seed=(seed, 1))
            kl = term.estimate(h, q, z, p_z, seed=tf.constant([seed, 2]))["kl"]
            a, z0 = head.weights_and_shift(h)
            kernel, bias = head.basis_layers[0].effective_weights()
            mean = z0 + tf.einsum("bnd,nd->bd", a, bias)
            tril = tf.linalg.cholesky(tf.einsum("bni,nki,nkj,bnj->bij", a, kernel, kernel, a))
            fixed = tf.stop_gradient(tril)
            zt = tf.linalg.triangular_solve(fixed, (z - tf.stop_gradient(mean))[..., None])
            exact = tfd.kl_divergence(tfd.MultivariateNormalTriL(mean, tril), p_z) + \
                tf.reduce_mean(critic(zt[..., 0]), 0)
        np.testing.assert_allclose(kl.numpy(), exact.numpy(), rtol=0.05)
        for w, g, g_exact in zip(weights, tape.gradient(kl, weights),
                                 tape.gradient(exact, weights)):
            g, g_exact = g.numpy(), g_exact.numpy()
            assert np.linalg.norm(g - g_exact) <= 0.1 * np.linalg.norm(g_exact), w.name


def test_nonlinear_basis_moments_match_the_draws():
    """Nonlinear v_i have no closed form: the moments must match the sample mean and
    covariance of 40000 draws of z through the transform (per-example noise), within 4
    standard errors of a covariance entry."""
    head = _head(basis_units=(8, 8), seed=5)
    h = _features(seed=6)
    n = 40000
    mean, cov = head.sample_moments(h, n, tf.constant([1, 1]), full=True)
    z = head(h).sample(n, seed=(2, 2)).numpy()
    for b in range(len(h)):
        emp = np.cov(z[:, b].T)
        sd = np.sqrt(np.diag(emp))
        tol = 2 * 4 * np.sqrt(2.0 / n) * np.outer(sd, sd)  # two estimates, each this noisy
        assert np.all(np.abs(cov.numpy()[b] - emp) <= tol), (cov.numpy()[b], emp)
        np.testing.assert_allclose(mean.numpy()[b], z[:, b].mean(0), atol=8 * sd.max() / n ** 0.5)


def test_avb_with_the_basis_head_trains_round_trips_and_resumes(synthetic_batch, tmp_path):
    """AVB + AC (full contrast, analytic Gaussian part) with the noise-basis head: finite
    losses over a few steps in a compiled train step, and a config + checkpoint round trip
    that gives the same samples and proposal."""
    from tfvae.registry import MODELS  # noqa: PLC0415
    kwargs = {"latent_dim": 3, "hidden_units": (32,), "discriminator_units": (16, 16),
              "adaptive_contrast": True, "contrast_covariance": "full", "moment_samples": 64,
              "gaussian_part": "analytic", "seed": 3,
              "posterior": {"name": "implicit_basis", "bases": 3, "noise_dim": 4,
                            "basis_units": [8], "basis_step_scale": 0.5}}
    model = MODELS.get("avb")(**kwargs)
    model.compile(optimizer=tfk.optimizers.Adam(1e-3))
    x = synthetic_batch[:32]
    history = model.fit(x, epochs=3, batch_size=16, verbose=0).history
    assert all(np.all(np.isfinite(v)) for v in history.values()), history
    model.save_weights(str(tmp_path / "ckpt"))
    config = model.get_config()
    assert config["gaussian_part"] == "analytic"
    assert config["posterior"] == {"name": "implicit_basis", "bases": 3, "noise_dim": 4,
                                   "basis_units": [8], "activation": "elu", "init_scale": 1.0,
                                   "basis_step_scale": 0.5,
                                   "proposal_samples": 256, "proposal_scale": 1.5}
    clone = MODELS.get("avb").from_config(config)
    clone.load_weights(str(tmp_path / "ckpt"))
    np.testing.assert_allclose(clone.encode(x[:4]).sample(2, seed=(1, 1)).numpy(),
                               model.encode(x[:4]).sample(2, seed=(1, 1)).numpy(), atol=1e-6)
    np.testing.assert_allclose(clone.proposal(x[:4]).covariance().numpy(),
                               model.proposal(x[:4]).covariance().numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="gaussian_part='analytic'.*adaptive_contrast=True"):
        MODELS.get("avb")(latent_dim=3, gaussian_part="analytic")


@pytest.mark.parametrize("step_scale", [1.0, 1e-2])
def test_basis_step_scale_shrinks_the_bases_adam_step_and_keeps_the_layer(step_scale):
    """Adam's first step moves every weight by lr * sign(g) (its bias-corrected m / sqrt(v) is
    g / |g|): a basis layer stored divided by s must then move its effective kernel by
    s * lr, while the layer it computes at initialization is the s = 1 layer."""
    layer = GroupedDense(BASES, 5, "elu", step_scale=step_scale)
    reference = GroupedDense(BASES, 5, "elu")
    x = tf.constant(np.random.default_rng(0).normal(size=(7, BASES, K)), tf.float32)
    tfk.utils.set_random_seed(3)
    layer.build(x.shape)
    tfk.utils.set_random_seed(3)
    reference.build(x.shape)
    np.testing.assert_allclose(layer(x).numpy(), reference(x).numpy(), rtol=1e-5, atol=1e-6)
    before = layer.effective_weights()[0].numpy()
    opt = tfk.optimizers.Adam(1e-3, epsilon=1e-12)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.sin(layer(x)))
    opt.apply_gradients(zip(tape.gradient(loss, layer.trainable_variables),
                            layer.trainable_variables))
    step = np.abs(layer.effective_weights()[0].numpy() - before)
    # rtol 1e-2: at s = 1e-2 the stored weights are ~30, where float32 resolves ~2e-6.
    np.testing.assert_allclose(step, step_scale * 1e-3, rtol=1e-2)

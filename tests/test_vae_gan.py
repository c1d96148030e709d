"""VAE-GAN: who moves what, the discriminator's sign, and exact resumption of three optimizers."""

import numpy as np
import pytest

import tfvae
from tfvae._tf import tf, tfk, tfp
from tfvae.apps import train as train_app
from tfvae.callbacks import hooks as hooks_lib
from tfvae.models.vae_gan import VAEGAN

SMALL = dict(latent_dim=4, hidden_units=(8, 16), discriminator_units=(8, 8, 16),
             feature_layer=2)


def _x(n=32):
    x, _ = tfvae.data.load_arrays("synthetic", "train")
    return (x[:n] / 255.0).astype(np.float32)


def _model(seed=0, **kwargs):
    model = VAEGAN(seed=seed, **{**SMALL, **kwargs})
    model.compile(optimizer=tfk.optimizers.Adam(1e-3))
    model.optimizer.build(model.encoder_variables())
    return model


def _values(variables):
    return [v.numpy().copy() for v in variables]


def _moved(before, variables):
    return [not np.array_equal(b, v.numpy()) for b, v in zip(before, variables)]


def _force_gates(model, decoder, discriminator):
    model.gates = lambda real, fake: (tf.constant(decoder), tf.constant(discriminator))


@pytest.mark.parametrize("decoder,discriminator", [(True, True), (True, False),
                                                   (False, True)])
def test_each_optimizer_moves_only_its_own_network(decoder, discriminator):
    model = _model()
    enc, dec, dis = (model.encoder_variables(), model.decoder_variables(),
                     model.discriminator_variables())
    refs = [{v.ref() for v in group} for group in (enc, dec, dis)]
    assert all(not (a & b) for i, a in enumerate(refs) for b in refs[i + 1:])
    assert set().union(*refs) == {v.ref() for v in model.trainable_variables}
    before = [_values(g) for g in (enc, dec, dis)]
    _force_gates(model, decoder, discriminator)
    logs = model.train_step(tf.constant(_x()))
    assert all(_moved(before[0], enc))
    assert all(_moved(before[1], dec)) if decoder else not any(_moved(before[1], dec))
    assert all(_moved(before[2], dis)) if discriminator else not any(_moved(before[2], dis))
    # A skipped update is no step: its optimizer's counter stays.
    assert int(model.decoder_optimizer.iterations.numpy()) == int(decoder)
    assert int(model.discriminator_optimizer.iterations.numpy()) == int(discriminator)
    assert float(logs["decoder_updated"]) == float(decoder)


@pytest.mark.parametrize("reconstructions", [True, False])
def test_the_gan_loss_never_reaches_the_encoder(reconstructions):
    model = _model(discriminate_reconstructions=reconstructions)
    x = tf.constant(_x())
    enc = model.encoder_variables()
    with tf.GradientTape(persistent=True) as tape:
        out = model.vae_gan_losses(x, training=True, seed=3)
    for key in ("gan_value", "generator_loss", "discriminator_loss"):
        grads = tape.gradient(out[key], enc, unconnected_gradients="zero")
        assert all(float(tf.reduce_max(tf.abs(g))) == 0.0 for g in grads), key
    # ...while the feature loss does reach it (the test could fail).
    grads = tape.gradient(out["feature_loss"], enc, unconnected_gradients="zero")
    assert sum(float(tf.reduce_sum(tf.abs(g))) for g in grads) > 0
    # Hence the encoder's step is the same whatever the decoder's GAN settings are.
    stepped = []
    for gamma, generator in ((1e-2, "minimax"), (5.0, "non_saturating")):
        tfk.utils.set_random_seed(5)  # equal initial weights
        m = _model(gamma=gamma, generator=generator,
                   discriminate_reconstructions=reconstructions)
        m.train_step(x)
        stepped.append((_values(m.encoder_variables()), _values(m.decoder_variables())))
    for a, b in zip(stepped[0][0], stepped[1][0]):
        np.testing.assert_array_equal(a, b)
    assert any(not np.allclose(a, b) for a, b in zip(stepped[0][1], stepped[1][1]))


@pytest.mark.parametrize("reconstructions", [True, False])
def test_the_gan_value_matches_an_independent_computation(reconstructions):
    # L_GAN from Dis and Dec run here by hand on the same draws: with reconstructions, the
    # fake half averages Dis on Dec(z ~ q) and Dec(z_p); without (the reference's
    # discriminate_ae_recon=False), it is Dis on Dec(z_p) alone.
    model = _model(discriminate_reconstructions=reconstructions, generator="non_saturating")
    x, seed = tf.constant(_x()), tf.constant([21, 22], tf.int32)
    out = model.vae_gan_losses(x, seed=seed)
    encode_seed, prior_seed = tfp.random.split_seed(seed, 2)
    z = model.forward(x, num_samples=1, seed=encode_seed, decode=False).z[0]
    z_p = model.prior.sample(len(_x()), seed=prior_seed)

    def logit(images):
        return model.discriminator(images)[0].numpy().astype(np.float64)

    softplus = lambda t: np.logaddexp(0.0, t)  # noqa: E731
    t_real, t_rec = logit(x), logit(model.decode(z).mean())
    t_prior = logit(model.decode(z_p).mean())
    fake = (0.5 * (softplus(t_rec).mean() + softplus(t_prior).mean()) if reconstructions
            else softplus(t_prior).mean())
    fool = (0.5 * (softplus(-t_rec).mean() + softplus(-t_prior).mean()) if reconstructions
            else softplus(-t_prior).mean())
    np.testing.assert_allclose(float(out["gan_value"]), -(softplus(-t_real).mean() + fake),
                               rtol=1e-5)
    np.testing.assert_allclose(float(out["generator_loss"]), fool, rtol=1e-5)
    # The two readings differ on these draws, so the comparison tells the settings apart.
    other = (softplus(t_prior).mean() if reconstructions
             else 0.5 * (softplus(t_rec).mean() + softplus(t_prior).mean()))
    assert abs(other - fake) > 1e-4
    np.testing.assert_allclose(float(out["accuracy_reconstructed"]), np.mean(t_rec < 0))


@pytest.mark.slow
def test_the_discriminator_ascends_l_gan_on_a_fixed_generator():
    model = _model(discriminator_lr=1e-3)
    model.optimizer.learning_rate.assign(0.0)   # the encoder stays where it is
    _force_gates(model, False, True)              # and the decoder is not stepped
    x = tf.constant(_x(64))
    dec = _values(model.decoder_variables())
    start = model.vae_gan_losses(x, seed=7)
    step = tf.function(model.train_step)
    for _ in range(40):
        step(x)
    end = model.vae_gan_losses(x, seed=7)
    assert not any(_moved(dec, model.decoder_variables()))
    assert float(end["gan_value"]) > float(start["gan_value"]) + 0.3
    assert float(end["discriminator_loss"]) < float(start["discriminator_loss"]) - 0.3
    assert float(end["accuracy_real"]) > 0.9 and float(end["accuracy_prior"]) > 0.9


def test_gates_follow_the_equilibrium_rule():
    model = _model()
    gates = lambda r, f: tuple(bool(g) for g in model.gates(tf.constant(r), tf.constant(f)))  # noqa: E731
    assert gates(0.69, 0.69) == (True, True)
    assert gates(0.2, 0.69) == (True, False)     # Dis too good: Dis waits
    assert gates(1.2, 0.69) == (False, True)     # Dis losing badly: the decoder waits
    assert gates(0.2, 1.2) == (True, True)       # both would wait: both step
    assert gates(0.2, 0.69) != (True, True)
    off = _model(gating=False)
    assert tuple(bool(g) for g in off.gates(tf.constant(0.2), tf.constant(0.69))) == (True, True)


class _Interrupt(Exception):
    pass


@pytest.mark.slow
def test_trains_on_synthetic_without_nan_and_resumes_exactly(tmp_path):
    state = {"step": None}

    class Stop(tfk.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if int(self.model.optimizer.iterations.numpy()) == state["step"]:
                raise _Interrupt()

    hooks_lib.register_callback("test_vae_gan_interrupt")(lambda context: Stop())
    try:
        argv = ["--config", "apps/vae_gan.toml", "--dataset", "synthetic", "--latent-dim", "4",
                "--hidden-units", "8", "16", "--set", "model.discriminator_units=[8, 8, 16]",
                "--set", "model.feature_layer=2", "--batch-size", "32", "--steps-per-epoch",
                "4", "--test-limit", "64", "--epochs", "2", "--checkpoint-every-steps", "2",
                "--steps-per-execution", "1", "--no-export", "--verbose", "0",
                "--logdir", str(tmp_path / "runs")]

        def run(name):
            cfg, recipe, args = train_app.parse(argv + ["--run-name", name])
            return train_app.train(cfg, recipe, args, out=lambda s: None)
        straight = run("straight")
        assert straight.iterations == 8
        assert all(np.isfinite(v) for v in straight.metrics.values()), straight.metrics
        state["step"] = 7   # killed during epoch 2; the last checkpoint is step 6
        with pytest.raises(_Interrupt):
            run("resumed")
        state["step"] = None
        resumed = run("resumed")
    finally:
        hooks_lib.EXTRA_CALLBACKS.unregister("test_vae_gan_interrupt")
    a, b = straight.model, resumed.model
    for u, v in zip(a.weights, b.weights):
        np.testing.assert_array_equal(u.numpy(), v.numpy(), err_msg=u.name)
    for name in ("optimizer", "decoder_optimizer", "discriminator_optimizer"):
        ou, ov = getattr(a, name), getattr(b, name)
        assert int(ou.iterations.numpy()) == int(ov.iterations.numpy()) > 0, name
        for u, v in zip(ou.variables, ov.variables):
            np.testing.assert_array_equal(u.numpy(), v.numpy(), err_msg=f"{name} {u.name}")


def test_export_has_no_log_likelihood_and_says_why(tmp_path):
    model = _model()
    model.fit(_x(), batch_size=32, epochs=1, verbose=0)
    tfvae.export.save(model, tmp_path / "m")
    meta = tfvae.export.load_metadata(str(tmp_path / "m"))
    assert sorted(meta["signatures"]) == ["decode", "encode", "reconstruct", "sample"]
    assert "not a density on pixels" in meta["log_likelihood"]["omitted"]
    with pytest.raises(ValueError, match="not a density on pixels"):
        tfvae.evaluation.log_likelihood(model, _x(4), num_samples=2)


@pytest.mark.parametrize("prior_weight", [1.0, 3.0])
def test_the_encoder_descends_prior_weight_times_kl_plus_the_feature_loss(prior_weight):
    # The encoder's step with plain SGD at rate 1 is minus its gradient, which must be
    # beta * grad L_prior + grad L_llike of the same draws, taken here independently.
    model = _model(prior_weight=prior_weight)
    model.optimizer = tfk.optimizers.SGD(1.0)
    x, seed = tf.constant(_x()), tf.constant([11, 12], tf.int32)
    model.next_seed = lambda: seed
    enc = model.encoder_variables()
    with tf.GradientTape(persistent=True) as tape:
        out = model.vae_gan_losses(x, training=True, seed=seed)
    g_kl = tape.gradient(out["kl"], enc, unconnected_gradients="zero")
    g_ll = tape.gradient(out["feature_loss"], enc, unconnected_gradients="zero")
    before = _values(enc)
    model.train_step(x)
    for b, v, a, c in zip(before, enc, g_kl, g_ll):
        expected = b - (prior_weight * a.numpy() + c.numpy())
        np.testing.assert_allclose(v.numpy(), expected, rtol=1e-4, atol=1e-5)
    # ...and the comparison can tell the weights apart: a step with another beta is off.
    other = 2.0 if prior_weight == 1.0 else 1.0
    assert not all(np.allclose(v.numpy(), b - (other * a.numpy() + c.numpy()), rtol=1e-4,
                               atol=1e-5) for b, v, a, c in zip(before, enc, g_kl, g_ll))


def test_prior_weight_must_be_positive():
    with pytest.raises(ValueError, match="prior_weight"):
        VAEGAN(prior_weight=0.0, **SMALL)


def test_discriminate_reconstructions_must_be_a_bool():
    with pytest.raises((TypeError, ValueError), match="discriminate_reconstructions"):
        VAEGAN(discriminate_reconstructions="no", **SMALL)

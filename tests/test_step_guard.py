"""A non-finite loss or gradient never updates the weights: the step is skipped whole (weights
and Adam's moments bitwise unchanged), kept out of the epoch's means, and counted; the train
app's guard warns about a skipped step that training recovered from and stops on a streak."""

import numpy as np
import pytest

import tfvae
from tfvae._tf import tf, tfk
from tfvae.models import _guarded
from tfvae.optimizers import FlatAdam
from tfvae.apps._divergence import MAX_CONSECUTIVE_SKIPPED, Diverged, DivergenceGuard


def _model(jit, flat=False, **compile_kwargs):
    model = tfvae.VAE(input_shape=(28, 28, 1), latent_dim=2, hidden_units=(16,), seed=0)
    optimizer = FlatAdam(1e-2) if flat else tfk.optimizers.Adam(1e-2)
    model.compile(optimizer=optimizer, jit_compile=jit, **compile_kwargs)
    return model


def _good_and_bad(seed, value):
    """16 random images, and the same with `value` in one pixel."""
    x = np.random.default_rng(seed).random((16, 28, 28, 1)).astype(np.float32)
    bad = x.copy()
    bad[0, 0, 0, 0] = value
    return x, bad


def _batches(*arrays):
    return tf.data.Dataset.from_tensor_slices(np.concatenate(arrays)).batch(16)


@pytest.mark.parametrize("flat", [False, True], ids=["adam", "flat_adam"])
@pytest.mark.parametrize("jit", [False, True])
def test_a_nan_batch_is_skipped_whole_and_training_goes_on(jit, flat):
    rng = np.random.default_rng(1)
    x = rng.random((32, 28, 28, 1)).astype(np.float32)
    bad = x[:16].copy()
    bad[5, 3, 4, 0] = np.nan  # one pixel: every gradient it reaches is NaN
    model = _model(jit, flat)
    model.fit(_batches(x), epochs=1, verbose=0)  # Adam's moments exist and are non-zero
    weights = [v.numpy().copy() for v in model.trainable_variables]
    moments = [v.numpy().copy() for v in model.optimizer.variables[1:]]  # [0]: iterations
    history = model.fit(_batches(bad), epochs=1, verbose=0).history
    for before, v in zip(weights + moments, model.trainable_variables +
                         model.optimizer.variables[1:]):
        np.testing.assert_array_equal(before, v.numpy(), err_msg=v.name)
    assert int(model.optimizer.iterations.numpy()) == 3  # the skipped step still counts
    guard = model.step_guard
    assert (int(guard.skipped.numpy()), int(guard.streak.numpy())) == (1, 1)
    assert int(guard.last_step.numpy()) == 2 and "loss" in guard.bad_names()
    assert history["loss"] == [0.0]  # no finite step: the mean has nothing, not a NaN
    # A second bad step extends the streak; a finite step after it trains as usual and
    # ends the streak.
    history = model.fit(_batches(bad, x[16:]), epochs=1, verbose=0).history
    assert np.isfinite(history["loss"][0]) and history["loss"][0] > 100  # the finite batch
    assert (int(guard.skipped.numpy()), int(guard.streak.numpy()),
            int(guard.longest.numpy())) == (2, 0, 2)
    assert not all(np.array_equal(a, v.numpy()) for a, v in zip(weights,
                                                                 model.trainable_variables))


def test_the_guard_warns_on_a_recovered_skip_and_stops_on_a_streak():
    x, bad = _good_and_bad(2, np.inf)
    lines = []
    model = _model(False)
    guard = DivergenceGuard(err=lines.append)
    model.fit(_batches(bad, x), epochs=1, verbose=0, callbacks=[guard])
    assert len(lines) == 1 and "skipped 1 optimizer step(s)" in lines[0] \
        and "at step 1" in lines[0] and "training went on" in lines[0], lines
    # A run that ends on a skipped step has not recovered, however short the streak.
    with pytest.raises(Diverged, match="1 optimizer step.* in a row skipped"):
        model.fit(_batches(x, bad), epochs=1, verbose=0, callbacks=[DivergenceGuard()])
    streak = [bad] * MAX_CONSECUTIVE_SKIPPED
    with pytest.raises(Diverged, match=f"diverged at step 6 .*{MAX_CONSECUTIVE_SKIPPED} "
                                       "optimizer step.* in a row skipped with loss nan"):
        model.fit(_batches(x, *streak, x), epochs=1, verbose=0, callbacks=[guard])


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("where", ["float32", "float64", "sliced"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_one_non_finite_gradient_element_skips_a_step_whose_loss_is_finite(jit, where, value):
    # Three variables of two dtypes, one gradient a tf.IndexedSlices; the loss is finite and
    # one element (not the first) of one gradient is not: the check must see every element.
    variables = [tf.Variable(np.ones((3, 4), np.float32)), tf.Variable(np.ones(5, np.float64)),
                 tf.Variable(np.ones((6, 2), np.float32))]
    optimizer = tfk.optimizers.SGD(0.5)

    @tf.function(jit_compile=jit)
    def step(bad):
        grads = [tf.fill([3, 4], 0.25), tf.fill([5], tf.constant(0.25, tf.float64)),
                 tf.IndexedSlices(tf.fill([2, 2], 0.25), tf.constant([1, 4]), tf.constant([6, 2]))]
        if bad:
            if where == "float32":
                grads[0] = tf.tensor_scatter_nd_update(grads[0], [[2, 1]], [value])
            elif where == "float64":
                grads[1] = tf.tensor_scatter_nd_update(grads[1], [[3]],
                                                       tf.constant([value], tf.float64))
            else:
                grads[2] = tf.IndexedSlices(tf.constant([[0.25, 0.25], [0.25, value]], tf.float32),
                                            grads[2].indices, grads[2].dense_shape)
        return _guarded.apply_if_finite(optimizer, tf.constant(1.5), grads, variables)

    before = [v.numpy().copy() for v in variables]
    assert not bool(step(True))
    for b, v in zip(before, variables):
        np.testing.assert_array_equal(b, v.numpy())
    assert int(optimizer.iterations.numpy()) == 1
    assert bool(step(False))  # the same step with finite gradients applies
    np.testing.assert_allclose(variables[0].numpy(), 1 - 0.5 * 0.25)
    np.testing.assert_allclose(variables[1].numpy(), 1 - 0.5 * 0.25)
    np.testing.assert_allclose(variables[2].numpy()[[1, 4]], 1 - 0.5 * 0.25)
    np.testing.assert_array_equal(variables[2].numpy()[[0, 2, 3, 5]], 1.0)


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("where", ["dense", "sliced", "loss"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_flat_adam_decides_on_its_own_flat_gradients(jit, where, value):
    # FlatAdam checks the gradients itself (the guard passes it only the loss's finiteness):
    # one element, not the first, of a dense or a tf.IndexedSlices gradient, or the loss,
    # skips the step whole and the decision says so; then a finite step is taken.
    variables = [tf.Variable(np.ones((3, 4), np.float32)),
                 tf.Variable(np.ones((6, 2), np.float32))]
    optimizer = FlatAdam(0.5)

    @tf.function(jit_compile=jit)
    def step(bad):
        loss = tf.constant(value if bad and where == "loss" else 1.5, tf.float32)
        grads = [tf.fill([3, 4], 0.25),
                 tf.IndexedSlices(tf.fill([2, 2], 0.25), tf.constant([1, 4]), tf.constant([6, 2]))]
        if bad and where == "dense":
            grads[0] = tf.tensor_scatter_nd_update(grads[0], [[2, 1]], [value])
        elif bad and where == "sliced":
            grads[1] = tf.IndexedSlices(tf.constant([[0.25, 0.25], [0.25, value]], tf.float32),
                                        grads[1].indices, grads[1].dense_shape)
        return _guarded.apply_if_finite(optimizer, loss, grads, variables)

    assert bool(step(False))
    before = [v.numpy().copy() for v in variables] + [optimizer.m.numpy(), optimizer.v.numpy()]
    assert np.any(before[2] != 0)  # moments to keep
    assert not bool(step(True))
    after = [v.numpy() for v in variables] + [optimizer.m.numpy(), optimizer.v.numpy()]
    for b, a in zip(before, after):
        np.testing.assert_array_equal(b, a)
    assert int(optimizer.iterations.numpy()) == 2
    assert bool(step(False))
    assert np.all(variables[0].numpy() < before[0])  # the finite step moved them


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("flat", [False, True], ids=["adam", "flat_adam"])
def test_a_finite_gradient_whose_square_overflows_is_skipped(jit, flat):
    # Adam squares each gradient into v: 2e19^2 overflows float32 (max ~3.4e38), so v would
    # turn infinite, and NaN at the next such step, with the weights after it, although
    # every gradient was finite. 1e19 (square 1e38) is still a step.
    variables = [tf.Variable(np.ones((3, 4), np.float32)), tf.Variable(np.ones(5, np.float32))]
    optimizer = FlatAdam(0.5) if flat else tfk.optimizers.Adam(0.5)

    @tf.function(jit_compile=jit)
    def step(big):
        grads = [tf.fill([3, 4], 0.25), tf.tensor_scatter_nd_update(tf.fill([5], 0.25),
                                                                    [[3]], [big])]
        return _guarded.apply_if_finite(optimizer, tf.constant(1.5), grads, variables)

    assert bool(step(0.25))
    moments = lambda: [v.numpy().copy() for v in optimizer.variables[1:]]  # noqa: E731
    before = [v.numpy().copy() for v in variables] + moments()
    assert not bool(step(2e19))
    for b, a in zip(before, [v.numpy() for v in variables] + moments()):
        np.testing.assert_array_equal(b, a)
    assert bool(step(-1e19))
    after = [v.numpy() for v in variables] + moments()
    assert all(np.isfinite(a).all() for a in after)
    assert variables[1].numpy()[3] > before[1][3]  # the big negative gradient moved it up
    assert np.max(after[-1]) > 1e34  # v holds the square: 1e38 (1 - beta_2)


def test_weights_finite_checks_each_model_and_its_optimizer():
    # One traced function serves every model: it must read the variables it is given, not
    # those of the first model it saw.
    from tfvae.callbacks.checkpoint import weights_finite
    a, b = _model(False, flat=True), _model(False)
    x = np.random.default_rng(3).random((16, 28, 28, 1)).astype(np.float32)
    for model in (a, b):
        model.fit(x, epochs=1, batch_size=16, verbose=0)
    assert weights_finite(a) and weights_finite(b)
    b.decoder.variables[-1].assign(tf.fill(b.decoder.variables[-1].shape, np.inf))
    assert weights_finite(a) and not weights_finite(b)
    a.optimizer.v.assign(tf.tensor_scatter_nd_update(a.optimizer.v, [[7]], [np.nan]))
    assert not weights_finite(a)


class _PoisonAfterFirstCall(tfk.callbacks.Callback):
    """Puts a NaN in one weight after the first call into the train loop."""

    def on_train_batch_end(self, batch, logs=None):
        if batch == 0 and int(self.model.optimizer.iterations.numpy()) == 1:
            w = self.model.decoder.variables[-1]
            w.assign(tf.tensor_scatter_nd_update(w, [[0]], [np.nan]))


@pytest.mark.parametrize("guarded", [True, False])
def test_the_guard_checks_weights_every_call_only_for_an_unguarded_step(guarded):
    # A guarded step skips what a NaN weight makes non-finite, so the guard reads every
    # weight at epoch ends only; a model whose step applies anything is checked every call.
    x = np.random.default_rng(4).random((64, 28, 28, 1)).astype(np.float32)
    model = _model(False, flat=True, steps_per_execution=1)
    if not guarded:
        model.guards_steps = False
    with pytest.raises(Diverged) as raised:
        model.fit(x, epochs=2, batch_size=16, verbose=0,
                  callbacks=[_PoisonAfterFirstCall(), DivergenceGuard(err=lambda s: None)])
    if guarded:  # the three steps after it were skipped; the first epoch's end (not the
        # run's, which would stop on the streak first) found the weight
        assert "a step in 1..4 (weights nan)" in str(raised.value)
        assert int(model.step_guard.skipped.numpy()) == 3
    else:
        assert "at step 1 (weights nan)" in str(raised.value)
        assert int(model.optimizer.iterations.numpy()) == 1


def test_a_run_ending_on_skipped_steps_stops_at_the_last_epochs_end():
    # Raised from the guard's on_epoch_end, before the callbacks after it (summaries, the
    # decomposition, the checkpoint) describe a run that did not recover.
    x, bad = _good_and_bad(5, np.nan)
    seen = []

    class After(tfk.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(epoch)

    model = _model(False)
    with pytest.raises(Diverged, match="at step 4 .*1 optimizer step.* in a row skipped"):
        model.fit(_batches(x, bad), epochs=2, verbose=0,
                  callbacks=[DivergenceGuard(err=lambda s: None), After()])
    assert seen == [0]  # the first epoch ended on a skipped step too, and training went on

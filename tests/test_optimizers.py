"""`tfvae.optimizers.FlatAdam` is tf_keras' Adam with flat moments: the same weights step
for step (with a schedule and clipping, eager, traced and under XLA), a skipped step that
leaves every variable bit for bit, variables without a gradient left alone, an exact resume
from a checkpoint, and the same result on two mirrored replicas as on one device."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tfvae._tf import tf, tfk
from tfvae.optimizers import FlatAdam

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHAPES = [(7, 3), (3,), (2, 2, 2), (1,)]


def _problem(seed, steps=20):
    rng = np.random.default_rng(seed)
    init = [rng.normal(size=s).astype(np.float32) for s in SHAPES]
    # Gradients of mixed scales, so clipping and the second moment both matter.
    grads = [[(rng.normal(size=s) * 10.0 ** rng.integers(-3, 2)).astype(np.float32)
              for s in SHAPES] for _ in range(steps)]
    return init, grads


def _train(optimizer, init, grads, mode, drop=None):
    """Weights after applying `grads` step by step; `drop`: index of a variable given no
    gradient at all."""
    variables = [tf.Variable(x) for x in init]
    optimizer.build(variables)  # every variable, as the train step builds it

    def apply(gs):
        pairs = [(g, v) for i, (g, v) in enumerate(zip(gs, variables)) if i != drop]
        optimizer.apply_gradients(pairs)

    if mode != "eager":
        apply = tf.function(apply, jit_compile=mode == "xla")
    for gs in grads:
        apply([tf.constant(g) for g in gs])
    return [v.numpy() for v in variables]


def _schedule():
    return tfk.optimizers.schedules.CosineDecay(0.0, 15, warmup_target=3e-2, warmup_steps=5)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("mode", ["eager", "graph", "xla"])
def test_flat_adam_takes_keras_adams_steps(seed, mode):
    init, grads = _problem(seed)
    kwargs = dict(beta_1=0.8, beta_2=0.99, epsilon=1e-6, global_clipnorm=5.0)
    want = _train(tfk.optimizers.Adam(_schedule(), **kwargs), init, grads, mode)
    got = _train(FlatAdam(_schedule(), **kwargs), init, grads, mode)
    moved = max(float(np.max(np.abs(w - i))) for w, i in zip(want, init))
    assert moved > 0.05  # the weights travelled: a no-op optimizer would fail below
    for w, g in zip(want, got):
        if mode == "xla":  # XLA may contract a multiply-add: a few ulps
            np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-7)
        else:  # the same operations in the same order
            np.testing.assert_array_equal(g, w)
    # And both are Adam: an independent float64 NumPy Adam, step by step.
    reference = _numpy_adam(init, grads, [float(_schedule()(t)) for t in range(len(grads))],
                            **kwargs)
    for r, g in zip(reference, got):
        np.testing.assert_allclose(g, r, rtol=0, atol=1e-5 * moved)


def _numpy_adam(init, grads, lrs, beta_1, beta_2, epsilon, global_clipnorm):
    """Adam (Kingma & Ba, 2015, with the epsilon outside the square root) in float64."""
    w = [x.astype(np.float64) for x in init]
    m = [np.zeros_like(x) for x in w]
    v = [np.zeros_like(x) for x in w]
    for t, gs in enumerate(grads, start=1):
        gs = [g.astype(np.float64) for g in gs]
        norm = np.sqrt(sum(float(np.sum(g * g)) for g in gs))
        gs = [g * global_clipnorm / max(norm, global_clipnorm) for g in gs]
        alpha = lrs[t - 1] * np.sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t)
        for i, g in enumerate(gs):
            m[i] = beta_1 * m[i] + (1 - beta_1) * g
            v[i] = beta_2 * v[i] + (1 - beta_2) * g * g
            w[i] = w[i] - alpha * m[i] / (np.sqrt(v[i]) + epsilon)
    return w


@pytest.mark.parametrize("seed", [0, 1])
def test_a_variable_without_a_gradient_keeps_its_weights_and_moments(seed):
    init, grads = _problem(seed, steps=8)
    want = _train(tfk.optimizers.Adam(1e-2), init, grads, "eager", drop=2)
    got = _train(FlatAdam(1e-2), init, grads, "eager", drop=2)
    np.testing.assert_array_equal(got[2], init[2])
    for w, g in zip(want, got):
        np.testing.assert_array_equal(g, w)


def _variables_of(optimizer):
    return {v.name.split("/")[-1].split(":")[0]: v.numpy().copy()
            for v in optimizer.variables}


@pytest.mark.parametrize("jit", [False, True])
def test_a_step_that_is_not_finite_leaves_everything_bit_for_bit(jit):
    init, grads = _problem(3, steps=6)
    opt = FlatAdam(1e-2)
    variables = [tf.Variable(x) for x in init]

    @tf.function(jit_compile=jit)
    def step(gs, finite):
        opt.apply_gradients(zip(gs, variables), finite=finite)

    for gs in grads[:3]:
        step([tf.constant(g) for g in gs], tf.constant(True))
    weights = [v.numpy().copy() for v in variables]
    state = _variables_of(opt)
    bad = [g.copy() for g in grads[3]]
    bad[1][0] = np.nan
    step([tf.constant(g) for g in bad], tf.constant(False))
    for before, v in zip(weights, variables):
        np.testing.assert_array_equal(before, v.numpy())
    after = _variables_of(opt)
    np.testing.assert_array_equal(after["m"], state["m"])
    np.testing.assert_array_equal(after["v"], state["v"])
    assert int(opt.iterations.numpy()) == 4  # the skipped step counts, as in the guard's cond
    assert np.any(state["m"] != 0)  # there were moments to keep
    # The steps after it are those of Adam with that step skipped (its counter advanced).
    reference = tfk.optimizers.Adam(1e-2)
    ref_vars = [tf.Variable(x) for x in init]
    for i, gs in enumerate(grads[:6]):
        if i == 3:
            reference.iterations.assign_add(1)
        else:
            reference.apply_gradients(zip([tf.constant(g) for g in gs], ref_vars))
    for gs in grads[4:6]:
        step([tf.constant(g) for g in gs], tf.constant(True))
    for r, v in zip(ref_vars, variables):
        np.testing.assert_allclose(v.numpy(), r.numpy(), rtol=1e-6, atol=1e-7)


def test_a_checkpoint_resumes_exactly(tmp_path):
    init, grads = _problem(4, steps=10)
    straight = _train(FlatAdam(_schedule()), init, grads, "graph")

    opt = FlatAdam(_schedule())
    variables = [tf.Variable(x) for x in init]
    step = tf.function(lambda gs: opt.apply_gradients(zip(gs, variables)))
    for gs in grads[:6]:
        step([tf.constant(g) for g in gs])
    path = tf.train.Checkpoint(optimizer=opt, variables=variables).save(
        str(tmp_path / "ckpt"))

    fresh = FlatAdam(_schedule())
    restored = [tf.Variable(np.zeros_like(x)) for x in init]
    status = tf.train.Checkpoint(optimizer=fresh, variables=restored).restore(path)
    step = tf.function(lambda gs: fresh.apply_gradients(zip(gs, restored)))
    for gs in grads[6:]:
        step([tf.constant(g) for g in gs])
    status.assert_consumed()  # the flat moments were restored, not created anew
    assert int(fresh.iterations.numpy()) == 10
    for s, r in zip(straight, restored):
        np.testing.assert_array_equal(r.numpy(), s)


def test_config_round_trip_and_refusals():
    opt = FlatAdam(_schedule(), beta_1=0.7, global_clipnorm=2.0)
    again = FlatAdam.from_config(opt.get_config())
    assert (again.beta_1, again.global_clipnorm) == (0.7, 2.0)
    assert isinstance(again._learning_rate, tfk.optimizers.schedules.CosineDecay)
    for kwargs in ({"amsgrad": True}, {"weight_decay": 1e-4}, {"use_ema": True}):
        with pytest.raises(ValueError, match="FlatAdam does not support"):
            FlatAdam(1e-3, **kwargs)
    with pytest.raises(TypeError, match="one dtype"):
        FlatAdam(1e-3).build([tf.Variable([1.0]), tf.Variable([1.0], dtype=tf.float64)])
    opt = FlatAdam(1e-3)
    a, b = tf.Variable([1.0]), tf.Variable([2.0])
    opt.apply_gradients([(tf.constant([1.0]), a)])
    with pytest.raises(ValueError, match="built without variable"):
        opt.apply_gradients([(tf.constant([1.0]), b)])


MIRRORED = r"""
import json, sys
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from tfvae._tf import tfk
from tfvae.optimizers import FlatAdam
from tfvae.models._guarded import apply_if_finite

rng = np.random.default_rng(0)
x = rng.normal(size=(8, 5)).astype(np.float32)
y = rng.normal(size=(8, 2)).astype(np.float32)
w0 = rng.normal(size=(5, 2)).astype(np.float32)


def train(strategy, optimizer_cls):
    with strategy.scope():
        w = tf.Variable(w0)
        b = tf.Variable(np.zeros(2, np.float32))
        opt = optimizer_cls(3e-2, global_clipnorm=10.0)

    def replica_step(xb, yb):
        with tf.GradientTape() as tape:
            residual = tf.matmul(xb, w) + b - yb
            # The global mean: each replica's sum over the global batch.
            loss = tf.reduce_sum(tf.square(residual)) / 8.0
        grads = tape.gradient(loss, [w, b])
        return apply_if_finite(opt, loss, grads, [w, b])

    dataset = strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensor_slices((x, y)).batch(8).repeat(6))

    @tf.function
    def step(batch):
        return strategy.run(replica_step, args=batch)

    for batch in dataset:
        step(batch)
    return np.concatenate([w.numpy().ravel(), b.numpy()])


one = train(tf.distribute.get_strategy(), FlatAdam)
mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
two = train(mirrored, FlatAdam)
keras_two = train(mirrored, tfk.optimizers.Adam)
print(json.dumps({"moved": float(np.max(np.abs(one[:10] - w0.ravel()))),
                  "flat_two": float(np.max(np.abs(two - one))),
                  "keras_two": float(np.max(np.abs(keras_two - one)))}))
"""


@pytest.mark.slow
def test_two_mirrored_replicas_take_the_one_device_steps():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, "-c", MIRRORED], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["moved"] > 0.05, r
    # Each replica's copy took the step of the summed gradient (float32 sums in another
    # order), as tf_keras' Adam does.
    assert r["flat_two"] < 1e-4 * r["moved"], r
    assert r["keras_two"] < 1e-4 * r["moved"], r

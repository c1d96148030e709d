"""Likelihood heads against their closed forms, and the registry contract."""

import numpy as np
import pytest

from tfvae._tf import tf
from tfvae.registry import LIKELIHOODS

SHAPE = (2, 3, 4, 4, 1)  # [S, B, H, W, C]


def _data(seed=0):
    r = np.random.default_rng(seed)
    return (r.uniform(size=SHAPE[1:]).astype(np.float32),
            r.normal(size=SHAPE).astype(np.float32))


def test_bernoulli_is_minus_summed_binary_cross_entropy():
    x, logits = _data()
    x = (x > 0.5).astype(np.float32)
    p = 1 / (1 + np.exp(-logits.astype(np.float64)))
    bce = -(x * np.log(p) + (1 - x) * np.log(1 - p))
    expected = -bce.sum(axis=(-3, -2, -1))
    p_x = LIKELIHOODS.get("bernoulli")(validate_args=True)(tf.constant(logits))
    assert p_x.batch_shape == SHAPE[:2] and p_x.event_shape == SHAPE[2:]
    np.testing.assert_allclose(p_x.log_prob(x).numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(p_x.mean().numpy(), p, rtol=1e-5)


def test_bernoulli_on_grey_levels_is_the_continuous_cross_entropy():
    x, logits = _data(1)
    p = 1 / (1 + np.exp(-logits.astype(np.float64)))
    expected = np.sum(x * np.log(p) + (1 - x) * np.log(1 - p), axis=(-3, -2, -1))
    p_x = LIKELIHOODS.get("bernoulli")()(tf.constant(logits))
    np.testing.assert_allclose(p_x.log_prob(x).numpy(), expected, rtol=1e-5)


def test_normal_unit_scale_is_half_squared_error():
    x, loc = _data(2)
    d = np.prod(SHAPE[2:])
    expected = -0.5 * np.sum((x - loc) ** 2, axis=(-3, -2, -1)) - 0.5 * d * np.log(2 * np.pi)
    p_x = LIKELIHOODS.get("normal")(validate_args=True)(tf.constant(loc))
    np.testing.assert_allclose(p_x.log_prob(x).numpy(), expected, rtol=1e-5)


def test_normal_fixed_sigma():
    x, loc = _data(3)
    sigma = 0.3
    z2 = ((x - loc) / sigma) ** 2
    expected = np.sum(-0.5 * z2 - np.log(sigma) - 0.5 * np.log(2 * np.pi), axis=(-3, -2, -1))
    p_x = LIKELIHOODS.get("normal")(sigma=sigma)(tf.constant(loc))
    np.testing.assert_allclose(p_x.log_prob(x).numpy(), expected, rtol=1e-5)


def test_per_pixel_scale_is_learned_and_shared_across_images():
    head = LIKELIHOODS.get("normal")(scale="per_pixel", sigma=0.5)
    x, loc = _data(4)
    p_x = head(tf.constant(loc))
    np.testing.assert_allclose(p_x.distribution.scale.numpy(), 0.5, rtol=1e-5)
    assert [v.shape for v in head.trainable_variables] == [SHAPE[2:]]
    with tf.GradientTape() as tape:
        loss = -tf.reduce_sum(head(tf.constant(loc)).log_prob(x))
    assert np.abs(tape.gradient(loss, head.trainable_variables)[0].numpy()).max() > 0


def test_heteroscedastic_scale_has_a_floor():
    head = LIKELIHOODS.get("normal")(scale="heteroscedastic", min_scale=0.05)
    assert head.params_per_channel == 2
    loc = np.zeros(SHAPE, np.float32)
    raw = np.full(SHAPE, -1e4, np.float32)  # would drive an unbounded sigma to 0
    p_x = head(tf.constant(np.concatenate([loc, raw], -1)))
    assert p_x.event_shape == SHAPE[2:]
    np.testing.assert_allclose(p_x.distribution.scale.numpy(), 0.05, rtol=1e-6)
    # The density at a perfect reconstruction stays finite: -log(0.05 sqrt(2 pi)) per pixel.
    expected = np.prod(SHAPE[2:]) * -np.log(0.05 * np.sqrt(2 * np.pi))
    np.testing.assert_allclose(p_x.log_prob(np.zeros(SHAPE[1:], np.float32)).numpy(), expected,
                               rtol=1e-5)


@pytest.mark.parametrize("name,kwargs", [("bernoulli", {}), ("normal", {}),
                                         ("normal", {"scale": "per_pixel"}),
                                         ("normal", {"scale": "heteroscedastic"})])
def test_likelihood_contract(name, kwargs):
    head = LIKELIHOODS.get(name)(validate_args=True, **kwargs)
    x, params = _data(5)
    params = np.concatenate([params] * head.params_per_channel, -1)
    with tf.GradientTape() as tape:
        t = tf.constant(params)
        tape.watch(t)
        lp = head(t).log_prob(x)
    assert lp.shape == SHAPE[:2]
    g = tape.gradient(lp, t).numpy()
    assert np.all(np.isfinite(g)) and np.abs(g).max() > 0


def test_likelihood_bad_arguments():
    with pytest.raises(ValueError, match="`scale` must be one of"):
        LIKELIHOODS.get("normal")(scale="learned")
    with pytest.raises(ValueError, match="`sigma` must be positive"):
        LIKELIHOODS.get("normal")(sigma=0)
    with pytest.raises(ValueError, match="Unknown likelihood 'gaussian'"):
        LIKELIHOODS.get("gaussian")
    with pytest.raises(ValueError, match=r"needs `x` in \[0, 1\]"):
        LIKELIHOODS.get("bernoulli")().check_values(np.array([0.0, 255.0]))

"""SPAM against NumPy re-implementations of each of its formulas."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optaxswap as osw
from optaxswap import recipes

B1, B2, EPS = 0.9, 0.999, 1e-8


def _numpy_warmup_scale(s, warmup):
    """1 - 0.99 * (1 + cos(pi * s / (warmup + 1))) / 2 while s < warmup."""
    if s >= warmup:
        return 1.0
    return 1.0 - 0.99 * (1.0 + math.cos(math.pi * s / (warmup + 1))) / 2.0


def _numpy_spam(grads, *, lr, interval, warmup, threshold, clip_delay):
    """SPAM update by update, in float64: returns each update."""
    m = np.zeros_like(grads[0], np.float64)
    v = np.zeros_like(m)
    since_reset, updates = 0, []
    for t, g in enumerate(grads, start=1):
        g = np.asarray(g, np.float64)
        if t - 1 > 0 and (t - 1) % interval == 0:
            m, v, since_reset = np.zeros_like(m), np.zeros_like(v), 0
        if threshold is not None and since_reset >= clip_delay:
            spike = g**2 > threshold * v
            g = np.where(spike, np.sign(g) * np.sqrt(threshold * v), g)
        m = B1 * m + (1 - B1) * g
        v = B2 * v + (1 - B2) * g**2
        m_hat, v_hat = m / (1 - B1**t), v / (1 - B2**t)
        scale = _numpy_warmup_scale(since_reset, warmup)
        updates.append(-lr * scale * m_hat / (np.sqrt(v_hat) + EPS))
        since_reset += 1
    return np.stack(updates)


def _gradients_with_spikes(num_updates):
    rng = np.random.default_rng(1)
    grads = rng.normal(size=(num_updates, 5)).astype(np.float32)
    grads[9, 2] = 400.0  # well past the clipping delay: clipped
    grads[13, 0] = -900.0  # first update after the reset at 12: not clipped
    grads[17, 4] = 250.0  # clipped again
    return grads


def _run(tx, grads):
    state = tx.init(jnp.zeros(grads.shape[1]))

    @jax.jit
    def step(grad, state):
        return tx.update(grad, state, jnp.zeros_like(grad))

    updates = []
    for grad in grads:
        update, state = step(jnp.asarray(grad), state)
        updates.append(update)
    return np.stack(updates), state


@pytest.mark.parametrize("threshold", [50.0, None])
def test_spam_updates_match_numpy_reference(threshold):
    grads = _gradients_with_spikes(24)
    config = dict(interval=6, warmup=4, threshold=threshold, clip_delay=2)
    expected = _numpy_spam(grads, lr=0.01, **config)
    actual, state = _run(recipes.spam(0.01, **config), grads)
    np.testing.assert_allclose(actual, expected, rtol=2e-5, atol=1e-7)
    assert int(osw.reset_count(state)) == 3


def test_spam_clips_a_spike_to_sqrt_of_threshold_times_nu():
    threshold = 20.0
    tx = recipes.spam(0.01, interval=100, warmup=0, threshold=threshold, clip_delay=3)
    params = jnp.zeros(3)
    state = tx.init(params)
    for grad in ([1.0, -0.5, 0.2], [0.8, -0.7, 0.1], [1.2, -0.4, 0.3]):
        _, state = tx.update(jnp.asarray(grad), state, params)
    nu = np.asarray(state.inner_state[0].adam.nu)
    mu = np.asarray(state.inner_state[0].adam.mu)
    spike = np.array([-50.0, 0.1, 0.25], np.float32)
    _, state = tx.update(jnp.asarray(spike), state, params)
    # What Adam's first moment received: (mu_new - b1 * mu) / (1 - b1).
    received = (np.asarray(state.inner_state[0].adam.mu) - B1 * mu) / (1 - B1)
    expected = np.where(
        spike**2 > threshold * nu, np.sign(spike) * np.sqrt(threshold * nu), spike
    )
    assert spike[0] ** 2 > threshold * nu[0] and spike[1] ** 2 < threshold * nu[1]
    np.testing.assert_allclose(received, expected, rtol=1e-5)


def test_spam_reset_zeroes_moments_but_keeps_the_adam_count():
    tx = recipes.spam(0.01, interval=3, warmup=2, threshold=None)
    params = jnp.zeros(2)
    state = tx.init(params)
    for _ in range(3):
        _, state = tx.update(jnp.array([1.0, -2.0]), state, params)
    grad = np.array([0.5, 3.0], np.float32)
    _, state = tx.update(jnp.asarray(grad), state, params)
    spam_state = state.inner_state[0]
    assert int(osw.reset_count(state)) == 1
    assert int(spam_state.adam.count) == 4
    assert int(spam_state.steps_since_reset) == 1
    np.testing.assert_allclose(spam_state.adam.mu, (1 - B1) * grad, rtol=1e-6)
    np.testing.assert_allclose(spam_state.adam.nu, (1 - B2) * grad**2, rtol=1e-6)


@pytest.mark.parametrize("warmup", [0, 1, 5, 150])
def test_spam_warmup_scale_follows_the_cosine_formula(warmup):
    steps = np.arange(warmup + 3, dtype=np.int32)
    actual = jax.vmap(lambda s: recipes.spam_warmup_scale(s, warmup))(steps)
    expected = [_numpy_warmup_scale(int(s), warmup) for s in steps]
    # float32 round-off of 1 - 0.99 * c, near 0.01 where c is near 1.
    np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=2e-7)
    assert actual.dtype == jnp.float32


def test_spam_keeps_bfloat16_dtypes():
    tx = recipes.spam(0.01, interval=2, warmup=1, clip_delay=1)
    params = jnp.ones(4, jnp.bfloat16)
    state = tx.init(params)
    before = jax.tree.map(lambda x: x.dtype, state)
    for _ in range(5):
        updates, state = tx.update(jnp.ones(4, jnp.bfloat16), state, params)
    assert updates.dtype == jnp.bfloat16
    assert jax.tree.map(lambda x: x.dtype, state) == before


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        (dict(interval=0), ValueError, "interval"),
        (dict(warmup=-1), ValueError, "warmup"),
        (dict(warmup=2.5), TypeError, "warmup"),
        (dict(threshold=0.0), ValueError, "threshold"),
        (dict(threshold=float("inf")), ValueError, "threshold"),
        (dict(clip_delay=-1), ValueError, "clip_delay"),
        (dict(b2=1.0), ValueError, "b2"),
        (dict(learning_rate=-1e-3), ValueError, "learning_rate"),
    ],
)
def test_spam_rejects_bad_arguments_naming_them(kwargs, error, name):
    with pytest.raises(error, match=name):
        recipes.spam(**kwargs)

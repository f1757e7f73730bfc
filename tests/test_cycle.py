"""``switch(..., cycle=True)`` against a manual loop that re-instantiates."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optaxswap as osw


def _grad(params):
    return jax.grad(lambda p: jnp.sum(jnp.cos(p) + 0.1 * p**2))(params)


def _phases():
    return [
        optax.adam(0.05),
        optax.sgd(0.1, momentum=0.9),
        optax.rmsprop(0.01),
    ]


def _manual_cycle(transforms, boundaries, num_updates, params):
    """Re-instantiates the next optimizer (wrapping around) at each boundary."""
    phase, state = 0, transforms[0].init(params)
    trajectory, phases = [], []
    for t in range(num_updates):
        if t in boundaries:
            phase = (phase + 1) % len(transforms)
            state = transforms[phase].init(params)
        updates, state = transforms[phase].update(_grad(params), state, params)
        params = optax.apply_updates(params, updates)
        trajectory.append(params)
        phases.append(phase)
    return np.stack(trajectory), phases


def _run(tx, num_updates, params):
    state = tx.init(params)

    @jax.jit
    def step(params, state):
        updates, state = tx.update(_grad(params), state, params)
        return optax.apply_updates(params, updates), state

    trajectory, phases = [], []
    for _ in range(num_updates):
        params, state = step(params, state)
        trajectory.append(params)
        is_switch = isinstance(state, osw.SwitchState)
        phases.append(int(osw.phase(state)) if is_switch else None)
    return np.stack(trajectory), phases, state


@pytest.mark.parametrize("share_memory", [False, True])
def test_cycle_returns_to_a_freshly_initialized_first_phase(share_memory):
    boundaries = [2, 5, 6, 9, 12]
    params = jnp.array([0.3, -1.2, 2.0])
    expected, expected_phases = _manual_cycle(_phases(), boundaries, 14, params)
    tx = osw.switch(
        _phases(), osw.at_steps(boundaries), cycle=True, share_memory=share_memory
    )
    actual, phases, _ = _run(tx, 14, params)
    assert phases == expected_phases
    assert phases == [0, 0, 1, 1, 1, 2, 0, 0, 0, 1, 1, 1, 2, 2]
    np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-7)


def test_cycle_over_one_transform_resets_it_like_resettable():
    params = jnp.array([0.3, -1.2, 2.0])
    expected, _, _ = _run(osw.resettable(optax.adam(0.05), osw.every(3)), 10, params)
    actual, phases, _ = _run(
        osw.switch([optax.adam(0.05)], osw.every(3), cycle=True), 10, params
    )
    assert phases == [0] * 10
    np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-7)


def test_without_cycle_the_last_phase_stays_and_keeps_its_state():
    boundaries = [2, 4, 6, 8]
    params = jnp.array([0.3, -1.2, 2.0])
    tx = osw.switch(_phases()[:2], osw.at_steps(boundaries))
    actual, phases, _ = _run(tx, 10, params)
    assert phases == [0, 0, 1, 1, 1, 1, 1, 1, 1, 1]
    expected, _ = _manual_cycle(_phases()[:2], boundaries[:1], 10, params)
    np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-7)


def test_cycle_requests_wrap_around_and_reinitialize_the_phase_left():
    tx = osw.switch(
        [optax.sgd(0.1, momentum=0.9), optax.adam(0.1)], osw.never(), cycle=True
    )
    params = jnp.array([1.0, 2.0])
    state = tx.init(params)
    for _ in range(3):
        _, state = tx.update(jnp.ones(2), state, params)
    state = osw.request_switch(state)
    _, state = tx.update(jnp.ones(2), state, params)
    assert int(osw.phase(state)) == 1
    # Left, so re-initialized: no lookup finds the old momentum.
    jax.tree.map(
        np.testing.assert_array_equal,
        state.inner_states[0],
        optax.sgd(0.1, momentum=0.9).init(params),
    )
    _, state = tx.update(jnp.ones(2), osw.request_switch(state), params)
    assert int(osw.phase(state)) == 0
    # Re-entered fresh: one update on a zero momentum gives trace == grads.
    np.testing.assert_array_equal(state.inner_states[0][0].trace, np.ones(2))


def test_cycle_keeps_the_state_structure_and_compiles_once():
    tx = osw.switch(_phases(), osw.every(2), cycle=True)
    params = jnp.array([0.3, -1.2], jnp.bfloat16)
    state = tx.init(params)
    before = jax.tree.map(lambda x: (x.shape, x.dtype, x.weak_type), state)
    traces = []

    @jax.jit
    def step(params, state):
        traces.append(None)
        updates, state = tx.update(jnp.ones_like(params), state, params)
        return optax.apply_updates(params, updates), state

    for _ in range(9):
        params, state = step(params, state)
    assert int(osw.phase(state)) == 1  # fires on 2, 4, 6, 8: 0 1 2 0 1
    assert len(traces) == 1
    assert jax.tree.map(lambda x: (x.shape, x.dtype, x.weak_type), state) == before

"""Adam-Rel and target-sync resets against NumPy and manual references."""

import pathlib
import runpy

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optaxswap as osw
from optaxswap import recipes

B1, B2, EPS = 0.9, 0.999, 1e-8
SYNCS = (3, 7, 8)
EXAMPLE = pathlib.Path(__file__).parent.parent / "examples" / "rl_target_sync.py"


def _gradients(num_updates):
    return np.random.default_rng(2).normal(size=(num_updates, 4)).astype(np.float32)


def _numpy_adam_rel(grads, lr, syncs):
    """Adam with t counted from the last sync (t = 1 on the sync update)."""
    m = np.zeros(grads.shape[1])
    v = np.zeros_like(m)
    t, updates = 0, []
    for step, g in enumerate(grads.astype(np.float64)):
        t = 1 if step in syncs else t + 1
        m = B1 * m + (1 - B1) * g
        v = B2 * v + (1 - B2) * g**2
        m_hat, v_hat = m / (1 - B1**t), v / (1 - B2**t)
        updates.append(-lr * m_hat / (np.sqrt(v_hat) + EPS))
    return np.stack(updates)


def _run(tx, grads, synced_on):
    params = jnp.zeros(grads.shape[1])
    state = tx.init(params)

    @jax.jit
    def step(grad, state, synced):
        return tx.update(grad, state, params, target_synced=synced)

    updates = []
    for t, grad in enumerate(grads):
        update, state = step(jnp.asarray(grad), state, jnp.asarray(t in synced_on))
        updates.append(update)
    return np.stack(updates), state


def test_adam_rel_restarts_the_step_count_and_keeps_the_moments():
    grads = _gradients(12)
    expected = _numpy_adam_rel(grads, 0.01, SYNCS)
    actual, state = _run(recipes.adam_rel(0.01), grads, SYNCS)
    np.testing.assert_allclose(actual, expected, rtol=2e-5, atol=1e-8)
    assert int(osw.reset_count(state)) == len(SYNCS)


def test_adam_rel_with_a_trigger_matches_the_same_syncs():
    grads = _gradients(12)
    expected = _numpy_adam_rel(grads, 0.01, (4, 8))
    actual, _ = _run(recipes.adam_rel(0.01, trigger=osw.every(4)), grads, ())
    np.testing.assert_allclose(actual, expected, rtol=2e-5, atol=1e-8)


def test_adam_rel_leaves_the_learning_rate_schedule_running():
    schedule = optax.linear_schedule(0.01, 0.0, transition_steps=10)
    grads = _gradients(8)
    _, state = _run(recipes.adam_rel(schedule), grads, (2, 5))
    adam_state, schedule_state = state[0].inner_state, state[1]
    assert int(adam_state.count) == 3  # updates 5, 6, 7
    assert int(schedule_state.count) == 8


def test_target_sync_reset_matches_reinstantiating_adam_at_each_sync():
    grads = _gradients(12)
    adam = optax.adam(0.01)
    state, expected = adam.init(jnp.zeros(4)), []
    for t, grad in enumerate(grads):
        if t in SYNCS:
            state = adam.init(jnp.zeros(4))
        update, state = adam.update(jnp.asarray(grad), state)
        expected.append(update)
    actual, state = _run(recipes.target_sync_reset(optax.adam(0.01)), grads, SYNCS)
    np.testing.assert_allclose(actual, np.stack(expected), rtol=1e-6, atol=1e-9)
    assert int(osw.reset_count(state)) == len(SYNCS)


def test_rl_recipes_do_not_fire_on_updates_without_the_signal():
    for tx in (recipes.adam_rel(0.01), recipes.target_sync_reset(optax.adam(0.01))):
        params = jnp.zeros(2)
        state = tx.init(params)
        for _ in range(3):
            _, state = tx.update(jnp.ones(2), state, params, other=1)
        assert int(osw.reset_count(state)) == 0
        _, state = tx.update(jnp.ones(2), osw.request_reset(state), params)
        assert int(osw.reset_count(state)) == 1


@pytest.mark.parametrize(
    ("factory", "kwargs", "error", "name"),
    [
        (recipes.adam_rel, dict(trigger=lambda c: True), TypeError, "trigger"),
        (recipes.adam_rel, dict(b1=-0.1), ValueError, "b1"),
        (recipes.adam_rel, dict(eps=float("inf")), ValueError, "eps"),
        (recipes.target_sync_reset, dict(inner="adam"), TypeError, "inner"),
    ],
)
def test_rl_recipes_reject_bad_arguments_naming_them(factory, kwargs, error, name):
    with pytest.raises(error, match=name):
        factory(**kwargs)


def test_rl_example_runs_in_fast_mode_and_resets_at_each_sync(capsys):
    results = runpy.run_path(str(EXAMPLE))["main"](["--fast"])
    assert set(results) == {"adam", "target_sync_reset", "adam_rel"}
    # 150 updates with a sync every 50: syncs before updates 50 and 100.
    assert [resets for _, _, resets in results.values()] == [0, 2, 2]
    assert all(np.isfinite(final) for final, _, _ in results.values())
    assert "target_sync_reset" in capsys.readouterr().out

"""``observe(..., across_processes=)`` in one process (many: test_multiprocess)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import reference

import optaxswap as osw

PARAMS = jnp.zeros(2)
VALUES = [3.0, 2.0, 2.5, 2.4, 2.6]


@pytest.mark.parametrize("policy", ["median", None, "Check"])
def test_observe_rejects_an_unknown_across_processes_policy(policy):
    state = osw.switch_on_plateau([optax.adam(0.1), optax.sgd(0.1)]).init(PARAMS)
    with pytest.raises(
        ValueError, match=rf"across_processes.*'check', 'mean'.*{policy!r}"
    ):
        osw.observe(state, 1.0, across_processes=policy)


@pytest.mark.parametrize("policy", ["check", "mean"])
def test_in_one_process_every_policy_observes_the_value_itself(policy):
    tx = osw.switch_on_plateau([optax.adam(0.1), optax.sgd(0.1)], patience=2)
    model = reference.PlateauModel(patience=2)
    state = tx.init(PARAMS)
    phases, expected = [], []
    for value in VALUES:
        expected.append(model.update())
        model.observe(value)
        _, state = tx.update(PARAMS, state, PARAMS)
        phases.append(int(osw.phase(state)))
        state = osw.observe(state, np.float32(value), across_processes=policy)
    assert phases == reference.switch_phases(expected, num_phases=2)
    assert float(state.trigger_state.best) == 2.0


def test_observe_inside_jit_takes_either_policy():
    tx = osw.switch_on_plateau([optax.adam(0.1), optax.sgd(0.1)], patience=3)
    observe = jax.jit(osw.observe, static_argnames="across_processes")
    state = tx.init(PARAMS)
    for policy in ("check", "mean"):
        state = observe(state, jnp.float32(1.0), across_processes=policy)
    assert int(state.trigger_state.bad_count) == 1

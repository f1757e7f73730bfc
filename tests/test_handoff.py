"""``switch(..., handoff=fn)`` and ``carry_momentum`` against manual loops."""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optaxswap as osw

SWITCH_STEP = 4
NUM_UPDATES = 9


def _grad(params):
    return jax.grad(lambda p: jnp.sum((p["w"] - 1.0) ** 4) + jnp.sum(p["b"] ** 2))(
        params
    )


def _params():
    return {"w": jnp.array([0.5, -1.0, 2.0]), "b": jnp.array([[0.3, -0.2]])}


def _run_switch(tx, num_updates=NUM_UPDATES):
    params = _params()
    state = tx.init(params)

    @jax.jit
    def step(params, state):
        updates, state = tx.update(_grad(params), state, params)
        return optax.apply_updates(params, updates), state

    for _ in range(num_updates):
        params, state = step(params, state)
    return params, state


def _run_manually(first, second, enter_second, num_updates=NUM_UPDATES):
    """``first`` for SWITCH_STEP updates, then ``second`` entered by hand."""
    params = _params()
    state = first.init(params)
    for _ in range(SWITCH_STEP):
        updates, state = first.update(_grad(params), state, params)
        params = optax.apply_updates(params, updates)
    second_state = enter_second(state, second.init(params), params)
    for _ in range(num_updates - SWITCH_STEP):
        updates, second_state = second.update(_grad(params), second_state, params)
        params = optax.apply_updates(params, updates)
    return params, state, second_state


def _share_memory_options():
    if "share_memory" in inspect.signature(osw.switch).parameters:
        return [False, True]
    return [False]


@pytest.mark.parametrize("share_memory", _share_memory_options())
def test_carry_momentum_continues_sgd_from_adams_first_moment(share_memory):
    adam, sgd = optax.adam(0.05), optax.sgd(0.02, momentum=0.9)
    tx = osw.switch_at(
        [adam, sgd],
        [SWITCH_STEP],
        handoff=osw.handoff.carry_momentum,
        **({"share_memory": True} if share_memory else {}),
    )
    actual, _ = _run_switch(tx)

    def enter_sgd(adam_state, fresh_sgd_state, params):
        (adam_moments, _), (_, sgd_rest) = adam_state, fresh_sgd_state
        return (optax.TraceState(trace=adam_moments.mu), sgd_rest)

    expected, _, _ = _run_manually(adam, sgd, enter_sgd)
    jax.tree.map(
        lambda a, e: np.testing.assert_allclose(a, e, rtol=1e-6, atol=1e-7),
        actual,
        expected,
    )


def test_carry_momentum_differs_from_a_fresh_sgd_state():
    adam, sgd = optax.adam(0.05), optax.sgd(0.02, momentum=0.9)
    carried, _ = _run_switch(
        osw.switch_at([adam, sgd], [SWITCH_STEP], handoff=osw.handoff.carry_momentum)
    )
    fresh, _ = _run_switch(osw.switch_at([adam, sgd], [SWITCH_STEP]))
    assert not np.allclose(carried["w"], fresh["w"])


def test_handoff_sees_the_leaving_state_the_fresh_state_and_the_count():
    adam, sgd = optax.adam(0.05), optax.sgd(0.02, momentum=0.5)

    def handoff(context):
        # Encodes what it saw in the momentum, to compare with the manual run.
        (adam_moments, _), (trace_state, rest) = context.from_state, context.fresh_state
        code = context.count + 10 * context.from_phase + 100 * context.to_phase
        trace = jax.tree.map(
            lambda mu, fresh, p: mu + fresh + code * p,
            adam_moments.mu,
            trace_state.trace,
            context.params,
        )
        return (optax.TraceState(trace=trace), rest)

    actual, state = _run_switch(
        osw.switch_at([adam, sgd], [SWITCH_STEP], handoff=handoff)
    )

    def enter_sgd(adam_state, fresh_sgd_state, params):
        (adam_moments, _), (trace_state, rest) = adam_state, fresh_sgd_state
        code = SWITCH_STEP + 10 * 0 + 100 * 1
        trace = jax.tree.map(
            lambda mu, fresh, p: mu + fresh + code * p,
            adam_moments.mu,
            trace_state.trace,
            params,
        )
        return (optax.TraceState(trace=trace), rest)

    expected, _, _ = _run_manually(adam, sgd, enter_sgd)
    assert int(osw.phase(state)) == 1
    jax.tree.map(
        lambda a, e: np.testing.assert_allclose(a, e, rtol=1e-6, atol=1e-6),
        actual,
        expected,
    )


def test_handoff_runs_on_each_phase_change_of_a_cycle():
    phases = [optax.sgd(0.1, momentum=0.9), optax.sgd(0.1, momentum=0.5)]

    def handoff(context):
        # Leaves a mark of the transition in the entering momentum.
        mark = 1.0 + context.from_phase + 10.0 * context.to_phase
        return jax.tree.map(lambda leaf: jnp.full_like(leaf, mark), context.fresh_state)

    tx = osw.switch(phases, osw.at_steps([2, 4]), handoff=handoff, cycle=True)
    params = jnp.zeros(1)
    state = tx.init(params)
    traces = []
    for _ in range(5):
        _, state = tx.update(jnp.zeros(1), state, params)
        active = state.inner_states[int(osw.phase(state))]
        traces.append(float(active[0].trace[0]))
    # Entering phase 1 on update 2 (mark 11, then decayed by 0.5 per update),
    # back to phase 0 on update 4 (mark 2, decayed by 0.9).
    np.testing.assert_allclose(traces, [0.0, 0.0, 5.5, 2.75, 1.8], rtol=1e-6)


def _stateful_identity(make_state):
    return optax.GradientTransformation(
        make_state, lambda updates, state, params=None: (updates, state)
    )


@pytest.mark.parametrize(
    ("leaving", "entering", "message"),
    [
        (optax.sgd(0.1), optax.sgd(0.1, momentum=0.9), "exactly one `mu`.*found 0"),
        (optax.adam(0.1), optax.adam(0.1), "exactly one `trace`.*found 0"),
        (
            optax.partition(
                {"a": optax.adam(0.1), "b": optax.adam(0.2)}, {"w": "a", "b": "b"}
            ),
            optax.sgd(0.1, momentum=0.9),
            "exactly one `mu`.*found 2",
        ),
        (
            _stateful_identity(lambda params: {"mu": jnp.zeros(7)}),
            optax.sgd(0.1, momentum=0.9),
            "structure",
        ),
        (
            # Same tree as the params, flattened leaves.
            _stateful_identity(lambda params: {"mu": jax.tree.map(jnp.ravel, params)}),
            optax.sgd(0.1, momentum=0.9),
            "shapes",
        ),
    ],
    ids=["no-mu", "no-trace", "two-mus", "structure", "shapes"],
)
def test_carry_momentum_rejects_states_it_cannot_map(leaving, entering, message):
    tx = osw.switch_at([leaving, entering], [1], handoff=osw.handoff.carry_momentum)
    params = {"w": jnp.zeros(3), "b": jnp.zeros((1, 2))}
    state = tx.init(params)
    with pytest.raises(ValueError, match=message):
        tx.update(params, state, params)

"""``switch(..., share_memory=True)``: phases share buffers, results do not change.

The references are independent of the slot layout: the same switch without
``share_memory`` (bitwise) and a manual re-instantiation of each phase's
optimizer at its boundary.
"""

import re

import chex
import jax
import jax.numpy as jnp
import optax
import pytest
from training import assert_trees_close

import optaxswap as osw
from optaxswap import _switch


def make_params():
    return {
        "w": jnp.linspace(-1.0, 1.0, 12, dtype=jnp.float32).reshape(3, 4),
        "b": jnp.array([0.5, -0.25, 0.125], jnp.float32),
    }


def loss(params, step):
    # A loss whose gradients change with the step, so every update differs.
    x = jnp.sin(jnp.arange(4, dtype=jnp.float32) + step)
    return jnp.sum((params["w"] @ x + params["b"] - 1.0) ** 2)


def three_phases():
    return [
        optax.adam(0.05),
        optax.sgd(0.05, momentum=0.9),
        optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(0.05)),
    ]


def run(tx, num_steps, *, before_step=None):
    """Params after ``num_steps`` jitted updates, and the final state."""

    @jax.jit
    def step(params, state, t):
        grads = jax.grad(loss)(params, t.astype(jnp.float32))
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    params = make_params()
    state = tx.init(params)
    for t in range(num_steps):
        if before_step is not None:
            state = before_step(t, state)
        params, state = step(params, state, jnp.int32(t))
    return params, state


def manual_reinit(transforms, boundaries, num_steps):
    """Each phase's optimizer re-created at its boundary, by hand."""
    params = make_params()
    phase = 0
    tx = transforms[0]
    state = tx.init(params)
    for t in range(num_steps):
        if phase < len(boundaries) and t == boundaries[phase]:
            phase += 1
            tx = transforms[phase]
            state = tx.init(params)
        grads = jax.grad(loss)(params, jnp.float32(t))
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
    return params


def state_bytes(tree):
    return sum(leaf.nbytes for leaf in jax.tree.leaves(tree))


def test_shared_switch_at_matches_unshared_bitwise_and_manual_reinit():
    boundaries = [3, 6]
    shared, _ = run(
        osw.switch_at(three_phases(), boundaries, share_memory=True), num_steps=10
    )
    separate, _ = run(osw.switch_at(three_phases(), boundaries), num_steps=10)
    chex.assert_trees_all_equal(shared, separate)
    assert_trees_close(shared, manual_reinit(three_phases(), boundaries, 10))


def test_shared_switch_on_plateau_matches_unshared_bitwise():
    def observe(t, state):
        # Improves, then stalls: a plateau each time the loss stops falling.
        return osw.observe(state, jnp.float32([3.0, 2.0, 2.5, 2.5, 2.5, 1.0][t % 6]))

    results = [
        run(
            osw.switch_on_plateau(three_phases(), patience=2, share_memory=shared),
            num_steps=14,
            before_step=observe,
        )
        for shared in (True, False)
    ]
    (shared_params, shared_state), (params, state) = results
    chex.assert_trees_all_equal(shared_params, params)
    assert int(osw.phase(shared_state)) == int(osw.phase(state)) == 2


def test_shared_cycle_with_requests_matches_unshared_bitwise():
    def request_every_third(t, state):
        return osw.request_switch(state) if t % 3 == 2 else state

    results = [
        run(
            osw.switch(three_phases(), osw.never(), cycle=True, share_memory=shared),
            num_steps=13,
            before_step=request_every_third,
        )
        for shared in (True, False)
    ]
    (shared_params, shared_state), (params, state) = results
    chex.assert_trees_all_equal(shared_params, params)
    # Requests before updates 2, 5, 8, 11: four advances through three phases.
    assert int(osw.phase(shared_state)) == int(osw.phase(state)) == 4 % 3


def test_handoff_reads_the_leaving_state_before_shared_slots_are_overwritten():
    # Adam's mu and nu and SGD's trace all have the params' shapes, and the
    # trace takes mu's slot: a hand-off that read the slots after the fresh
    # SGD state was written would carry zeros instead of mu.
    def mu_as_trace(context):
        adam_state = context.from_state[0]
        return (optax.TraceState(trace=adam_state.mu), *context.fresh_state[1:])

    transforms = [optax.adam(0.05), optax.sgd(0.05, momentum=0.9)]
    results = {}
    for shared in (True, False):
        tx = osw.switch_at(transforms, [4], handoff=mu_as_trace, share_memory=shared)
        results[shared] = run(tx, num_steps=4), run(tx, num_steps=5)
    (before, before_state), (after, after_state) = results[True]
    chex.assert_trees_all_equal(after, results[False][1][0])

    # Independently: SGD's first update with trace = Adam's mu after 4 steps.
    adam_mu = _switch.phase_state(results[False][0][1], 0)[0].mu
    assert all(bool(jnp.any(leaf != 0)) for leaf in jax.tree.leaves(adam_mu))
    grads = jax.grad(loss)(before, jnp.float32(4))
    expected_trace = jax.tree.map(lambda g, mu: g + 0.9 * mu, grads, adam_mu)
    chex.assert_trees_all_close(
        _switch.phase_state(after_state, 1)[0].trace, expected_trace, rtol=1e-6
    )
    chex.assert_trees_all_close(
        after,
        jax.tree.map(lambda p, t: p - 0.05 * t, before, expected_trace),
        rtol=1e-6,
    )


@pytest.mark.parametrize(
    "transforms",
    [
        [optax.adam(0.1), optax.sgd(0.1, momentum=0.9)],
        [optax.sgd(0.1, momentum=0.9), optax.adam(0.1), optax.sgd(0.1)],
        [optax.adamw(0.1), optax.lion(0.1), optax.adam(0.1)],
        [optax.sgd(0.1), optax.sgd(0.1)],
    ],
    ids=["adam-sgdm", "sgdm-adam-sgd", "adamw-lion-adam", "sgd-sgd"],
)
def test_shared_state_holds_at_most_the_largest_phase_plus_1kib(transforms):
    params = make_params()
    largest = max(state_bytes(tx.init(params)) for tx in transforms)
    state = osw.switch(transforms, osw.never(), share_memory=True).init(params)
    assert state_bytes(state.inner_states) <= largest + 1024


def test_adam_then_sgd_momentum_holds_two_param_sized_buffers_per_param():
    params = {"w": jnp.zeros((64, 64)), "b": jnp.zeros(64)}
    tx = osw.switch_at(
        [optax.adam(0.1), optax.sgd(0.1, momentum=0.9)], [10], share_memory=True
    )
    slots = jax.tree.leaves(tx.init(params).inner_states)
    shapes = sorted(leaf.shape for leaf in slots)
    # Adam's count is the only other slot: mu and nu, then SGD's trace in mu's.
    assert shapes == [(), (64,), (64,), (64, 64), (64, 64)]


def test_shared_state_leaves_are_strong_typed_distinct_buffers():
    params = make_params()
    tx = osw.switch(three_phases(), osw.never(), share_memory=True)
    leaves = jax.tree.leaves(tx.init(params))
    assert not any(leaf.weak_type for leaf in leaves)
    pointers = [leaf.unsafe_buffer_pointer() for leaf in leaves]
    assert len(set(pointers)) == len(pointers)
    # The whole state can be donated without a "buffer donated twice" error.
    step = jax.jit(
        lambda state, params: tx.update(params, state, params), donate_argnums=0
    )
    _, state = step(tx.init(params), params)
    chex.assert_trees_all_equal_dtypes(state, tx.init(params))


def test_phase_and_request_switch_read_and_steer_a_shared_state():
    tx = optax.chain(
        optax.clip(10.0),
        osw.switch(three_phases(), osw.never(), share_memory=True),
    )
    params = make_params()
    state = tx.init(params)
    assert int(osw.phase(state)) == 0
    state = osw.request_switch(state)
    assert int(osw.phase(state)) == 0  # the next update switches
    _, state = tx.update(params, state, params)
    assert int(osw.phase(state)) == 1


def test_shared_switch_compiles_once_across_switches():
    traces = []
    tx = osw.switch(three_phases(), osw.never(), cycle=True, share_memory=True)

    @jax.jit
    def step(params, state):
        traces.append(None)
        updates, state = tx.update(params, state, params)
        return optax.apply_updates(params, updates), state

    params = make_params()
    state = tx.init(params)
    for t in range(8):
        if t % 2:
            state = osw.request_switch(state)
        params, state = step(params, state)
    assert int(osw.phase(state)) == 4 % 3
    assert len(traces) == 1


@pytest.mark.parametrize("share_memory", [False, True])
def test_phase_state_round_trips_through_with_phase_state(share_memory):
    tx = osw.switch(three_phases(), osw.never(), share_memory=share_memory)
    params = make_params()
    adam_state = optax.adam(0.05).init(params)
    adam_state = (adam_state[0]._replace(count=jnp.int32(7)), *adam_state[1:])
    state = _switch.with_phase_state(tx.init(params), 0, adam_state)
    chex.assert_trees_all_equal(_switch.phase_state(state, 0), adam_state)
    assert jax.tree.structure(state) == jax.tree.structure(tx.init(params))


def test_eval_shape_of_a_shared_state_is_a_complete_restore_target(tmp_path):
    ocp = pytest.importorskip("orbax.checkpoint")
    tx = osw.switch_at(three_phases(), [3, 6], share_memory=True)
    _, state = run(tx, num_steps=4)
    target = jax.eval_shape(tx.init, make_params())
    assert jax.tree.structure(target) == jax.tree.structure(state)
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(tmp_path / "state", state)
    checkpointer.wait_until_finished()
    restored = checkpointer.restore(tmp_path / "state", target)
    chex.assert_trees_all_equal(restored, state)
    chex.assert_trees_all_equal_dtypes(restored, state)
    assert int(osw.phase(restored)) == 1


def test_share_memory_must_be_a_bool():
    with pytest.raises(TypeError, match=r"share_memory must be a bool, got 'yes'"):
        osw.switch(three_phases(), osw.never(), share_memory="yes")


def test_switch_step_copies_no_parameter_sized_buffer_in_any_phase():
    # The point of the per-phase conditionals: in a donated train step, XLA
    # copies no optimizer state (active or inactive) on the step's main path.
    params = {"w": jnp.zeros((256, 256)), "b": jnp.zeros(256)}
    big_copy = re.compile(r"f32\[256,256\]\S* copy\(")

    def entry_computation(hlo):
        return hlo[hlo.index("\nENTRY") :]

    for share_memory in (False, True):
        tx = osw.switch_at(three_phases(), [3, 6], share_memory=share_memory)

        def step(params, state, tx=tx):
            grads = jax.grad(lambda p: jnp.sum(jnp.tanh(p["w"] @ p["b"])))(params)
            updates, state = tx.update(grads, state, params)
            return optax.apply_updates(params, updates), state

        hlo = (
            jax.jit(step, donate_argnums=(0, 1))
            .lower(params, tx.init(params))
            .compile()
            .as_text()
        )
        assert not big_copy.findall(entry_computation(hlo)), share_memory


def test_shared_slots_keep_mixed_param_dtypes_and_match_unshared():
    # A bf16 leaf and an f32 leaf of the same shape must not share a slot.
    params = {
        "low": jnp.full((4, 4), 0.5, jnp.bfloat16),
        "high": jnp.full((4, 4), 0.5, jnp.float32),
    }
    grads = {"low": jnp.full((4, 4), 0.25, jnp.bfloat16), "high": params["high"] / 3}
    results = []
    for shared in (True, False):
        tx = osw.switch_at(
            [optax.adam(0.1), optax.sgd(0.1, momentum=0.9)], [2], share_memory=shared
        )
        state = tx.init(params)
        initial = state
        p = params
        for _ in range(4):
            updates, state = tx.update(grads, state, p)
            p = optax.apply_updates(p, updates)
        chex.assert_trees_all_equal_dtypes(state, initial)
        results.append((p, state))
    chex.assert_trees_all_equal(results[0][0], results[1][0])
    sgd_state = _switch.phase_state(results[0][1], 1)
    assert sgd_state[0].trace["low"].dtype == jnp.bfloat16
    assert sgd_state[0].trace["high"].dtype == jnp.float32


def test_vmapped_shared_switch_with_per_member_requests_matches_unshared():
    # A batched request makes each member switch on its own: under vmap the
    # conditionals become selects, and the shared slots must still hold each
    # member's active state.
    batch_params = jax.tree.map(lambda leaf: jnp.stack([leaf, 2 * leaf]), make_params())
    finals = []
    for shared in (True, False):
        tx = osw.switch(three_phases(), osw.never(), share_memory=shared)

        @jax.vmap
        def step(params, state, request, tx=tx):
            state = jax.lax.cond(request, osw.request_switch, lambda s: s, state)
            grads = jax.grad(loss)(params, jnp.float32(0))
            updates, state = tx.update(grads, state, params)
            return optax.apply_updates(params, updates), state

        params, state = batch_params, jax.vmap(tx.init)(batch_params)
        for t in range(5):
            params, state = step(params, state, jnp.array([t == 1, t in (2, 3)]))
        assert jax.device_get(osw.phase(state)).tolist() == [1, 2]
        finals.append(params)
    chex.assert_trees_all_equal(*finals)

"""The engine's promises, each against a bare optax run re-initialized by hand.

Mixed precision, L-BFGS phases (which read their own state by name), leaving
a phase, weak types, ``params=None``, ``tree_map_params``, and the ways a
switch runs its phases (``execution="branched"``, ``"leafwise"`` and
``"fused"``), which must agree with each other and with the reference, and
``"auto"``, which picks one of them per platform.
"""

import functools
import re

import chex
import jax
from jax import lax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from training import assert_trees_close
from training import lbfgs_run

import optaxswap as osw
from optaxswap import _engine
from optaxswap import _inspect

EXECUTIONS = ("fused", "branched", "leafwise")


def quadratic(params):
    return jnp.sum((params["w"] - 1.0) ** 2 * jnp.arange(1.0, 7.0).reshape(3, 2)) + (
        jnp.sum((params["b"] + 0.5) ** 2)
    )


def make_params(dtype=jnp.float32):
    return {
        "w": jnp.array([[0.5, -1.0], [2.0, 0.25], [-0.75, 1.5]], dtype),
        "b": jnp.array([0.3, -0.2], dtype),
    }


def train(tx, num_steps, *, params_dtype=jnp.float32, grads_dtype=jnp.float32):
    """Params after ``num_steps`` jitted steps, and every step's updates."""
    params = make_params(params_dtype)
    state = tx.init(params)

    @jax.jit
    def step(params, state):
        grads = jax.tree.map(
            lambda g: g.astype(grads_dtype), jax.grad(quadratic)(params)
        )
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state, updates

    all_updates = []
    for _ in range(num_steps):
        params, state, updates = step(params, state)
        all_updates.append(updates)
    return params, state, all_updates


def train_by_hand(phases, boundaries, num_steps, **dtypes):
    """Each optimizer fresh from ``init`` at its boundary, as a re-jit would."""
    params = make_params(dtypes.get("params_dtype", jnp.float32))
    grads_dtype = dtypes.get("grads_dtype", jnp.float32)
    all_updates = []
    starts = [0, *boundaries]
    for index, tx in enumerate(phases):
        end = starts[index + 1] if index + 1 < len(starts) else num_steps
        state = tx.init(params)

        @jax.jit
        def step(params, state, tx=tx):
            grads = jax.tree.map(
                lambda g: g.astype(grads_dtype), jax.grad(quadratic)(params)
            )
            updates, state = tx.update(grads, state, params)
            return optax.apply_updates(params, updates), state, updates

        for _ in range(starts[index], end):
            params, state, updates = step(params, state)
            all_updates.append(updates)
    return params, all_updates


@pytest.mark.parametrize("execution", EXECUTIONS)
@pytest.mark.parametrize("share_memory", [False, True])
@pytest.mark.parametrize(
    "params_dtype, grads_dtype",
    [
        (jnp.float32, jnp.bfloat16),
        (jnp.bfloat16, jnp.bfloat16),
        (jnp.float32, jnp.float32),
    ],
)
def test_mixed_precision_updates_keep_the_active_phase_value_and_a_promoted_dtype(
    execution, share_memory, params_dtype, grads_dtype
):
    phases = [optax.adam(0.05), optax.sgd(0.01)]
    tx = osw.switch_at(phases, [4], share_memory=share_memory, execution=execution)
    params, _, updates = train(
        tx, 8, params_dtype=params_dtype, grads_dtype=grads_dtype
    )
    expected, expected_updates = train_by_hand(
        phases, [4], 8, params_dtype=params_dtype, grads_dtype=grads_dtype
    )
    for got, want in zip(updates, expected_updates):
        # Adam's f32 updates stay f32 even in the SGD phase (whose own output
        # is bf16): the switch's dtype is the promotion of its phases'.
        promoted = jnp.result_type(params_dtype, grads_dtype)
        assert {leaf.dtype for leaf in jax.tree.leaves(got)} == {promoted}
        # bf16 arithmetic may keep f32 intermediates where XLA fuses it
        # differently (excess precision): one bf16 ulp.
        rtol = 1e-2 if params_dtype == jnp.bfloat16 else 1e-6
        assert_trees_close(got, want, rtol=rtol)
    # Inside the bare step, XLA may add SGD's bf16 update to the f32 params
    # before rounding it (excess precision); the switch's update is rounded,
    # as the value bare SGD returns is. Each step may differ by a bf16 ulp of
    # the update.
    mixed = params_dtype != grads_dtype
    assert_trees_close(params, expected, rtol=1e-3 if mixed else rtol)


@pytest.mark.parametrize(
    "params_dtype, grads_dtype",
    [(jnp.float32, jnp.bfloat16), (jnp.bfloat16, jnp.bfloat16)],
)
def test_mixed_precision_never_switching_equals_bare_adam(params_dtype, grads_dtype):
    adam = optax.adam(0.05)
    for tx in (
        osw.switch_at([adam], []),
        osw.switch_at([adam, optax.sgd(0.1)], [1000]),
        osw.resettable(adam, osw.every(1000)),
    ):
        params, _, updates = train(
            tx, 30, params_dtype=params_dtype, grads_dtype=grads_dtype
        )
        expected, expected_updates = train_by_hand(
            [adam], [], 30, params_dtype=params_dtype, grads_dtype=grads_dtype
        )
        assert_trees_close(params, expected)
        assert jax.tree.map(lambda u: u.dtype, updates[-1]) == jax.tree.map(
            lambda u: u.dtype, expected_updates[-1]
        )


@functools.cache
def lbfgs_then_adam_by_hand() -> optax.Params:
    """Three L-BFGS updates, then a fresh Adam for seven: bare optax, eager."""
    expected = make_params()
    lbfgs = optax.lbfgs()
    state = lbfgs.init(expected)
    value_and_grad = optax.value_and_grad_from_state(quadratic)
    for _ in range(3):
        value, grads = value_and_grad(expected, state=state)
        updates, state = lbfgs.update(
            grads, state, expected, value=value, grad=grads, value_fn=quadratic
        )
        expected = optax.apply_updates(expected, updates)
    adam = optax.adam(0.05)
    state = adam.init(expected)
    for _ in range(7):
        updates, state = adam.update(jax.grad(quadratic)(expected), state, expected)
        expected = optax.apply_updates(expected, updates)
    return expected


@pytest.mark.parametrize("execution", EXECUTIONS)
@pytest.mark.parametrize("share_memory", [False, True])
def test_lbfgs_then_adam_reads_live_gradients_after_the_switch(execution, share_memory):
    # Leaving L-BFGS re-initializes its state, so value_and_grad_from_state
    # finds no stale value/grad and computes the true gradient for Adam.
    tx = osw.switch_at(
        [optax.lbfgs(), optax.adam(0.05)],
        [3],
        share_memory=share_memory,
        execution=execution,
    )
    params, _ = lbfgs_run(tx, 10, quadratic)
    assert_trees_close(params, lbfgs_then_adam_by_hand(), rtol=1e-5)


@pytest.mark.parametrize("execution", EXECUTIONS)
def test_adam_then_lbfgs_shared_equals_unshared(execution):
    runs = [
        lbfgs_run(
            osw.switch_at(
                [optax.adam(0.05), optax.lbfgs()],
                [4],
                share_memory=share_memory,
                execution=execution,
            ),
            9,
            quadratic,
        )[0]
        for share_memory in (False, True)
    ]
    jax.tree.map(np.testing.assert_array_equal, *runs)


def test_fused_and_branched_agree_with_handoff_cycle_and_requests():
    def make(execution, share_memory):
        return osw.switch(
            [optax.adam(0.05), optax.sgd(0.02, momentum=0.9), optax.sgd(0.01)],
            osw.every(3),
            cycle=True,
            share_memory=share_memory,
            execution=execution,
        )

    results = {
        (execution, share): train(make(execution, share), 14)
        for execution in EXECUTIONS
        for share in (False, True)
    }
    reference = results["branched", False][0]
    for (execution, share), (params, state, _) in results.items():
        assert_trees_close(params, reference)
        assert int(osw.phase(state)) == (14 // 3) % 3, (execution, share)


def test_handoff_reads_the_leaving_state_in_every_execution():
    results = []
    for execution in EXECUTIONS:
        tx = osw.switch_at(
            [optax.adam(0.05), optax.sgd(0.02, momentum=0.9)],
            [3],
            handoff=osw.handoff.carry_momentum,
            execution=execution,
        )
        results.append(train(tx, 6)[0])
    for result in results[1:]:
        assert_trees_close(result, results[0])


def apply_step(tx):
    """``(params, state, grads) -> (params, state)``: update and apply."""

    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    return step


def compiled_step(tx, params):
    """The optimized HLO of :func:`apply_step`, the params as gradients."""
    lowered = jax.jit(apply_step(tx)).lower(params, tx.init(params), params)
    return lowered.compile().as_text()


def hlo_conditionals(tx, params):
    return len(re.findall(r"\bconditional\(", compiled_step(tx, params)))


def test_conditionals_in_the_compiled_step():
    params = make_params()
    adam, sgd = optax.adam(0.1), optax.sgd(0.1, momentum=0.9)
    # A reset is a select fused into the update: no conditional.
    assert hlo_conditionals(osw.resettable(adam, osw.every(3)), params) == 0
    assert (
        hlo_conditionals(osw.resettable(adam, osw.every(3), fields=("mu",)), params)
        == 0
    )
    # Branched (the default): one conditional per phase that runs or skips
    # it, and one per phase that can be left, which re-initializes it.
    assert hlo_conditionals(osw.switch_at([adam, sgd, adam], [3, 5]), params) == 5
    assert hlo_conditionals(osw.switch_at([adam, sgd], [3]), params) == 3
    for share_memory in (False, True):
        fused = osw.switch_at(
            [adam, sgd], [3], share_memory=share_memory, execution="fused"
        )
        assert hlo_conditionals(fused, params) == 0


def lowered_cases(fn, args, platform):
    """``stablehlo.case`` ops in ``jit(fn)`` lowered for ``platform``.

    Lowering for a GPU needs no GPU: it shows what "auto" hands XLA there.
    """
    lowered = jax.jit(fn).trace(*args).lower(lowering_platforms=(platform,))
    return lowered.as_text().count('"stablehlo.case"')


def step_cases(tx, params, platform):
    return lowered_cases(apply_step(tx), (params, tx.init(params), params), platform)


def halved_three_times():
    """A phase whose update loops, as L-BFGS's line search does."""

    def update(updates, state, params=None):
        del params
        halve = lambda _, tree: jax.tree.map(lambda x: 0.5 * x, tree)  # noqa: E731
        return lax.fori_loop(0, 3, halve, updates), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


@pytest.mark.parametrize("platform", ["cpu", "cuda", "rocm", "tpu"])
def test_auto_runs_fused_on_a_gpu_and_branched_elsewhere(monkeypatch, platform):
    # As in a process with a GPU, where "auto" chooses by platform.
    monkeypatch.setattr(_engine, "_gpu_in_process", lambda: True)
    params = make_params()
    adam, sgd = optax.adam(0.1), optax.sgd(0.1, momentum=0.9)
    # What choosing by platform adds to the lowered module, read from JAX.
    dispatch = functools.partial(
        lax.platform_dependent, default=lambda x: x, cuda=lambda x: -x
    )
    overhead = lowered_cases(dispatch, (jnp.ones(2),), platform)
    chosen = "fused" if platform in ("cuda", "rocm") else "branched"
    for share_memory in (False, True):

        def make(execution, share_memory=share_memory):
            return osw.switch_at(
                [adam, sgd], [3], share_memory=share_memory, execution=execution
            )

        assert step_cases(make("auto"), params, platform) == (
            step_cases(make(chosen), params, platform) + overhead
        )
    # A phase that loops stays under a conditional everywhere: running it on
    # every step would cost all its iterations.
    looping = [halved_three_times(), sgd]
    assert step_cases(osw.switch_at(looping, [3]), params, platform) == step_cases(
        osw.switch_at(looping, [3], execution="branched"), params, platform
    )


def test_auto_traces_only_the_branched_way_without_a_gpu():
    """A CPU-only process does not trace the fused way it would not run.

    Only an explicit export for a GPU lowers such a step for one: it then
    runs branched there.
    """
    if _engine._gpu_in_process():
        pytest.skip("this process has a GPU")
    params = make_params()
    phases = [optax.adam(0.1), optax.sgd(0.1, momentum=0.9)]
    for platform in ("cpu", "cuda"):
        assert step_cases(osw.switch_at(phases, [3]), params, platform) == (
            step_cases(
                osw.switch_at(phases, [3], execution="branched"), params, platform
            )
        )


def optimized_instructions(tx, params):
    """The compiled step's instructions, without metadata and stack frames."""
    text = compiled_step(tx, params)
    lines = [line for line in text.splitlines() if line.startswith((" ", "ENTRY"))]
    text = "\n".join(lines)
    return re.sub(r", (metadata=\{[^}]*\}|stack_frame_id=\d+)", "", text)


@pytest.mark.parametrize("share_memory", [False, True])
def test_auto_is_branched_on_cpu_bit_for_bit(share_memory):
    """On CPU, "auto" compiles the branched step, instruction for instruction."""
    params = make_params()
    phases = [optax.adam(0.1), optax.sgd(0.1, momentum=0.9)]
    auto = osw.switch_at(phases, [3], share_memory=share_memory)
    branched = osw.switch_at(
        phases, [3], share_memory=share_memory, execution="branched"
    )
    assert optimized_instructions(auto, params) == (
        optimized_instructions(branched, params)
    )
    assert hlo_conditionals(auto, params) == 3
    for got, want in zip(train(auto, 6), train(branched, 6), strict=True):
        chex.assert_trees_all_equal(got, want)


def test_runs_once_reads_loops_and_host_calls():
    grads = make_params()
    state = optax.lbfgs().init(grads)

    def jaxpr(fn, *args):
        return jax.make_jaxpr(fn)(*args)

    assert _inspect.runs_once(
        jaxpr(optax.adam(0.1).update, grads, optax.adam(0.1).init(grads))
    )
    # L-BFGS's line search is a while loop.
    lbfgs_update = functools.partial(
        optax.lbfgs().update, value=jnp.float32(1.0), grad=grads, value_fn=quadratic
    )
    assert not _inspect.runs_once(jaxpr(lbfgs_update, grads, state, grads))
    assert not _inspect.runs_once(
        jaxpr(halved_three_times().update, grads, optax.EmptyState())
    )

    def printing(x):
        jax.debug.print("{}", x)
        return x

    assert not _inspect.runs_once(jaxpr(printing, jnp.ones(2)))
    # A conditional runs once: allowed.
    assert _inspect.runs_once(
        jaxpr(lambda p: lax.cond(p, lambda: 1.0, lambda: 2.0), True)
    )


def test_a_dear_init_is_computed_only_when_it_fires():
    def counting_init(params):
        # A matrix product is no mere fill: it goes under a conditional.
        return {"w": params["w"] @ params["w"].T}

    dear = optax.GradientTransformation(
        counting_init, lambda updates, state, params=None: (updates, state)
    )
    assert hlo_conditionals(osw.resettable(dear, osw.every(3)), make_params()) == 1


def test_init_strengthens_the_weak_leaves_of_an_inner_init():
    params = make_params()
    assert any(leaf.weak_type for leaf in jax.tree.leaves(optax.lbfgs().init(params)))
    for share_memory in (False, True):
        tx = osw.switch_at(
            [optax.lbfgs(), optax.adam(0.1)], [2], share_memory=share_memory
        )
        state = tx.init(params)
        assert not any(leaf.weak_type for leaf in jax.tree.leaves(state))


def test_a_weak_leaf_from_the_host_comes_back_strong():
    params = make_params()
    for tx in (
        osw.switch_at([optax.sgd(0.1), optax.adam(0.1)], [2]),
        osw.switch_at([optax.adam(0.1), optax.sgd(0.1)], [2], execution="branched"),
        osw.switch_at([optax.adam(0.1), optax.sgd(0.1)], [2], share_memory=True),
        osw.resettable(optax.adam(0.1), osw.every(2)),
    ):
        state = tx.init(params)
        weak = jax.tree.map(lambda leaf: jnp.asarray(leaf.tolist()), state)
        assert any(leaf.weak_type for leaf in jax.tree.leaves(weak))
        grads = jax.grad(quadratic)(params)
        _, new_state = tx.update(grads, weak, params)
        assert not any(leaf.weak_type for leaf in jax.tree.leaves(new_state))
        assert jax.tree.map(lambda leaf: leaf.dtype, new_state) == jax.tree.map(
            lambda leaf: leaf.dtype, state
        )


@pytest.mark.parametrize("share_memory", [False, True])
def test_params_none_is_accepted_when_init_reads_only_shapes(share_memory):
    tx = osw.switch_at(
        [optax.adam(0.1), optax.sgd(0.1, momentum=0.9)], [2], share_memory=share_memory
    )
    params = make_params()
    with_params, without = tx.init(params), tx.init(params)
    grads = jax.grad(quadratic)(params)
    for _ in range(4):
        expected, with_params = tx.update(grads, with_params, params)
        got, without = tx.update(grads, without, None)
        jax.tree.map(np.testing.assert_array_equal, got, expected)
    assert int(osw.phase(without)) == 1


def test_params_none_is_refused_when_init_reads_the_params_values():
    def copy_params():
        return optax.GradientTransformation(
            lambda params: jax.tree.map(jnp.array, params),
            lambda updates, state, params=None: (updates, state),
        )

    tx = osw.resettable(copy_params(), osw.every(2))
    params = make_params()
    state = tx.init(params)
    with pytest.raises(ValueError, match="needs params.*reads their values"):
        tx.update(params, state, None)
    tx = osw.switch_at([optax.sgd(0.1), copy_params()], [2])
    with pytest.raises(ValueError, match=r"transforms\[1\]"):
        tx.update(params, tx.init(params), None)


@pytest.mark.parametrize(
    "tx",
    [
        osw.resettable(optax.adam(0.1), osw.every(2)),
        osw.switch_at([optax.adam(0.1), optax.sgd(0.1, momentum=0.9)], [2]),
        osw.switch_at(
            [optax.adam(0.1), optax.sgd(0.1, momentum=0.9)], [2], share_memory=True
        ),
        osw.switch_at(
            [osw.resettable(optax.adam(0.1)), optax.lion(0.1)], [2], share_memory=True
        ),
    ],
    ids=["resettable", "switch", "switch_shared", "switch_shared_nested"],
)
def test_tree_map_params_finds_every_params_shaped_tree(tx):
    params = make_params()
    state = tx.init(params)
    marked = optax.tree_utils.tree_map_params(
        tx, lambda _: "params", state, transform_non_params=lambda _: "other"
    )
    # An independent count: every subtree with the params' structure and
    # shapes is one tree_map_params must find.
    params_shaped = 0

    def count(node):
        nonlocal params_shaped
        if jax.tree.structure(node) == jax.tree.structure(params) and all(
            jnp.shape(a) == jnp.shape(b)
            for a, b in zip(jax.tree.leaves(node), jax.tree.leaves(params))
        ):
            params_shaped += 1
            return True
        return False

    jax.tree.leaves(state, is_leaf=count)
    assert jax.tree.leaves(marked).count("params") == params_shaped * 2
    assert params_shaped > 0


@pytest.mark.parametrize(
    "tx, other",
    [
        (osw.resettable(optax.adam(0.1)), optax.adam(0.1)),
        (osw.switch_at([optax.adam(0.1), optax.sgd(0.1)], [2]), optax.adam(0.1)),
    ],
)
def test_a_state_of_another_transform_is_a_type_error(tx, other):
    params = make_params()
    with pytest.raises(TypeError, match="expects the .*State.* got a tuple"):
        tx.update(params, other.init(params), params)


def test_inspect_reads_jaxprs():
    x = jnp.ones(3)
    assert _inspect.only_fills(jnp.zeros_like, x)
    assert not _inspect.only_fills(lambda x: x @ x, x)
    assert not _inspect.only_fills(
        lambda x: jax.lax.cond(True, lambda: x, lambda: x), x
    )
    assert not _inspect.reads_values(jnp.zeros_like, x)
    assert _inspect.reads_values(jnp.copy, x)
    assert _inspect.reads_values(lambda x: x, x)


def test_shared_slots_under_nnx_optimizer_train_like_separate_states():
    nnx = pytest.importorskip("flax.nnx")
    inputs = jax.random.normal(jax.random.key(0), (16, 3))
    targets = jnp.sin(inputs.sum(axis=1, keepdims=True))

    def train(share_memory):
        model = nnx.Linear(3, 1, rngs=nnx.Rngs(0))
        tx = osw.switch_at(
            [optax.adam(0.05), optax.sgd(0.05, momentum=0.9)],
            [2],
            share_memory=share_memory,
        )
        optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)

        @nnx.jit
        def step(model, optimizer):
            grads = nnx.grad(lambda m: jnp.mean((m(inputs) - targets) ** 2))(model)
            optimizer.update(model, grads)

        for _ in range(5):
            step(model, optimizer)
        assert int(osw.phase(optimizer.opt_state)[...]) == 1
        return nnx.as_pure(nnx.state(model))

    jax.tree.map(np.testing.assert_array_equal, train(True), train(False))


def test_a_shared_switch_nested_in_a_shared_switch_trains_like_separate_states():
    # The outer slots' markers must not be confused with the nested switch's.
    def make(share_memory):
        inner = osw.switch_at(
            [optax.sgd(0.05, momentum=0.9), optax.adam(0.05)],
            [2],
            share_memory=share_memory,
        )
        return osw.switch_at([optax.adam(0.05), inner], [3], share_memory=share_memory)

    shared, separate = train(make(True), 8)[0], train(make(False), 8)[0]
    jax.tree.map(np.testing.assert_array_equal, shared, separate)

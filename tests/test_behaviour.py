"""Guarantees every combinator x trigger keeps, run over one shared registry.

Like optax's ``contrib/_common_test.py``: each entry of ``CASES`` goes through
the same checks (extra arguments, one compilation, fixed state types, distinct
buffers, composition with optax's wrappers). To cover a new combinator, append
a ``pytest.param(factory, id=...)`` to ``CASES``: ``factory(learning_rate)``
returns a :class:`Case` whose transform uses that learning rate everywhere and
whose ``drive`` makes it reset or switch within ``NUM_STEPS`` updates.
"""

from collections.abc import Callable
import contextlib
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from training import assert_trees_close
from training import loss_fn
from training import make_params
from training import make_step

import optaxswap as osw

NUM_STEPS = 8
LEARNING_RATE = 1e-2
COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"

Drive = Callable[[int, Any], tuple[Any, dict[str, Any]]]


class Case(NamedTuple):
    """One combinator x trigger under test.

    Attributes:
      tx: the transform.
      drive: ``drive(t, opt_state) -> (opt_state, extra_args)``, called before
        update ``t``: the host-side steering of that update (``osw.observe``,
        ``osw.request_*``) and the extra keyword arguments to pass to it. The
        extra arguments must have the same structure on every update.
    """

    tx: optax.GradientTransformation
    drive: Drive


def no_drive(t: int, opt_state: Any) -> tuple[Any, dict[str, Any]]:
    return opt_state, {}


def plateau_loss(t: int) -> np.float32:
    """Improves twice, then worsens: with patience 2 it plateaus every 2 steps."""
    return np.float32(1.0 / (1 + t) if t < 2 else 0.5 + 0.01 * t)


def value_drive(t: int, opt_state: Any) -> tuple[Any, dict[str, Any]]:
    return opt_state, {"value": plateau_loss(t)}


def observe_drive(t: int, opt_state: Any) -> tuple[Any, dict[str, Any]]:
    return osw.observe(opt_state, plateau_loss(t)), {}


def request_drive(request: Callable[[Any], Any], steps: tuple[int, ...]) -> Drive:
    def drive(t: int, opt_state: Any) -> tuple[Any, dict[str, Any]]:
        return (request(opt_state) if t in steps else opt_state), {}

    return drive


def sync_drive(t: int, opt_state: Any) -> tuple[Any, dict[str, Any]]:
    return opt_state, {"sync": np.bool_(t % 3 == 2)}


def adam(learning_rate: float) -> optax.GradientTransformation:
    return optax.adam(learning_rate)


def momentum(learning_rate: float) -> optax.GradientTransformation:
    return optax.sgd(learning_rate, momentum=0.9)


CASES = [
    pytest.param(
        lambda lr: Case(osw.resettable(adam(lr), osw.every(3)), no_drive),
        id="resettable-every",
    ),
    pytest.param(
        lambda lr: Case(
            osw.resettable(adam(lr)), request_drive(osw.request_reset, (3,))
        ),
        id="resettable-request",
    ),
    pytest.param(
        lambda lr: Case(
            osw.resettable(adam(lr), osw.every(2), fields=("mu", "nu")), no_drive
        ),
        id="resettable-fields_mu_nu",
    ),
    pytest.param(
        lambda lr: Case(
            osw.resettable(adam(lr), osw.on_plateau(patience=2)), value_drive
        ),
        id="resettable-plateau_value",
    ),
    pytest.param(
        lambda lr: Case(
            osw.resettable(adam(lr), osw.when(lambda c: c.extra_args["sync"])),
            sync_drive,
        ),
        id="resettable-when",
    ),
    pytest.param(
        lambda lr: Case(
            osw.resettable(
                adam(lr),
                osw.any_of(osw.at_steps([1]), osw.on_plateau(patience=2)),
            ),
            observe_drive,
        ),
        id="resettable-any_of_observe",
    ),
    pytest.param(
        lambda lr: Case(osw.switch_at([adam(lr), momentum(lr)], [3]), no_drive),
        id="switch_at-2_phases",
    ),
    pytest.param(
        lambda lr: Case(
            osw.switch_at([adam(lr), momentum(lr), optax.adamw(lr)], [2, 5]),
            no_drive,
        ),
        id="switch_at-3_phases",
    ),
    pytest.param(
        lambda lr: Case(
            osw.switch_at([adam(lr), momentum(lr)], [3], execution="fused"), no_drive
        ),
        id="switch_at-fused",
    ),
    pytest.param(
        lambda lr: Case(
            osw.switch(
                [adam(lr), momentum(lr)],
                osw.every(3),
                cycle=True,
                share_memory=True,
                execution="fused",
            ),
            no_drive,
        ),
        id="switch-every_cycle_shared_fused",
    ),
    pytest.param(
        lambda lr: Case(
            osw.switch_on_plateau([adam(lr), momentum(lr)], patience=2), value_drive
        ),
        id="switch_on_plateau-value",
    ),
    pytest.param(
        lambda lr: Case(
            osw.switch_on_plateau(
                [adam(lr), momentum(lr), optax.adamw(lr)], patience=2, share_memory=True
            ),
            value_drive,
        ),
        id="switch_on_plateau-value_shared",
    ),
    pytest.param(
        lambda lr: Case(
            osw.switch_on_plateau(
                [adam(lr), momentum(lr)], patience=1, accumulation_size=2
            ),
            observe_drive,
        ),
        id="switch_on_plateau-observe_accumulated",
    ),
    pytest.param(
        lambda lr: Case(
            osw.switch([adam(lr), momentum(lr)], osw.every(3), cycle=True), no_drive
        ),
        id="switch-every_cycle",
    ),
    pytest.param(
        lambda lr: Case(
            osw.switch([adam(lr), momentum(lr), optax.sgd(lr)], osw.never()),
            request_drive(osw.request_switch, (2, 5)),
        ),
        id="switch-request",
    ),
    pytest.param(
        lambda lr: Case(
            osw.switch_at([osw.resettable(adam(lr), osw.every(2)), momentum(lr)], [5]),
            no_drive,
        ),
        id="nested-resettable_in_switch",
    ),
    pytest.param(
        lambda lr: Case(
            osw.resettable(
                osw.switch_at([adam(lr), momentum(lr)], [2]), osw.at_steps([5])
            ),
            no_drive,
        ),
        id="nested-switch_in_resettable",
    ),
    pytest.param(
        lambda lr: Case(
            osw.switch_at(
                [adam(lr), momentum(lr)], [3], handoff=osw.handoff.carry_momentum
            ),
            no_drive,
        ),
        id="switch_at-carry_momentum",
    ),
    pytest.param(
        lambda lr: Case(
            osw.recipes.spam(lr, interval=3, warmup=2, clip_delay=1), no_drive
        ),
        id="recipes-spam",
    ),
    pytest.param(
        lambda lr: Case(
            osw.recipes.adam_rel(lr),
            lambda t, state: (state, {"target_synced": np.bool_(t % 3 == 2)}),
        ),
        id="recipes-adam_rel",
    ),
    pytest.param(
        lambda lr: Case(
            osw.recipes.target_sync_reset(adam(lr)),
            lambda t, state: (state, {"target_synced": np.bool_(t % 3 == 2)}),
        ),
        id="recipes-target_sync_reset",
    ),
    pytest.param(
        lambda lr: Case(
            osw.resettable(adam(lr), osw.on_spike(factor=2.0, window=4, warmup=2)),
            lambda t, state: (state, {"value": np.float32(5.0 if t in (3, 6) else 1)}),
        ),
        id="resettable-on_spike_value",
    ),
    pytest.param(
        lambda lr: Case(
            osw.switch(
                [adam(lr), momentum(lr)],
                osw.any_of(
                    osw.on_spike(factor=2.0, window=4, warmup=2), osw.at_steps([6])
                ),
                cycle=True,
            ),
            lambda t, state: (
                osw.observe(state, np.float32(5.0 if t == 3 else 1.0)),
                {},
            ),
        ),
        id="switch-on_spike_observe_cycle",
    ),
]


def count_events(opt_state: Any) -> tuple[int, ...]:
    """The phase of every switch and the resets of every resettable inside."""
    switches = optax.tree.get_all_with_path(opt_state, "SwitchState")
    resettables = optax.tree.get_all_with_path(opt_state, "ResettableState")
    return tuple(int(state.phase) for _, state in switches) + tuple(
        int(state.resets) for _, state in resettables
    )


@contextlib.contextmanager
def backend_compilations():
    """Collects the function name of every XLA compilation in the block."""
    names = []

    def listener(event: str, duration: float, **kwargs: Any) -> None:
        del duration
        if event == COMPILE_EVENT:
            names.append(kwargs.get("fun_name"))

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield names
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


def leaf_types(tree: Any) -> list[tuple[Any, tuple[int, ...], Any, bool]]:
    """Path, shape, dtype and weak-type flag of every leaf."""
    return [
        (path, leaf.shape, leaf.dtype, leaf.weak_type)
        for path, leaf in jax.tree_util.tree_leaves_with_path(tree)
    ]


def run(
    tx: optax.GradientTransformation,
    drive: Drive,
    *,
    num_steps: int = NUM_STEPS,
    step: Callable | None = None,
) -> tuple[Any, Any]:
    """Params and state after ``num_steps`` driven float32 updates.

    On the way, checks that the state keeps its structure and strong types,
    and that a step made here compiles once.
    """
    params = make_params()
    own_step = step is None
    step = make_step(tx) if own_step else step
    opt_state = tx.init(params)
    expected_types = leaf_types(opt_state)
    assert not any(weak for *_, weak in expected_types), expected_types
    for t in range(num_steps):
        opt_state, extra_args = drive(t, opt_state)
        params, opt_state = step(params, opt_state, extra_args)
        assert leaf_types(opt_state) == expected_types
    if own_step:
        assert step._cache_size() == 1
    return params, opt_state


@functools.cache
def bare_case(factory: Callable) -> tuple[Case, Callable]:
    """The case and its jitted bare step, compiled once for all references."""
    case = factory(LEARNING_RATE)
    return case, make_step(case.tx)


@functools.cache
def bare_run(factory: Callable) -> tuple[Any, Any]:
    """The case run bare: the reference that wrapped runs must reproduce."""
    case, step = bare_case(factory)
    return run(case.tx, case.drive, step=step)


def assert_distinct_buffers(tree: Any) -> None:
    pointers = [leaf.unsafe_buffer_pointer() for leaf in jax.tree.leaves(tree)]
    assert len(set(pointers)) == len(pointers)


# --- The guarantees.


@pytest.mark.filterwarnings("error:Some donated buffers were not usable")
@pytest.mark.parametrize("factory", CASES)
def test_donated_bf16_step_compiles_once_and_keeps_state_types(factory):
    # bfloat16 params are where dtype drift would show; every float32 run
    # below (``run``) checks types and the single compilation too.
    dtype = jnp.bfloat16
    case = factory(LEARNING_RATE)
    params = make_params(dtype)
    opt_state = case.tx.init(params)
    expected_structure = jax.tree.structure(opt_state)
    expected_types = leaf_types(opt_state)
    assert not any(weak for *_, weak in expected_types), expected_types
    param_shapes = {leaf.shape for leaf in jax.tree.leaves(params)}
    moments = [
        leaf for leaf in jax.tree.leaves(opt_state) if leaf.shape in param_shapes
    ]
    assert moments and all(leaf.dtype == dtype for leaf in moments)

    # Donating one buffer through two leaves is an error, so this also checks
    # that every leaf owns its buffer, after init and after every update.
    step = make_step(case.tx, donate_argnums=(0, 1))
    events = {count_events(opt_state)}
    with backend_compilations() as compiled:
        for t in range(NUM_STEPS):
            assert_distinct_buffers(opt_state)
            opt_state, extra_args = case.drive(t, opt_state)
            extra_args = {**extra_args, "an_argument_nobody_expects": jnp.ones(3)}
            params, opt_state = step(params, opt_state, extra_args)
            assert jax.tree.structure(opt_state) == expected_structure
            assert leaf_types(opt_state) == expected_types
            events.add(count_events(opt_state))
    assert len(events) > 1, "the case never reset or switched"
    assert compiled.count("jit(step)") == 1, compiled
    assert step._cache_size() == 1
    assert all(leaf.dtype == dtype for leaf in jax.tree.leaves(params))


@pytest.mark.parametrize("factory", CASES)
def test_inside_chain_and_partition_trains_its_subtree_like_a_bare_run(factory):
    case = factory(LEARNING_RATE)
    tx = optax.chain(
        optax.identity(),
        optax.partition(
            {"case": case.tx, "other": optax.sgd(0.1)}, {"w": "case", "b": "other"}
        ),
    )
    params, _ = run(tx, case.drive)
    expected, _ = bare_run(factory)
    assert_trees_close(params["w"], expected["w"])
    bias = make_params()["b"]
    for _ in range(NUM_STEPS):
        bias = bias - 0.1 * jax.grad(loss_fn)({"b": bias})["b"]
    np.testing.assert_allclose(params["b"], bias, rtol=1e-6)


@pytest.mark.parametrize("factory", CASES)
def test_inside_multi_steps_updates_every_k_calls(factory):
    every_k = 2
    case = factory(LEARNING_RATE)
    tx = optax.MultiSteps(case.tx, every_k_schedule=every_k)
    params, _ = run(tx, case.drive, num_steps=every_k * NUM_STEPS)

    # Params stay put between inner updates, so the mean of the k gradients
    # is the gradient; only the last call's extra arguments reach the inner
    # update, while host-side steering of every call stays in its state.
    expected_params = make_params()
    case, bare_step = bare_case(factory)
    opt_state = case.tx.init(expected_params)
    for t in range(every_k * NUM_STEPS):
        opt_state, extra_args = case.drive(t, opt_state)
        if t % every_k == every_k - 1:
            expected_params, opt_state = bare_step(
                expected_params, opt_state, extra_args
            )
    assert_trees_close(params, expected_params)


@pytest.mark.parametrize("factory", CASES)
def test_inside_inject_hyperparams_follows_a_changed_learning_rate(factory):
    changed_at, new_rate = NUM_STEPS // 2, 3e-2
    tx = optax.inject_hyperparams(lambda learning_rate: factory(learning_rate).tx)(
        learning_rate=LEARNING_RATE
    )
    drive = factory(LEARNING_RATE).drive
    params = make_params()
    step = make_step(tx)
    opt_state = tx.init(params)
    for t in range(NUM_STEPS):
        if t == changed_at:
            opt_state.hyperparams["learning_rate"] = jnp.float32(new_rate)
        opt_state, extra_args = drive(t, opt_state)
        params, opt_state = step(params, opt_state, extra_args)
    assert step._cache_size() == 1

    # The same state structure under two fixed learning rates, one after the
    # other, is what an injected hyper-parameter change means.
    (before, before_step), after = bare_case(factory), factory(new_rate).tx
    after_step = make_step(after)
    expected = make_params()
    inner_state = before.tx.init(expected)
    for t in range(NUM_STEPS):
        step_now = before_step if t < changed_at else after_step
        inner_state, extra_args = drive(t, inner_state)
        expected, inner_state = step_now(expected, inner_state, extra_args)
    assert_trees_close(params, expected)


@pytest.mark.parametrize("factory", CASES)
def test_inside_apply_if_finite_skips_the_non_finite_update(factory):
    skipped = 2
    case = factory(LEARNING_RATE)
    tx = optax.apply_if_finite(case.tx, max_consecutive_errors=3)
    step = make_step(tx)
    params = make_params()
    opt_state = tx.init(params)
    for t in range(NUM_STEPS):
        opt_state, extra_args = case.drive(t, opt_state)
        grad_scale = np.float32(np.nan if t == skipped else 1.0)
        params, opt_state = step(params, opt_state, extra_args, grad_scale)
    assert int(opt_state.total_notfinite) == 1
    assert step._cache_size() == 1

    # The skipped call keeps its host-side steering but no update happens.
    expected = make_params()
    case, bare_step = bare_case(factory)
    inner_state = case.tx.init(expected)
    for t in range(NUM_STEPS):
        inner_state, extra_args = case.drive(t, inner_state)
        if t != skipped:
            expected, inner_state = bare_step(expected, inner_state, extra_args)
    assert_trees_close(params, expected)

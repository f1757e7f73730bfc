"""Host-side helpers find combinator states anywhere and never recompile."""

from collections.abc import Callable
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from training import make_params
from training import make_step

import optaxswap as osw

ADAM = optax.adam(1e-2)
SGD = optax.sgd(1e-2, momentum=0.9)
ADAMW = optax.adamw(1e-2)

Wrapper = Callable[[optax.GradientTransformation], optax.GradientTransformation]

# Each wrapper runs its inner transform's update once per two train steps at
# most, so two steps after a request are exactly one inner update.
OPTAX_WRAPPERS = [
    pytest.param(lambda tx: tx, id="bare"),
    pytest.param(lambda tx: optax.chain(optax.clip(1.0), tx), id="chain"),
    pytest.param(
        lambda tx: optax.partition(
            {"case": tx, "other": optax.sgd(0.1)}, {"w": "case", "b": "other"}
        ),
        id="partition",
    ),
    pytest.param(lambda tx: optax.MultiSteps(tx, every_k_schedule=2), id="multi_steps"),
    pytest.param(
        lambda tx: optax.inject_hyperparams(
            lambda learning_rate: optax.chain(tx, optax.scale(learning_rate))
        )(learning_rate=1.0),
        id="inject_hyperparams",
    ),
    pytest.param(lambda tx: optax.apply_if_finite(tx, 2), id="apply_if_finite"),
]
IN_A_SWITCH_PHASE = pytest.param(
    lambda tx: osw.switch_at([tx, SGD], [100]), id="in_switch_phase"
)
IN_A_RESETTABLE = pytest.param(
    lambda tx: osw.resettable(tx, osw.at_steps([100])), id="in_resettable"
)


def two_steps(tx: optax.GradientTransformation, opt_state, step=None):
    params = make_params()
    step = make_step(tx) if step is None else step
    for _ in range(2):
        params, opt_state = step(params, opt_state, {})
    return opt_state


@pytest.mark.parametrize("wrap", OPTAX_WRAPPERS + [IN_A_RESETTABLE])
def test_request_switch_and_phase_reach_a_switch_inside(wrap):
    tx = wrap(osw.switch([ADAM, SGD, ADAMW], osw.never()))
    opt_state = tx.init(make_params())
    assert int(osw.phase(opt_state)) == 0
    opt_state = two_steps(tx, osw.request_switch(opt_state))
    assert int(osw.phase(opt_state)) == 1


@pytest.mark.parametrize("wrap", OPTAX_WRAPPERS + [IN_A_SWITCH_PHASE])
def test_request_reset_and_reset_count_reach_a_resettable_inside(wrap):
    tx = wrap(osw.resettable(ADAM))
    opt_state = tx.init(make_params())
    assert int(osw.reset_count(opt_state)) == 0
    opt_state = two_steps(tx, osw.request_reset(opt_state))
    assert int(osw.reset_count(opt_state)) == 1


@pytest.mark.parametrize("wrap", OPTAX_WRAPPERS + [IN_A_RESETTABLE])
def test_observe_reaches_a_plateau_trigger_inside(wrap):
    tx = wrap(osw.switch_on_plateau([ADAM, SGD, ADAMW], patience=1))
    opt_state = tx.init(make_params())
    for validation_loss in [1.0, 1.0]:
        opt_state = osw.observe(opt_state, validation_loss)
    assert int(osw.phase(opt_state)) == 0
    opt_state = two_steps(tx, opt_state)
    assert int(osw.phase(opt_state)) == 1


def test_writers_reach_every_combinator_and_nested_ones():
    tx = optax.chain(
        osw.resettable(osw.resettable(ADAM), osw.never()),
        osw.switch_on_plateau([osw.resettable(SGD), ADAM], patience=2),
        osw.switch_on_plateau([ADAM, SGD], patience=1),
    )
    opt_state = osw.request_reset(tx.init(make_params()))
    for validation_loss in [1.0, 2.0]:
        opt_state = osw.observe(opt_state, validation_loss)
    opt_state = two_steps(tx, opt_state)
    nested, first_switch, second_switch = opt_state
    # The outer reset re-initializes the whole inner state, the nested
    # resettable's request and count included, as a fresh init would.
    assert int(nested.resets) == 1 and int(nested.inner_state.resets) == 0
    assert int(first_switch.inner_states[0].resets) == 1
    # One bad observation: the patience-1 switch advanced, the other counts it.
    assert int(first_switch.phase) == 0 and int(second_switch.phase) == 1
    assert int(first_switch.trigger_state.bad_count) == 1


@pytest.mark.parametrize(
    "make, reader",
    [
        (lambda: ADAM, osw.phase),
        (lambda: ADAM, osw.reset_count),
        (
            lambda: optax.chain(
                osw.switch_at([ADAM, SGD], [2]), osw.switch_at([SGD], [])
            ),
            osw.phase,
        ),
        (
            lambda: osw.switch_at([osw.switch_at([ADAM, SGD], [2]), SGD], [5]),
            osw.phase,
        ),
        (lambda: osw.resettable(osw.resettable(ADAM)), osw.reset_count),
    ],
    ids=["no_switch", "no_resettable", "two_switches", "nested_switches", "nested"],
)
def test_readers_raise_unless_exactly_one_state(make, reader):
    with pytest.raises(ValueError, match="exactly one"):
        reader(make().init(make_params()))


def leaf_types(tree):
    return [(leaf.shape, leaf.dtype, leaf.weak_type) for leaf in jax.tree.leaves(tree)]


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16], ids=["f32", "bf16"])
def test_helpers_keep_state_types_and_never_recompile_the_step(dtype):
    tx = optax.chain(
        osw.resettable(ADAM, osw.on_plateau(patience=1)),
        osw.switch_on_plateau([SGD, ADAM, ADAMW], patience=1, accumulation_size=2),
    )
    params = make_params(dtype)
    opt_state = tx.init(params)
    expected = (jax.tree.structure(opt_state), leaf_types(opt_state))
    step = make_step(tx)
    helpers = [
        osw.request_reset,
        osw.request_switch,
        lambda state: osw.observe(state, 1.0),
        lambda state: osw.observe(state, np.float32(2.0)),
        lambda state: osw.observe(state, jnp.bfloat16(3.0)),
        jax.jit(osw.request_switch),
        jax.jit(lambda state: osw.observe(state, np.float64(4.0))),
    ]
    for helper in helpers:
        opt_state = helper(opt_state)
        assert (jax.tree.structure(opt_state), leaf_types(opt_state)) == expected
        params, opt_state = step(params, opt_state, {})
    assert step._cache_size() == 1
    assert int(osw.reset_count(opt_state)) > 0 and int(osw.phase(opt_state)) == 2


def test_helpers_return_new_states_and_leave_their_input_alone():
    tx = osw.switch_on_plateau([ADAM, SGD], patience=1)
    opt_state = tx.init(make_params())
    before = jax.tree.map(np.asarray, opt_state)
    requested = osw.request_switch(osw.observe(osw.observe(opt_state, 1.0), 2.0))
    assert bool(requested.requested) and bool(requested.trigger_state.pending)
    jax.tree.map(np.testing.assert_array_equal, opt_state, before)


def test_phase_and_reset_count_are_int32_arrays():
    tx = osw.switch_at([osw.resettable(ADAM, osw.every(2)), SGD], [9])
    opt_state = tx.init(make_params())
    assert osw.phase(opt_state).dtype == jnp.int32
    assert osw.reset_count(opt_state).dtype == jnp.int32
    assert jax.jit(osw.phase)(opt_state).shape == ()


@pytest.mark.parametrize(
    "helper, make, fragments",
    [
        (
            lambda state: osw.observe(state, 1.0),
            lambda: osw.switch_at([ADAM, SGD], [3]),
            ("observe", "on_plateau or on_spike", "PlateauState", "SwitchState"),
        ),
        (
            osw.request_reset,
            lambda: osw.switch_at([ADAM, SGD], [3]),
            ("request_reset", "ResettableState", "SwitchState"),
        ),
        (
            osw.request_switch,
            lambda: optax.chain(optax.clip(1.0), osw.resettable(ADAM)),
            ("request_switch", "SwitchState", "tuple"),
        ),
        (
            osw.request_switch,
            lambda: ADAM,
            ("request_switch", "SwitchState", "tuple"),
        ),
    ],
    ids=["observe", "request_reset", "request_switch", "request_switch_bare"],
)
def test_writers_that_find_nothing_to_act_on_raise(helper, make, fragments):
    opt_state = make().init(make_params())
    with pytest.raises(ValueError, match=".*".join(map(re.escape, fragments))):
        helper(opt_state)
    # Under jit too: the search is on the pytree's structure.
    with pytest.raises(ValueError, match=re.escape(fragments[0])):
        jax.jit(helper)(opt_state)

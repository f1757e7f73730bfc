"""SPEC guarantee 2: a combinator equals re-instantiating the optimizer by hand.

The reference is the Keras/PyTorch way: run one optimizer, and when it is time
to switch or reset, call ``init`` of the next one on the current params and go
on with that. Both runs are jitted the same way, so they agree to float32
round-off (rtol 1e-6), and bitwise wherever XLA fuses alike.
"""

from collections.abc import Callable, Sequence
import functools
from typing import Any

import numpy as np
import optax
import pytest
from reference import PlateauModel
from reference import at_steps_fires
from reference import every_fires
from reference import switch_entries
from reference import switch_phases
from training import assert_trees_close
from training import make_params
from training import make_step

import optaxswap as osw

LEARNING_RATE = 1e-2
NUM_STEPS = 12
ADAM = optax.adam(LEARNING_RATE)
MOMENTUM = optax.sgd(LEARNING_RATE, momentum=0.9)
ADAMW = optax.adamw(LEARNING_RATE, weight_decay=0.1)

# enter(phase, tx, states, params) -> the state phase ``phase`` starts with,
# given every phase's current state.
EnterFn = Callable[[int, Any, Sequence[Any], Any], Any]


@functools.cache
def manual_step(tx: optax.GradientTransformation) -> Callable:
    """One jitted step per hand-driven optimizer, shared by all tests."""
    return make_step(tx)


def fresh_init(phase: int, tx: Any, states: Sequence[Any], params: Any) -> Any:
    """What Keras and PyTorch do: a brand-new optimizer state."""
    del phase, states
    return tx.init(params)


def manual_run(
    transforms: Sequence[optax.GradientTransformation],
    phases: Sequence[int],
    entries: Sequence[bool],
    enter: EnterFn = fresh_init,
) -> Any:
    """Runs ``transforms[phases[t]]`` for update ``t``, re-initializing where
    ``entries[t]`` says, before that update, with ``enter``."""
    params = make_params()
    states = [tx.init(params) for tx in transforms]
    for phase, entered in zip(phases, entries):
        tx = transforms[phase]
        if entered:
            states[phase] = enter(phase, tx, states, params)
        params, states[phase] = manual_step(tx)(params, states[phase], {})
    return params


def combinator_run(
    tx: optax.GradientTransformation,
    num_steps: int = NUM_STEPS,
    before_update: Callable[[int, Any], tuple[Any, dict[str, Any]]] | None = None,
) -> tuple[Any, Any]:
    params = make_params()
    opt_state = tx.init(params)
    step = make_step(tx)
    for t in range(num_steps):
        extra_args = {}
        if before_update is not None:
            opt_state, extra_args = before_update(t, opt_state)
        params, opt_state = step(params, opt_state, extra_args)
    return params, opt_state


def fires_to_phases(fires: Sequence[bool], num_phases: int, cycle: bool = False):
    return switch_phases(fires, num_phases, cycle), switch_entries(
        fires, num_phases, cycle
    )


@pytest.mark.parametrize("boundary", [1, 4, 11])
def test_switch_at_two_phases_matches_manual_reinit(boundary):
    transforms = [ADAM, MOMENTUM]
    params, opt_state = combinator_run(osw.switch_at(transforms, [boundary]))
    fires = [at_steps_fires([boundary], t) for t in range(NUM_STEPS)]
    assert_trees_close(params, manual_run(transforms, *fires_to_phases(fires, 2)))
    assert int(osw.phase(opt_state)) == 1


@pytest.mark.parametrize("boundaries", [(1, 2), (3, 7), (5, 11)])
def test_switch_at_three_phases_matches_manual_reinit(boundaries):
    transforms = [ADAM, MOMENTUM, ADAMW]
    params, opt_state = combinator_run(osw.switch_at(transforms, boundaries))
    fires = [at_steps_fires(boundaries, t) for t in range(NUM_STEPS)]
    assert_trees_close(params, manual_run(transforms, *fires_to_phases(fires, 3)))
    assert int(osw.phase(opt_state)) == 2


def test_switch_to_adam_again_restarts_its_moments_and_count():
    # Entering a phase made of the same optimizer still starts it afresh.
    transforms = [ADAM, ADAM]
    params, _ = combinator_run(osw.switch_at(transforms, [5]))
    fires = [at_steps_fires([5], t) for t in range(NUM_STEPS)]
    assert_trees_close(params, manual_run(transforms, *fires_to_phases(fires, 2)))


def test_switch_with_one_transform_equals_that_transform():
    params, _ = combinator_run(osw.switch([ADAM], osw.every(2)))
    assert_trees_close(params, manual_run([ADAM], [0] * NUM_STEPS, [False] * NUM_STEPS))


@pytest.mark.parametrize("n, start", [(1, None), (3, None), (4, 0), (5, 2)])
def test_resettable_every_matches_reinit_every_n_updates(n, start):
    params, opt_state = combinator_run(osw.resettable(ADAM, osw.every(n, start=start)))
    fires = [every_fires(n, start, t) for t in range(NUM_STEPS)]
    assert_trees_close(params, manual_run([ADAM], [0] * NUM_STEPS, fires))
    assert int(osw.reset_count(opt_state)) == sum(fires)


def reset_adam_fields(*names: str) -> EnterFn:
    """Re-initializes only Adam's state fields ``names``, by hand."""

    def enter(phase: int, tx: Any, states: Any, params: Any) -> Any:
        (adam_state, rest), (fresh, _) = states[phase], tx.init(params)
        return adam_state._replace(**{n: getattr(fresh, n) for n in names}), rest

    return enter


@pytest.mark.parametrize(
    "fields", [("mu", "nu"), ("count",), ("nu",)], ids=["spam", "adam_rel", "nu"]
)
def test_resettable_fields_matches_reinit_of_those_fields_only(fields):
    params, _ = combinator_run(osw.resettable(ADAM, osw.every(3), fields=fields))
    fires = [every_fires(3, None, t) for t in range(NUM_STEPS)]
    expected = manual_run([ADAM], [0] * NUM_STEPS, fires, reset_adam_fields(*fields))
    assert_trees_close(params, expected)


def test_resettable_fields_differs_from_a_full_reset():
    # Guards the test above: keeping Adam's count changes the trajectory.
    params, _ = combinator_run(osw.resettable(ADAM, osw.every(3), fields=("mu", "nu")))
    fires = [every_fires(3, None, t) for t in range(NUM_STEPS)]
    full_reset = manual_run([ADAM], [0] * NUM_STEPS, fires)
    assert not np.allclose(params["w"], full_reset["w"], rtol=1e-4)


def requests_at(steps: Sequence[int], request: Callable[[Any], Any]) -> Callable:
    def before_update(t: int, opt_state: Any) -> tuple[Any, dict[str, Any]]:
        return (request(opt_state) if t in steps else opt_state), {}

    return before_update


def test_request_reset_matches_manual_reinit_at_those_updates():
    steps = (2, 3, 9)
    params, opt_state = combinator_run(
        osw.resettable(ADAM), before_update=requests_at(steps, osw.request_reset)
    )
    fires = [t in steps for t in range(NUM_STEPS)]
    assert_trees_close(params, manual_run([ADAM], [0] * NUM_STEPS, fires))
    assert int(osw.reset_count(opt_state)) == 3


def test_request_reset_and_trigger_on_one_update_reset_once():
    params, opt_state = combinator_run(
        osw.resettable(ADAM, osw.every(4)),
        before_update=requests_at((4, 6), osw.request_reset),
    )
    fires = [t in (4, 6, 8) for t in range(NUM_STEPS)]
    assert_trees_close(params, manual_run([ADAM], [0] * NUM_STEPS, fires))
    assert int(osw.reset_count(opt_state)) == 3


def test_request_switch_matches_manual_reinit_and_stays_in_last_phase():
    transforms = [ADAM, MOMENTUM, ADAMW]
    steps = (3, 6, 9)
    params, opt_state = combinator_run(
        osw.switch(transforms, osw.never()),
        before_update=requests_at(steps, osw.request_switch),
    )
    fires = [t in steps for t in range(NUM_STEPS)]
    phases, entries = fires_to_phases(fires, 3)
    assert phases[-1] == 2 and entries.count(True) == 2
    assert_trees_close(params, manual_run(transforms, phases, entries))
    assert int(osw.phase(opt_state)) == 2


@pytest.mark.parametrize("num_phases", [2, 3])
def test_cycle_reenters_phase_zero_with_a_fresh_state(num_phases):
    transforms = [ADAM, MOMENTUM, ADAMW][:num_phases]
    params, _ = combinator_run(osw.switch(transforms, osw.every(2), cycle=True))
    fires = [every_fires(2, None, t) for t in range(NUM_STEPS)]
    phases, entries = fires_to_phases(fires, num_phases, cycle=True)
    assert 0 in phases[3:]
    assert_trees_close(params, manual_run(transforms, phases, entries))


def test_cycle_with_one_transform_reinitializes_it_on_every_fire():
    params, _ = combinator_run(osw.switch([ADAM], osw.every(3), cycle=True))
    fires = [every_fires(3, None, t) for t in range(NUM_STEPS)]
    phases, entries = fires_to_phases(fires, 1, cycle=True)
    assert entries == fires
    assert_trees_close(params, manual_run([ADAM], phases, entries))


def test_handoff_builds_the_entering_state_from_the_leaving_one():
    def mu_into_trace(context: osw.handoff.HandoffContext) -> Any:
        (adam_state, _), (trace_state, rest) = (
            context.from_state,
            context.fresh_state,
        )
        return trace_state._replace(trace=adam_state.mu), rest

    def enter_by_hand(phase: int, tx: Any, states: Any, params: Any) -> Any:
        trace_state, rest = tx.init(params)
        return trace_state._replace(trace=states[phase - 1][0].mu), rest

    transforms = [ADAM, MOMENTUM]
    params, _ = combinator_run(osw.switch_at(transforms, [5], handoff=mu_into_trace))
    fires = [at_steps_fires([5], t) for t in range(NUM_STEPS)]
    phases, entries = fires_to_phases(fires, 2)
    assert_trees_close(params, manual_run(transforms, phases, entries, enter_by_hand))
    plain = manual_run(transforms, phases, entries)
    assert not np.allclose(params["w"], plain["w"], rtol=1e-4)


def validation_losses(seed: int, num: int = NUM_STEPS) -> list[np.float32]:
    """A noisy decreasing loss that stalls: plateaus come and go."""
    rng = np.random.default_rng(seed)
    trend = np.maximum(1.0 - 0.15 * np.arange(num), 0.4)
    return list((trend + rng.normal(0.0, 0.05, num)).astype(np.float32))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_switch_on_plateau_with_observe_matches_reference_model(seed):
    losses = validation_losses(seed)
    transforms = [ADAM, MOMENTUM, ADAMW]

    def observe_then_update(t: int, opt_state: Any) -> tuple[Any, dict[str, Any]]:
        return osw.observe(opt_state, losses[t]), {}

    params, _ = combinator_run(
        osw.switch_on_plateau(transforms, patience=2, rtol=0.0),
        before_update=observe_then_update,
    )
    model = PlateauModel(patience=2, rtol=0.0)
    fires = []
    for loss in losses:
        model.observe(loss)
        fires.append(model.update())
    assert any(fires)
    assert_trees_close(params, manual_run(transforms, *fires_to_phases(fires, 3)))


@pytest.mark.parametrize("seed", [3, 4])
def test_resettable_on_plateau_with_value_matches_reference_model(seed):
    losses = validation_losses(seed)

    def value_arg(t: int, opt_state: Any) -> tuple[Any, dict[str, Any]]:
        return opt_state, {"value": losses[t]}

    tx = osw.resettable(ADAM, osw.on_plateau(patience=1, cooldown=1, rtol=0.0))
    params, opt_state = combinator_run(tx, before_update=value_arg)
    model = PlateauModel(patience=1, cooldown=1, rtol=0.0)
    fires = [model.update(loss) for loss in losses]
    assert any(fires)
    assert_trees_close(params, manual_run([ADAM], [0] * NUM_STEPS, fires))
    assert int(osw.reset_count(opt_state)) == sum(fires)


def test_resettable_inside_a_switch_phase_resets_only_while_active():
    # The inner resettable counts its own updates: it resets on updates 2 and
    # 4 of phase 0; phase 1 (SGD) starts fresh on update 5.
    tx = osw.switch_at([osw.resettable(ADAM, osw.every(2)), MOMENTUM], [5])
    params, _ = combinator_run(tx)
    phases = [0] * 5 + [1] * (NUM_STEPS - 5)
    entries = [t in (2, 4, 5) for t in range(NUM_STEPS)]
    assert_trees_close(params, manual_run([ADAM, MOMENTUM], phases, entries))


def test_switch_inside_a_resettable_restarts_from_its_first_phase():
    # Adam for updates 0-1, SGD from 2; the reset on update 5 restarts the
    # switch itself: Adam again for 5-6, then SGD from 7 (two updates later).
    tx = osw.resettable(osw.switch_at([ADAM, MOMENTUM], [2]), osw.at_steps([5]))
    params, _ = combinator_run(tx)
    phases = [0, 0, 1, 1, 1, 0, 0] + [1] * (NUM_STEPS - 7)
    entries = [t in (2, 5, 7) for t in range(NUM_STEPS)]
    assert_trees_close(params, manual_run([ADAM, MOMENTUM], phases, entries))

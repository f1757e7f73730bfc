"""The plateau rule, against the plain-Python model in ``reference.py``.

Every run goes through the public path: a ``switch`` between two ``scale``
transforms that cycles on each fire, so each update's output says which phase
it used, hence exactly on which update the trigger fired. Metric values reach
it through ``osw.observe`` between updates and through ``value=`` on them.
"""

import functools
from typing import Any

import hypothesis
from hypothesis import strategies as st
import jax
from jax import lax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from reference import PlateauModel
from reference import switch_phases

import optaxswap as osw

OBSERVE, UPDATE, UPDATE_WITH_VALUE = 0, 1, 2
SEQUENCE_LENGTH = 24


def plateau_config(**overrides: Any) -> tuple[tuple[str, Any], ...]:
    config = dict(
        patience=2, cooldown=0, rtol=0.0, atol=0.0, mode="min", accumulation_size=1
    )
    return tuple(sorted({**config, **overrides}.items()))


@functools.cache
def plateau_runner(config: tuple[tuple[str, Any], ...]):
    """A jitted run of a whole event sequence through one plateau switch.

    Returns ``run(kinds, values) -> (phase_used, best)`` with ``phase_used[i]``
    the phase of event ``i`` if it is an update (-1 for an observation).
    """
    tx = osw.switch(
        [optax.scale(0.0), optax.scale(1.0)],
        osw.on_plateau(**dict(config)),
        cycle=True,
    )
    params = jnp.zeros((), jnp.float32)
    ones = jnp.ones((), jnp.float32)

    def event(opt_state, kind_and_value):
        kind, value = kind_and_value

        def observe(opt_state):
            return osw.observe(opt_state, value), jnp.float32(-1.0)

        def update(opt_state):
            phase_used, opt_state = tx.update(ones, opt_state, params)
            return opt_state, phase_used

        def update_with_value(opt_state):
            phase_used, opt_state = tx.update(ones, opt_state, params, value=value)
            return opt_state, phase_used

        return lax.switch(kind, [observe, update, update_with_value], opt_state)

    @jax.jit
    def run(kinds, values):
        opt_state, phase_used = lax.scan(event, tx.init(params), (kinds, values))
        return phase_used, opt_state.trigger_state.best

    return run


def run_plateau(config, events):
    """Library and model on one event sequence: (library, model) results."""
    kinds = np.array([kind for kind, _ in events], np.int32)
    values = np.array([value for _, value in events], np.float32)
    phase_used, best = plateau_runner(config)(kinds, values)

    model = PlateauModel(**dict(config))
    fires = []
    for kind, value in zip(kinds, values):
        if kind == OBSERVE:
            model.observe(value)
        else:
            fires.append(model.update(value if kind == UPDATE_WITH_VALUE else None))
    updates = kinds != OBSERVE
    library = (np.asarray(phase_used)[updates].astype(int).tolist(), np.float32(best))
    expected = (switch_phases(fires, 2, cycle=True), model.best)
    return library, expected


def fired_updates(phases: list[int]) -> list[int]:
    """Indices of the updates that fired, from the phase each one used."""
    return [i for i, (a, b) in enumerate(zip([0] + phases, phases)) if a != b]


def assert_matches_model(config, events):
    (phases, best), (expected_phases, expected_best) = run_plateau(config, events)
    assert fired_updates(phases) == fired_updates(expected_phases)
    np.testing.assert_array_equal(best, expected_best)
    return fired_updates(phases)


def with_values(values, kind=UPDATE_WITH_VALUE):
    return [(kind, value) for value in values]


def observed_between_updates(values):
    return [event for value in values for event in ((OBSERVE, value), (UPDATE, 0))]


# --- Readable cases, each also checked against the model.


def test_value_given_to_an_update_fires_on_that_update():
    events = with_values([3.0, 2.0, 2.5, 2.1, 1.0])
    assert assert_matches_model(plateau_config(patience=2), events) == [3]


def test_observed_plateau_fires_on_the_next_update():
    events = [(OBSERVE, 3.0), (OBSERVE, 3.5), (OBSERVE, 4.0), (UPDATE, 0.0)]
    events += [(UPDATE, 0.0)]
    assert assert_matches_model(plateau_config(patience=2), events) == [0]


def test_several_plateaus_between_two_updates_fire_once():
    events = with_values([1.0, 2.0, 2.0, 2.0, 2.0], OBSERVE) + [(UPDATE, 0.0)] * 2
    assert assert_matches_model(plateau_config(patience=2), events) == [0]


def test_update_without_value_observes_nothing():
    events = [(UPDATE, 5.0)] * 6
    (_, best), _ = run_plateau(plateau_config(patience=1), events)
    assert assert_matches_model(plateau_config(patience=1), events) == []
    assert best == np.inf


@pytest.mark.parametrize("mode, start", [("min", np.inf), ("max", -np.inf)])
def test_best_starts_at_the_worst_value_and_first_finite_value_improves(mode, start):
    config = plateau_config(patience=1, mode=mode, rtol=0.5, atol=1.0)
    assert assert_matches_model(config, with_values([7.0, 7.0])) == [1]
    assert run_plateau(config, [(UPDATE, 0.0)])[0][1] == start


@pytest.mark.parametrize(
    "mode, values, fires",
    [
        # best = -10, margin = 0.1 * |-10|: only values below -11 improve
        # (a margin of 0.1 * best would count -10.5 as an improvement).
        ("min", [-10.0, -10.5, -10.9, -11.5, -11.6], [2]),
        # best = -10: only values above -9 improve.
        ("max", [-10.0, -9.5, -9.1, -8.5, -8.4], [2]),
        ("min", [10.0, 9.5, 9.1, 8.5], [2]),
        ("max", [10.0, 10.5, 10.9, 11.5], [2]),
    ],
)
def test_relative_margin_uses_the_magnitude_of_best(mode, values, fires):
    config = plateau_config(patience=2, mode=mode, rtol=0.1)
    assert assert_matches_model(config, with_values(values)) == fires


def test_atol_adds_to_the_margin():
    config = plateau_config(patience=1, atol=0.5)
    values = [1.0, 0.6, 0.4, 0.3]
    assert assert_matches_model(config, with_values(values)) == [1, 3]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("mode", ["min", "max"])
def test_non_finite_values_never_improve_and_count_as_bad(bad, mode):
    config = plateau_config(patience=2, mode=mode)
    events = with_values([1.0, bad, bad, bad, bad])
    assert assert_matches_model(config, events) == [2, 4]
    assert run_plateau(config, events)[0][1] == 1.0


def test_nan_in_an_accumulated_observation_makes_it_bad():
    config = plateau_config(patience=1, accumulation_size=2)
    events = with_values([1.0, 1.0, 0.0, np.nan, -5.0, -5.0])
    assert assert_matches_model(config, events) == [3]


def test_accumulation_judges_the_mean_of_consecutive_values():
    config = plateau_config(patience=1, accumulation_size=3)
    # Means: 2.0 (improves), 1.0 (improves), 2.0 (bad: fires on its third value).
    events = with_values([1.0, 2.0, 3.0, 0.0, 1.0, 2.0, 3.0, 2.0, 1.0])
    assert assert_matches_model(config, events) == [8]


def test_cooldown_ignores_observations_after_a_fire_and_keeps_best():
    config = plateau_config(patience=1, cooldown=2)
    # 1 improves; 2 fires; 3 and 0.5 fall in the cooldown (0.5 still sets
    # best); 0.7 fires; 0.4 and 0.45 fall in the next cooldown.
    events = with_values([1.0, 2.0, 3.0, 0.5, 0.7, 0.4, 0.45])
    assert assert_matches_model(config, events) == [1, 4]
    assert run_plateau(config, events)[0][1] == np.float32(0.4)


def test_best_is_kept_across_fires():
    config = plateau_config(patience=2)
    events = with_values([1.0, 1.5, 1.5, 1.2, 1.2, 0.9])
    assert assert_matches_model(config, events) == [2, 4]
    assert run_plateau(config, events)[0][1] == np.float32(0.9)


def test_value_and_observe_feed_one_accumulator():
    config = plateau_config(patience=1, accumulation_size=2)
    events = [(OBSERVE, 1.0), (UPDATE_WITH_VALUE, 1.0), (OBSERVE, 3.0)]
    events += [(UPDATE_WITH_VALUE, 3.0), (UPDATE, 0.0)]
    assert assert_matches_model(config, events) == [1]


# --- Many random sequences.

CONFIGS = [
    plateau_config(),
    plateau_config(patience=1, mode="max"),
    plateau_config(patience=3, cooldown=2, rtol=0.05),
    plateau_config(patience=1, cooldown=1, atol=0.25, mode="max", rtol=0.1),
    plateau_config(patience=2, accumulation_size=3, rtol=1e-4),
    plateau_config(patience=4, cooldown=3, accumulation_size=2, atol=0.1),
]

metric_values = st.one_of(
    st.sampled_from([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 1.0, 2.0]),
    st.floats(-4.0, 4.0, width=32),
    st.sampled_from([np.nan, np.inf, -np.inf]),
)
event_sequences = st.lists(
    st.tuples(st.sampled_from([OBSERVE, UPDATE, UPDATE_WITH_VALUE]), metric_values),
    min_size=SEQUENCE_LENGTH,
    max_size=SEQUENCE_LENGTH,
)


@hypothesis.settings(max_examples=60, derandomize=True)
@hypothesis.given(config=st.sampled_from(CONFIGS), events=event_sequences)
def test_random_sequences_fire_exactly_where_the_model_fires(config, events):
    assert_matches_model(config, events)


def test_random_sequences_exercise_fires_and_improvements():
    # Guards the property above: its sequences do reach plateaus.
    rng = np.random.default_rng(0)
    values = rng.choice([-1.0, 0.0, 0.5, 1.0, np.nan], size=SEQUENCE_LENGTH)
    events = with_values(values)
    assert len(assert_matches_model(CONFIGS[0], events)) >= 2


# --- Precision: comparisons in the metric's precision.


def fires_of(trigger: osw.Trigger, values) -> list[bool]:
    """One jitted trigger update per value, given as ``value=``."""
    update = jax.jit(trigger.update)
    state, fires = trigger.init(None), []
    for t, value in enumerate(values):
        context = osw.TriggerContext(jnp.int32(t), None, None, {"value": value})
        fire, state = update(state, context)
        fires.append(bool(fire))
    return fires


def test_with_x64_float64_metrics_falling_by_1e9_never_plateau():
    values = [np.float64(1.0) - 1e-9 * t for t in range(12)]
    with jax.enable_x64(True):
        trigger = osw.on_plateau(patience=2, rtol=0.0, atol=0.0)
        assert not any(fires_of(trigger, values))
        tx = osw.switch_on_plateau(
            [optax.sgd(0.1), optax.adam(0.1)], patience=2, rtol=0.0
        )
        state = tx.init(jnp.zeros(2))
        assert state.trigger_state.best.dtype == jnp.float64
        for value in values:
            state = osw.observe(state, value)
        assert not bool(state.trigger_state.pending)
        assert float(state.trigger_state.best) == values[-1]


def test_with_x64_a_float32_metric_keeps_its_value_in_the_float64_state():
    with jax.enable_x64(True):
        trigger = osw.on_plateau(patience=1)
        context = osw.TriggerContext(jnp.int32(0), None, None, {"value": 0.1})
        _, state = trigger.update(
            trigger.init(None), context._replace(extra_args={"value": np.float32(0.1)})
        )
        assert state.best.dtype == jnp.float64
        assert float(state.best) == float(np.float32(0.1))


def test_at_the_exact_atol_boundary_the_rounding_of_best_minus_atol_decides():
    # 0.3 - 0.1 is 0.20000002 in float32, above 0.2: an improvement; in
    # float64 (x64 on, as in Keras and PyTorch) it is 0.19999999999999998.
    values = [0.3, 0.2]
    assert fires_of(osw.on_plateau(patience=1, rtol=0.0, atol=0.1), values) == [
        False,
        False,
    ]
    with jax.enable_x64(True):
        trigger = osw.on_plateau(patience=1, rtol=0.0, atol=0.1)
        assert fires_of(trigger, [np.float64(v) for v in values]) == [False, True]

"""Counters at the int32 limit, and one long run.

Week-long jobs can push ``count`` towards ``2**31 - 1``. The design: every
counter saturates there (``optax.safe_increment``), ``at_steps`` boundaries are
below the limit so a saturated count never matches one, and ``every`` stops
firing once the count has saturated (otherwise a count stuck at the limit
would fire on every update, or never again, depending on the modulus).
States near the limit are built with ``_replace``, as a restored checkpoint
of a long run would hold them.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import reference

import optaxswap as osw

INT32_MAX = int(np.iinfo(np.int32).max)
PARAMS = jnp.array([1.0, -2.0])


def run(tx, state, num_updates, values=None):
    """Runs jitted updates (with ``value=`` if given); returns each new state."""

    @jax.jit
    def step(params, state, value):
        extra_args = {} if value is None else {"value": value}
        updates, state = tx.update(params, state, params, **extra_args)
        return optax.apply_updates(params, updates), state

    params, states = PARAMS, []
    for t in range(num_updates):
        value = None if values is None else jnp.float32(values[t])
        params, state = step(params, state, value)
        states.append(state)
    assert step._cache_size() == 1
    return states


def saturating_counts(first, num_updates):
    """The count each update sees, starting from ``first``, in plain Python."""
    counts, count = [], first
    for _ in range(num_updates):
        counts.append(count)
        count = min(count + 1, INT32_MAX)
    return counts


def every_fires_saturating(n, start, count):
    """``every`` on a count: the SPEC's rule, and no fire once saturated."""
    return count < INT32_MAX and reference.every_fires(n, start, count)


@pytest.mark.parametrize(
    ("n", "start", "offset"),
    [(1, None, 4), (2, None, 6), (2, 1, 6), (3, 0, 8), (7, 5, 3), (1, 0, 0)],
)
def test_every_fires_by_the_rule_then_stops_once_count_saturates(n, start, offset):
    tx = osw.resettable(optax.sgd(0.1, momentum=0.9), osw.every(n, start=start))
    first = INT32_MAX - offset
    state = tx.init(PARAMS)._replace(count=jnp.int32(first))
    states = run(tx, state, offset + 5)

    counts = saturating_counts(first, len(states))
    expected_resets = np.cumsum([every_fires_saturating(n, start, c) for c in counts])
    np.testing.assert_array_equal([int(s.resets) for s in states], expected_resets)
    np.testing.assert_array_equal(
        [int(s.count) for s in states], [min(c + 1, INT32_MAX) for c in counts]
    )
    assert all(s.count.dtype == jnp.int32 for s in states)


def test_at_steps_near_the_limit_fires_once_and_never_again_when_saturated():
    # cycle=True makes any spurious re-fire visible as a phase change.
    boundary = INT32_MAX - 2
    tx = osw.switch_at(
        [optax.sgd(0.1), optax.adam(0.1)], boundaries=[boundary], cycle=True
    )
    first = INT32_MAX - 5
    state = tx.init(PARAMS)._replace(count=jnp.int32(first))
    states = run(tx, state, 12)

    counts = saturating_counts(first, len(states))
    fires = [reference.at_steps_fires([boundary], c) for c in counts]
    expected = reference.switch_phases(fires, num_phases=2, cycle=True)
    assert [int(s.phase) for s in states] == expected == [0, 0, 0, 1] + [1] * 8
    assert int(states[-1].count) == INT32_MAX


def test_at_steps_rejects_the_saturated_count_as_a_boundary():
    with pytest.raises(ValueError, match="boundaries"):
        osw.at_steps([INT32_MAX])


def test_every_cycling_switch_freezes_its_phase_once_count_saturates():
    tx = osw.switch([optax.sgd(0.1), optax.adam(0.1)], osw.every(1), cycle=True)
    first = INT32_MAX - 3
    state = tx.init(PARAMS)._replace(count=jnp.int32(first))
    states = run(tx, state, 8)

    counts = saturating_counts(first, len(states))
    fires = [every_fires_saturating(1, None, c) for c in counts]
    expected = reference.switch_phases(fires, num_phases=2, cycle=True)
    assert [int(s.phase) for s in states] == expected == [1, 0, 1, 1, 1, 1, 1, 1]


def test_reset_counter_saturates_instead_of_wrapping():
    tx = osw.resettable(optax.adam(0.1), osw.every(1, start=0))
    state = tx.init(PARAMS)._replace(resets=jnp.int32(INT32_MAX - 2))
    states = run(tx, state, 5)
    assert [int(s.resets) for s in states] == [
        INT32_MAX - 1,
        INT32_MAX,
        INT32_MAX,
        INT32_MAX,
        INT32_MAX,
    ]
    assert int(osw.reset_count(states[-1])) == INT32_MAX


def test_requests_still_act_after_the_count_has_saturated():
    tx = osw.switch([optax.sgd(0.1), optax.adam(0.1)], osw.never())
    state = tx.init(PARAMS)._replace(count=jnp.int32(INT32_MAX))
    (state,) = run(tx, osw.request_switch(state), 1)
    assert int(osw.phase(state)) == 1
    assert int(state.count) == INT32_MAX


def test_plateau_bad_count_at_the_limit_fires_and_restarts_at_zero():
    patience = INT32_MAX
    tx = osw.switch_on_plateau(
        [optax.sgd(0.1), optax.adam(0.1), optax.sgd(0.2)], patience=patience
    )
    state = tx.init(PARAMS)
    state = state._replace(
        trigger_state=dataclasses.replace(
            state.trigger_state,
            best=jnp.float32(1.0),
            bad_count=jnp.int32(INT32_MAX - 2),
        )
    )
    model = reference.PlateauModel(patience=patience)
    model.best, model.bad_count = np.float32(1.0), INT32_MAX - 2
    values = [2.0] * 6
    expected_fires = [model.update(v) for v in values]

    states = run(tx, state, len(values), values)
    phases = [int(s.phase) for s in states]
    assert phases == reference.switch_phases(expected_fires, num_phases=3)
    assert phases == [0, 1, 1, 1, 1, 1]
    assert int(states[-1].trigger_state.bad_count) == model.bad_count == 4


def test_long_run_of_resets_matches_manual_reinitialization():
    """2**24 updates in one ``lax.scan``, against adam re-created by hand.

    Adam's own step counter (updates since its last re-creation) must agree
    with the hand-made copy on every single update; the params only to a
    loose tolerance, since Adam's normalization amplifies float32 round-off
    near a zero gradient.
    """
    num_updates, n = 2**24, 1000
    tx = osw.resettable(optax.adam(1e-3), osw.every(n))
    manual = optax.adam(1e-3)

    def grad(params, t):
        return params - jnp.sin(t.astype(jnp.float32) * 1e-4)

    @jax.jit
    def run_both(params):
        def body(carry, t):
            ours, our_state, theirs, their_state, disagreements = carry
            updates, our_state = tx.update(grad(ours, t), our_state, ours)
            ours = optax.apply_updates(ours, updates)
            # The plain-Python rule of every(n): fresh adam on t = n, 2n, ...
            fresh = (t >= n) & (t % n == 0)
            their_state = jax.tree.map(
                lambda new, old: jnp.where(fresh, new, old),
                manual.init(theirs),
                their_state,
            )
            updates, their_state = manual.update(grad(theirs, t), their_state)
            theirs = optax.apply_updates(theirs, updates)
            disagree = our_state.inner_state[0].count != their_state[0].count
            return (
                ours,
                our_state,
                theirs,
                their_state,
                disagreements + disagree,
            ), None

        carry = (params, tx.init(params), params, manual.init(params), jnp.int32(0))
        carry, _ = jax.lax.scan(body, carry, jnp.arange(num_updates, dtype=jnp.int32))
        return carry

    ours, our_state, theirs, their_state, disagreements = run_both(PARAMS)
    assert int(disagreements) == 0
    assert int(our_state.count) == num_updates
    assert int(our_state.resets) == (num_updates - 1) // n
    assert int(our_state.inner_state[0].count) == int(their_state[0].count)
    np.testing.assert_allclose(ours, theirs, atol=1e-2)

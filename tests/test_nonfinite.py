"""Non-finite gradients and metric values.

The documented behaviour (docs/reliability.md):

- ``optax.apply_if_finite(combinator)`` (around): a skipped step never reaches
  the combinator, so it is as if it never happened: ``count``, the trigger's
  state and a pending request are unchanged, and a ``value=`` given with it is
  not observed. Step-based triggers count applied updates.
- ``combinator(optax.apply_if_finite(inner))`` (inside): the combinator sees
  every step; ``count`` advances on skipped steps too, a fire on a skipped step
  still re-initializes the inner state, and only the inner optimizer's update
  is skipped. Step-based triggers count attempted updates.
- A non-finite metric value never improves on ``best``: it counts as a bad
  observation and never crashes. A metric that is not a floating-point scalar
  is a ``ValueError`` when the step is traced.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import reference

import optaxswap as osw

PARAMS = jnp.array([0.5, -1.5])
FINITE = jnp.array([0.1, -0.2])
# Which updates get a non-finite gradient, and which kind.
GRADIENT_KINDS = ["ok", "nan", "ok", "ok", "inf", "nan", "ok", "ok", "-inf", "ok"]
GRADIENT_KINDS += ["ok", "ok", "nan", "ok", "ok", "ok"]


def gradient(kind):
    bad = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf}.get(kind)
    return FINITE if bad is None else FINITE.at[0].set(bad)


def make_step(tx):
    @jax.jit
    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    return step


def test_apply_if_finite_around_skips_the_step_for_the_trigger_too():
    n = 3
    tx = optax.apply_if_finite(
        osw.resettable(optax.adam(0.1), osw.every(n)), max_consecutive_errors=100
    )
    step = make_step(tx)
    params, state = PARAMS, tx.init(PARAMS)
    applied, expected_resets, resets, counts = 0, 0, [], []
    for kind in GRADIENT_KINDS:
        before = params
        params, state = step(params, state, gradient(kind))
        if kind == "ok":
            expected_resets += reference.every_fires(n, None, applied)
            applied += 1
        else:
            np.testing.assert_array_equal(params, before)
        resets.append(int(osw.reset_count(state)))
        counts.append(int(state.inner_state.count))
        assert resets[-1] == expected_resets
        assert counts[-1] == applied
    assert step._cache_size() == 1
    assert max(resets) > 0


def test_apply_if_finite_around_keeps_a_request_for_the_next_finite_step():
    tx = optax.apply_if_finite(
        osw.switch([optax.sgd(0.1), optax.adam(0.1)], osw.never()),
        max_consecutive_errors=100,
    )
    step = make_step(tx)
    params, state = PARAMS, osw.request_switch(tx.init(PARAMS))
    params, state = step(params, state, gradient("nan"))
    assert int(osw.phase(state)) == 0
    params, state = step(params, state, gradient("ok"))
    assert int(osw.phase(state)) == 1


def test_apply_if_finite_around_does_not_observe_the_value_of_a_skipped_step():
    tx = optax.apply_if_finite(
        osw.switch_on_plateau([optax.sgd(0.1), optax.adam(0.1)], patience=1),
        max_consecutive_errors=100,
    )

    @jax.jit
    def step(params, state, grads, value):
        updates, state = tx.update(grads, state, params, value=value)
        return optax.apply_updates(params, updates), state

    params, state = PARAMS, tx.init(PARAMS)
    params, state = step(params, state, gradient("ok"), jnp.float32(1.0))
    # A worse value that arrives with a skipped step would fire (patience 1).
    params, state = step(params, state, gradient("nan"), jnp.float32(5.0))
    params, state = step(params, state, gradient("ok"), jnp.float32(0.5))
    assert int(osw.phase(state)) == 0
    assert float(state.inner_state.trigger_state.best) == 0.5


def test_apply_if_finite_inside_counts_skipped_steps_and_still_resets():
    n = 3
    tx = osw.resettable(
        optax.apply_if_finite(optax.adam(0.1), max_consecutive_errors=100),
        osw.every(n),
    )
    step = make_step(tx)
    params, state = PARAMS, tx.init(PARAMS)
    # Plain-Python model: resets follow every update; Adam's own counter
    # restarts at a reset and advances on finite updates only.
    adam_count = resets = 0
    for t, kind in enumerate(GRADIENT_KINDS):
        before = params
        params, state = step(params, state, gradient(kind))
        if reference.every_fires(n, None, t):
            resets, adam_count = resets + 1, 0
        adam_count += kind == "ok"
        assert int(state.count) == t + 1
        assert int(osw.reset_count(state)) == resets
        assert int(state.inner_state.inner_state[0].count) == adam_count
        if kind != "ok":
            np.testing.assert_array_equal(params, before)
    assert step._cache_size() == 1


def test_switch_entering_a_phase_on_a_skipped_step_starts_it_fresh():
    inner = optax.apply_if_finite(optax.adam(0.1), max_consecutive_errors=100)
    tx = osw.switch_at([optax.sgd(0.1), inner], boundaries=[2])
    step = make_step(tx)
    params, state = PARAMS, tx.init(PARAMS)
    for kind in ["ok", "ok", "nan", "ok"]:
        params, state = step(params, state, gradient(kind))
        assert bool(jnp.all(jnp.isfinite(params)))
    entered = state.inner_states[1]
    assert int(entered.total_notfinite) == 1
    assert int(entered.inner_state[0].count) == 1


@pytest.mark.parametrize("mode", ["min", "max"])
@pytest.mark.parametrize("accumulation_size", [1, 2])
def test_non_finite_metric_values_never_improve_and_never_crash(
    mode, accumulation_size
):
    values = [1.0, np.nan, np.inf, -np.inf, 2.0, np.nan, -3.0, np.inf, 0.5]
    values += [np.nan] * 7 + [-np.inf, 4.0, np.nan, np.nan]
    kwargs = dict(patience=2, cooldown=1, mode=mode)
    kwargs.update(accumulation_size=accumulation_size, rtol=0.0)
    tx = osw.switch_on_plateau(
        [optax.sgd(0.1), optax.adam(0.1), optax.sgd(0.05)], cycle=True, **kwargs
    )
    model = reference.PlateauModel(**kwargs)

    @jax.jit
    def step(params, state, value):
        updates, state = tx.update(params, state, params, value=value)
        return optax.apply_updates(params, updates), state

    params, state = PARAMS, tx.init(PARAMS)
    fires = []
    for value in values:
        params, state = step(params, state, jnp.float32(value))
        fires.append(model.update(value))
        assert bool(jnp.isfinite(state.trigger_state.best)) == np.isfinite(model.best)
        assert float(state.trigger_state.best) == pytest.approx(float(model.best))
        assert bool(jnp.all(jnp.isfinite(params)))
    assert int(osw.phase(state)) == reference.switch_phases(fires, 3, cycle=True)[-1]
    assert any(fires)


def test_observe_accepts_non_finite_values_as_bad_observations():
    tx = osw.switch_on_plateau([optax.sgd(0.1), optax.adam(0.1)], patience=2)
    state = tx.init(PARAMS)
    for value in [1.0, float("nan"), float("-inf")]:
        state = osw.observe(state, value)
    assert float(state.trigger_state.best) == 1.0
    _, state = tx.update(PARAMS, state, PARAMS)
    assert int(osw.phase(state)) == 1


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (jnp.ones(3), "shape"),
        (jnp.ones((1,)), "shape"),
        (jnp.int32(1), "floating"),
        (jnp.bool_(True), "floating"),
        (jnp.complex64(1.0), "floating"),
    ],
    ids=["vector", "length-1", "int", "bool", "complex"],
)
def test_a_metric_of_wrong_shape_or_dtype_fails_at_trace_time(value, message):
    tx = osw.switch_on_plateau([optax.sgd(0.1), optax.adam(0.1)])
    state = tx.init(PARAMS)

    def step(state, value):
        return tx.update(PARAMS, state, PARAMS, value=value)

    with pytest.raises(ValueError, match=rf"value must be .*{message}"):
        jax.jit(step).trace(state, value)
    with pytest.raises(ValueError, match=rf"value must be .*{message}"):
        jax.jit(osw.observe).trace(state, value)


def test_python_int_metric_is_rejected_with_a_hint():
    state = osw.switch_on_plateau([optax.sgd(0.1)]).init(PARAMS)
    with pytest.raises(ValueError, match=r"float\(loss\)"):
        osw.observe(state, 3)


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16, jnp.float32])
def test_metric_of_any_float_width_is_accepted(dtype):
    tx = osw.switch_on_plateau([optax.sgd(0.1), optax.adam(0.1)], patience=1)
    state = osw.observe(tx.init(PARAMS), jnp.asarray(2.0, dtype))
    assert state.trigger_state.best.dtype == jnp.float32
    assert float(state.trigger_state.best) == 2.0

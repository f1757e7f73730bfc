"""``on_spike`` against a plain-Python model of its documented rule."""

import collections
import math

import hypothesis
from hypothesis import strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optaxswap as osw


class SpikeModel:
    """The rule of ``on_spike``'s docstring, one value at a time."""

    def __init__(self, factor, window, warmup):
        self.factor, self.warmup = factor, warmup
        self.recent = collections.deque(maxlen=window)
        self.recorded = 0

    def is_spike(self, value):
        value = float(np.float32(value))
        spike = False
        if self.recorded >= self.warmup:
            mean = sum(self.recent) / len(self.recent)
            bound = mean + (self.factor - 1.0) * abs(mean)
            spike = not math.isfinite(value) or value > bound
        if math.isfinite(value):
            self.recent.append(value)
            self.recorded += 1
        return spike


def _fires_of_updates(trigger, values, *, via_observe=False):
    """Fires of one trigger update per value, given as ``value=`` or observed."""

    def body(state, value):
        if via_observe:
            state, extra_args = osw.observe(state, value), {}
        else:
            extra_args = {"value": value}
        context = osw.TriggerContext(jnp.int32(0), None, None, extra_args)
        fire, state = trigger.update(state, context)
        return state, fire

    _, fires = jax.jit(lambda values: jax.lax.scan(body, trigger.init(None), values))(
        jnp.asarray(values, jnp.float32)
    )
    return [bool(f) for f in fires]


# Values near the bound would compare differently in float32 and in Python's
# float64 arithmetic; a coarse grid keeps them apart from it.
_values = st.one_of(
    st.integers(-40, 200).map(lambda i: i / 8 + 1 / 64),
    st.sampled_from([math.inf, -math.inf, math.nan]),
)


@hypothesis.settings(max_examples=25)
@hypothesis.given(
    factor=st.sampled_from([1.0, 1.5, 3.0]),
    window=st.integers(1, 5),
    warmup=st.integers(1, 6),
    values=st.lists(_values, min_size=1, max_size=20),
    via_observe=st.booleans(),
)
def test_on_spike_fires_exactly_where_the_model_does(
    factor, window, warmup, values, via_observe
):
    trigger = osw.on_spike(factor=factor, window=window, warmup=warmup)
    model = SpikeModel(factor, window, warmup)
    fires = _fires_of_updates(trigger, values, via_observe=via_observe)
    assert fires == [model.is_spike(v) for v in values]


def test_on_spike_records_the_spike_so_a_lasting_level_stops_firing():
    trigger = osw.on_spike(factor=2.0, window=3)
    fires = _fires_of_updates(trigger, [1.0, 1.0, 1.0, 5.0, 5.0, 5.0, 5.0])
    # 5 > 2 * 1; then 5 > 2 * (7/3); then the mean 11/3 and 5 are too close.
    assert fires == [False, False, False, True, True, False, False]


def test_on_spike_after_observe_fires_on_the_next_update_only():
    tx = osw.resettable(optax.adam(0.1), osw.on_spike(factor=2.0, window=2))
    params = jnp.zeros(2)
    state = tx.init(params)
    resets = []
    for loss in [1.0, 1.0, 3.0, 3.0]:
        state = osw.observe(state, loss)
        state = osw.observe(state, loss)  # several spikes, one fire
        _, state = tx.update(params, state, params)
        resets.append(int(osw.reset_count(state)))
    assert resets == [0, 0, 1, 1]


def test_on_spike_composes_with_a_schedule_in_any_of():
    tx = osw.resettable(
        optax.sgd(0.1, momentum=0.9),
        osw.any_of(osw.every(4), osw.on_spike(factor=3.0, window=2)),
    )
    params = jnp.zeros(1)
    state = tx.init(params)

    @jax.jit
    def step(state, loss):
        _, state = tx.update(jnp.ones(1), state, params, value=loss)
        return state

    resets = []
    for loss in [1.0, 1.0, 1.0, 10.0, 1.0, 1.0, 1.0, 1.0, 1.0]:
        state = step(state, jnp.float32(loss))
        resets.append(int(osw.reset_count(state)))
    # The spike on update 3, the schedule on update 4 and 8.
    assert resets == [0, 0, 0, 1, 2, 2, 2, 2, 3]


def test_on_spike_averages_value_over_the_axis_so_replicas_agree():
    trigger = osw.on_spike(factor=2.0, window=1, axis_name="replica")

    def fires(values):
        state = trigger.init(None)
        out = []
        for t in range(values.shape[0]):
            context = osw.TriggerContext(jnp.int32(t), None, None, {"value": values[t]})
            fire, state = trigger.update(state, context)
            out.append(fire)
        return jnp.stack(out)

    # Replica 0 alone sees no spike at t=1 (1.5 < 2), replica 1 alone would
    # (4 > 2); their mean 2.75 > 2 * 1 is one.
    per_replica = jnp.array([[1.0, 1.5], [1.0, 4.0]])
    result = jax.vmap(fires, axis_name="replica")(per_replica)
    np.testing.assert_array_equal(result, [[False, True], [False, True]])


def test_on_spike_state_has_fixed_strong_dtypes():
    state = osw.on_spike(window=4).init(None)
    leaves = jax.tree.leaves(state)
    assert [leaf.dtype for leaf in leaves] == [jnp.float32, jnp.int32, jnp.bool_]
    assert not any(leaf.weak_type for leaf in leaves)
    assert state.recent.shape == (4,)


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        (dict(factor=0.5), ValueError, "factor"),
        (dict(factor=float("nan")), ValueError, "factor"),
        (dict(factor="2"), TypeError, "factor"),
        (dict(window=0), ValueError, "window"),
        (dict(window=2.0), TypeError, "window"),
        (dict(warmup=0), ValueError, "warmup"),
    ],
)
def test_on_spike_rejects_bad_arguments_naming_them(kwargs, error, name):
    with pytest.raises(error, match=name):
        osw.on_spike(**kwargs)


def test_with_x64_a_float64_spike_below_float32_resolution_fires():
    # factor=1: any value above the mean is a spike; 1 + 1e-12 rounds to 1.0
    # in float32.
    values = [np.float64(1.0), np.float64(1.0) + 1e-12]
    with jax.enable_x64(True):
        trigger = osw.on_spike(factor=1.0, window=1)
        state = trigger.init(None)
        assert state.recent.dtype == jnp.float64
        fires = []
        for t, value in enumerate(values):
            context = osw.TriggerContext(jnp.int32(t), None, None, {"value": value})
            fire, state = jax.jit(trigger.update)(state, context)
            fires.append(bool(fire))
    assert fires == [False, True]

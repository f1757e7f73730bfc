"""Flax NNX: ``nnx.Optimizer`` drives combinators; the helpers see its variables."""

import chex
from flax import nnx
import jax
import jax.numpy as jnp
import optax
import pytest
import reference

import optaxswap as osw

INPUTS = jax.random.normal(jax.random.key(0), (16, 3))
TARGETS = jnp.sin(INPUTS.sum(axis=1, keepdims=True))


class Regressor(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.hidden = nnx.Linear(3, 8, rngs=rngs)
        self.out = nnx.Linear(8, 1, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.out(jnp.tanh(self.hidden(x)))


def loss_fn(model: Regressor) -> jax.Array:
    return jnp.mean((model(INPUTS) - TARGETS) ** 2)


def make_tx() -> optax.GradientTransformationExtraArgs:
    return osw.switch_on_plateau(
        [optax.adam(0.02), optax.sgd(0.02, momentum=0.9)], patience=2
    )


def make_train_step():
    """A fresh ``nnx.jit`` train step and the count of its traces."""
    traces = []

    @nnx.jit
    def train_step(model, optimizer, value):
        traces.append(None)
        grads = nnx.grad(loss_fn)(model)
        optimizer.update(model, grads, value=value)

    return train_step, traces


# Each update gets one value; 3.0 and 2.0 improve, the next two do not, so
# with patience=2 the fourth update (index 3) switches.
VALUES = [3.0, 2.0, 2.5, 2.1, 1.0, 0.5]


def test_optimizer_update_with_value_switches_like_the_pure_optax_run():
    model = Regressor(nnx.Rngs(0))
    graphdef, params = nnx.split(model)
    params = nnx.as_pure(params)
    optimizer = nnx.Optimizer(model, make_tx(), wrt=nnx.Param)

    @jax.jit
    def reference_step(params, state, value):
        grads = jax.grad(lambda p: loss_fn(nnx.merge(graphdef, p)))(params)
        updates, state = tx.update(grads, state, params, value=value)
        return optax.apply_updates(params, updates), state

    train_step, _ = make_train_step()

    tx = make_tx()
    state = tx.init(params)
    plateau = reference.PlateauModel(patience=2)
    phases, expected_phases = [], []
    for value in VALUES:
        train_step(model, optimizer, jnp.float32(value))
        phases.append(int(osw.phase(optimizer.opt_state)[...]))
        params, state = reference_step(params, state, jnp.float32(value))
        expected_phases.append(plateau.update(value))

    assert phases == reference.switch_phases(expected_phases, num_phases=2)
    assert phases[3] == 1
    chex.assert_trees_all_close(
        nnx.as_pure(nnx.state(model)), params, rtol=1e-6, atol=1e-7
    )


def test_helpers_outside_jit_keep_the_variables_and_their_types():
    model = Regressor(nnx.Rngs(0))
    tx = optax.chain(osw.resettable(optax.scale_by_adam()), make_tx())
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    before = jax.tree.leaves(
        optimizer.opt_state, is_leaf=lambda node: isinstance(node, nnx.Variable)
    )

    optimizer.opt_state = osw.request_switch(optimizer.opt_state)
    optimizer.opt_state = osw.request_reset(optimizer.opt_state)
    optimizer.opt_state = osw.observe(optimizer.opt_state, 1.5)

    after = jax.tree.leaves(
        optimizer.opt_state, is_leaf=lambda node: isinstance(node, nnx.Variable)
    )
    assert [type(leaf) for leaf in after] == [type(leaf) for leaf in before]
    resettable_state, switch_state = optimizer.opt_state
    assert bool(resettable_state.requested[...])
    assert bool(switch_state.requested[...])
    assert float(switch_state.trigger_state.best[...]) == 1.5

    train_step, _ = make_train_step()
    train_step(model, optimizer, jnp.float32(1.0))
    assert int(osw.phase(optimizer.opt_state)[...]) == 1
    assert int(osw.reset_count(optimizer.opt_state)[...]) == 1


def test_request_switch_inside_nnx_jit_switches_on_the_next_update():
    model = Regressor(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, make_tx(), wrt=nnx.Param)

    @nnx.jit
    def request(optimizer):
        optimizer.opt_state = osw.request_switch(optimizer.opt_state)

    @nnx.jit
    def current_phase(optimizer):
        return osw.phase(optimizer.opt_state)[...]

    train_step, _ = make_train_step()
    train_step(model, optimizer, jnp.float32(1.0))
    request(optimizer)
    assert int(current_phase(optimizer)) == 0
    train_step(model, optimizer, jnp.float32(1.0))
    assert int(current_phase(optimizer)) == 1


def test_host_side_requests_do_not_retrace_the_train_step():
    model = Regressor(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, make_tx(), wrt=nnx.Param)
    train_step, traces = make_train_step()
    for step in range(6):
        if step == 2:
            optimizer.opt_state = osw.request_switch(optimizer.opt_state)
        if step == 4:
            optimizer.opt_state = osw.observe(optimizer.opt_state, 0.5)
        train_step(model, optimizer, jnp.float32(1.0))
    assert int(osw.phase(optimizer.opt_state)[...]) == 1
    assert len(traces) == 1


def chained_tx() -> optax.GradientTransformation:
    return optax.chain(osw.resettable(optax.scale_by_adam()), make_tx())


def test_writers_update_the_optimizer_itself_in_place_and_return_it():
    model = Regressor(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, chained_tx(), wrt=nnx.Param)
    variables = jax.tree.leaves(
        optimizer.opt_state, is_leaf=lambda node: isinstance(node, nnx.Variable)
    )
    assert osw.request_switch(optimizer) is optimizer
    assert osw.request_reset(optimizer) is optimizer
    assert osw.observe(optimizer, 1.5) is optimizer
    # The same variables, holding the new values.
    assert variables == jax.tree.leaves(
        optimizer.opt_state, is_leaf=lambda node: isinstance(node, nnx.Variable)
    )
    resettable_state, switch_state = optimizer.opt_state
    assert bool(resettable_state.requested[...])
    assert bool(switch_state.requested[...])
    assert float(switch_state.trigger_state.best[...]) == 1.5
    assert int(osw.phase(optimizer)) == 0 and int(osw.reset_count(optimizer)) == 0

    train_step, traces = make_train_step()
    train_step(model, optimizer, jnp.float32(1.0))
    assert int(osw.phase(optimizer)) == 1 and int(osw.reset_count(optimizer)) == 1
    assert len(traces) == 1


def test_writers_inside_nnx_jit_need_no_assignment():
    model = Regressor(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, chained_tx(), wrt=nnx.Param)

    @nnx.jit
    def steer(optimizer):
        osw.request_switch(optimizer)
        osw.request_reset(optimizer)

    @nnx.jit
    def read(optimizer):
        return osw.phase(optimizer), osw.reset_count(optimizer)

    steer(optimizer)
    train_step, _ = make_train_step()
    train_step(model, optimizer, jnp.float32(1.0))
    assert [int(count) for count in read(optimizer)] == [1, 1]


def test_helpers_work_on_nnx_state_of_the_optimizer():
    model = Regressor(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, chained_tx(), wrt=nnx.Param)
    state = nnx.state(optimizer)
    assert int(osw.phase(state)) == 0 and int(osw.reset_count(state)) == 0

    requested = osw.request_reset(osw.request_switch(state))
    # A new state; the optimizer (whose variables nnx.state shares) unchanged.
    assert not bool(optimizer.opt_state[1].requested[...])
    assert type(requested) is type(state)
    assert bool(requested["opt_state"][1]["requested"][...])
    assert isinstance(requested["opt_state"][1]["requested"], nnx.OptArray)
    nnx.update(optimizer, requested)

    train_step, _ = make_train_step()
    train_step(model, optimizer, jnp.float32(1.0))
    state = nnx.state(optimizer)
    assert int(osw.phase(state)) == 1 and int(osw.reset_count(state)) == 1


def test_observe_on_nnx_state_says_to_pass_the_optimizer():
    model = Regressor(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, make_tx(), wrt=nnx.Param)
    # nnx.state drops the trigger's settings (static metadata): patience...
    with pytest.raises(ValueError, match="PlateauState.*nnx.Optimizer"):
        osw.observe(nnx.state(optimizer), 1.0)

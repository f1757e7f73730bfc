"""Flax linen: ``TrainState.apply_gradients`` runs combinators unchanged."""

import chex
from flax import linen as nn
from flax.training import train_state
import jax
import jax.numpy as jnp
import optax
import orbax.checkpoint as ocp
import reference

import optaxswap as osw

INPUTS = jax.random.normal(jax.random.key(0), (16, 3))
TARGETS = jnp.sin(INPUTS.sum(axis=1, keepdims=True))


class Regressor(nn.Module):
    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return nn.Dense(1)(jnp.tanh(nn.Dense(8)(x)))


MODEL = Regressor()


def loss_fn(params) -> jax.Array:
    return jnp.mean((MODEL.apply(params, INPUTS) - TARGETS) ** 2)


def create_state(tx: optax.GradientTransformation) -> train_state.TrainState:
    params = MODEL.init(jax.random.key(1), INPUTS)
    return train_state.TrainState.create(apply_fn=MODEL.apply, params=params, tx=tx)


@jax.jit
def train_step(state: train_state.TrainState) -> train_state.TrainState:
    return state.apply_gradients(grads=jax.grad(loss_fn)(state.params))


@jax.jit
def train_step_observing_loss(state: train_state.TrainState) -> train_state.TrainState:
    """The documented pattern for a per-step-loss plateau with ``TrainState``."""
    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    state = state.replace(opt_state=osw.observe(state.opt_state, loss))
    return state.apply_gradients(grads=grads)


def test_apply_gradients_with_switch_at_matches_manual_reinit():
    adam, sgd = optax.adam(0.02), optax.sgd(0.02, momentum=0.9)
    state = create_state(osw.switch_at([adam, sgd], [3]))
    for _ in range(6):
        state = train_step(state)

    params = create_state(adam).params
    tx, opt_state = adam, adam.init(params)
    for step in range(6):
        if step == 3:
            tx, opt_state = sgd, sgd.init(params)
        updates, opt_state = tx.update(jax.grad(loss_fn)(params), opt_state, params)
        params = optax.apply_updates(params, updates)
    assert int(osw.phase(state.opt_state)) == 1
    assert int(state.step) == 6
    chex.assert_trees_all_close(state.params, params, rtol=1e-6, atol=1e-7)


def test_observing_the_loss_before_apply_gradients_equals_value_argument():
    tx = osw.switch_on_plateau(
        [optax.adam(0.05), optax.sgd(0.05, momentum=0.9)],
        patience=2,
        rtol=0.05,
        accumulation_size=2,
    )
    state = create_state(tx)
    params, opt_state = state.params, state.opt_state

    @jax.jit
    def step_with_value(params, opt_state):
        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params, value=loss)
        return optax.apply_updates(params, updates), opt_state

    phases, expected_phases = [], []
    for _ in range(30):
        state = train_step_observing_loss(state)
        params, opt_state = step_with_value(params, opt_state)
        phases.append(int(osw.phase(state.opt_state)))
        expected_phases.append(int(osw.phase(opt_state)))
    assert phases == expected_phases
    assert 1 in phases
    chex.assert_trees_all_close(state.params, params, rtol=1e-6, atol=1e-7)
    chex.assert_trees_all_close(state.opt_state, opt_state, rtol=1e-6, atol=1e-7)


def test_observing_a_validation_loss_switches_as_the_plateau_model_says():
    tx = osw.switch_on_plateau(
        [optax.adam(0.02), optax.sgd(0.02, momentum=0.9)], patience=2, cooldown=1
    )
    state = create_state(tx)
    plateau = reference.PlateauModel(patience=2, cooldown=1)
    val_losses = [3.0, 2.0, 2.5, 2.2, 1.0, 1.5, 1.4, 1.3, 1.2]
    phases, fires = [], []
    for val_loss in val_losses:
        state = state.replace(opt_state=osw.observe(state.opt_state, val_loss))
        plateau.observe(val_loss)
        state = train_step(state)
        fires.append(plateau.update())
        phases.append(int(osw.phase(state.opt_state)))
    assert phases == reference.switch_phases(fires, num_phases=2)
    assert 1 in phases


def test_requests_on_train_state_opt_state_inside_and_outside_jit():
    tx = optax.chain(
        optax.clip_by_global_norm(1.0),
        osw.switch([osw.resettable(optax.adam(0.02)), optax.sgd(0.02)], osw.never()),
    )
    state = train_step(create_state(tx))
    state = state.replace(opt_state=osw.request_reset(state.opt_state))
    state = train_step(state)
    assert int(osw.reset_count(state.opt_state)) == 1
    assert int(osw.phase(state.opt_state)) == 0

    @jax.jit
    def switch_now(state):
        return state.replace(opt_state=osw.request_switch(state.opt_state))

    state = train_step(switch_now(state))
    assert int(osw.phase(state.opt_state)) == 1


def test_train_step_compiles_once_across_switches():
    traces = []

    @jax.jit
    def counted_train_step(state):
        traces.append(None)
        return state.apply_gradients(grads=jax.grad(loss_fn)(state.params))

    tx = osw.switch_at([optax.adam(0.02), optax.sgd(0.02), optax.adam(0.01)], [2, 4])
    state = create_state(tx)
    for _ in range(6):
        state = counted_train_step(state)
    state = state.replace(opt_state=osw.request_switch(state.opt_state))
    state = counted_train_step(state)
    assert int(osw.phase(state.opt_state)) == 2
    assert len(traces) == 1


def test_whole_train_state_round_trips_through_orbax(tmp_path):
    tx = osw.switch_on_plateau([optax.adam(0.02), optax.sgd(0.02)], patience=1)
    state = create_state(tx)
    state = state.replace(opt_state=osw.observe(state.opt_state, 1.0))
    state = train_step(state.replace(opt_state=osw.observe(state.opt_state, 2.0)))
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(tmp_path / "state", state)
        checkpointer.wait_until_finished()
    abstract = jax.eval_shape(lambda: create_state(tx))
    restored = osw.restore_checkpoint(tmp_path / "state", abstract)
    assert int(osw.phase(restored.opt_state)) == 1
    assert jax.tree.structure(restored) == jax.tree.structure(state)
    chex.assert_trees_all_equal(restored, state)

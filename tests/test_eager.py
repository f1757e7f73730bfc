"""Eager calls: an update outside any trace runs as one compiled step."""

from typing import Any

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from training import count_compilations
from training import lbfgs_run
from training import loss_fn
from training import make_params

import optaxswap as osw

ADAM, SGD = optax.adam(0.1), optax.sgd(0.1, momentum=0.9)
# Values with a plateau at updates 2 and 4 (patience 1).
PLATEAU_VALUES = (3.0, 2.0, 2.5, 1.0, 1.5, 1.5)

CASES = {
    "resettable": (osw.resettable(ADAM, osw.every(2)), False),
    "switch_at": (osw.switch_at([ADAM, SGD, ADAM], [2, 4]), False),
    "switch_at_shared": (osw.switch_at([ADAM, SGD], [3], share_memory=True), False),
    "switch_at_fused": (osw.switch_at([ADAM, SGD], [3], execution="fused"), False),
    "switch_at_leafwise": (
        osw.switch_at([ADAM, SGD], [3], execution="leafwise"),
        False,
    ),
    "switch_on_plateau": (osw.switch_on_plateau([ADAM, SGD], patience=1), True),
    "in_chain": (
        optax.chain(optax.clip(1.0), osw.switch_at([ADAM, SGD], [3])),
        False,
    ),
}


def train(update, tx, wants_value: bool, steps: int = len(PLATEAU_VALUES)):
    """``steps`` updates through ``update``: the params and state after each."""
    params = make_params()
    state = tx.init(params)
    trajectory = []
    for step in range(steps):
        extra = {"value": PLATEAU_VALUES[step]} if wants_value else {}
        grads = jax.grad(loss_fn)(params)
        updates, state = update(grads, state, params, **extra)
        params = optax.apply_updates(params, updates)
        trajectory.append((params, state))
    return trajectory, state


@pytest.mark.parametrize("name", list(CASES))
def test_eager_updates_compile_once_and_equal_a_jitted_update(name):
    tx, wants_value = CASES[name]
    train(tx.update, tx, wants_value, steps=1)  # compiles the step
    with count_compilations() as compilations:
        eager, eager_state = train(tx.update, tx, wants_value)
    # Resets and switches included: nothing compiles again, neither the step
    # nor any conditional of it op by op.
    assert sum(compilations.values()) == 0, compilations
    jitted, jitted_state = train(jax.jit(tx.update), tx, wants_value)
    # The same program as under a user's jit: bit for bit.
    jax.tree.map(np.testing.assert_array_equal, eager, jitted)
    jax.tree.map(np.testing.assert_array_equal, eager_state, jitted_state)
    for leaf in jax.tree.leaves(eager_state):
        assert not jax.typeof(leaf).weak_type


def test_eager_updates_switch_and_reset_where_they_should():
    tx, _ = CASES["switch_at"]
    trajectory, _ = train(tx.update, tx, False)
    assert [int(osw.phase(state)) for _, state in trajectory] == [0, 0, 1, 1, 2, 2]
    tx, _ = CASES["switch_on_plateau"]
    trajectory, _ = train(tx.update, tx, True)
    assert [int(osw.phase(state)) for _, state in trajectory] == [0, 0, 1, 1, 1, 1]
    tx, _ = CASES["resettable"]
    trajectory, _ = train(tx.update, tx, False)
    # every(2) fires before updates 3 and 5.
    assert [int(osw.reset_count(state)) for _, state in trajectory] == [
        0,
        0,
        1,
        1,
        2,
        2,
    ]


def test_eager_update_equals_the_update_run_op_by_op():
    # What an eager call ran before it was compiled: the update itself,
    # every operation and conditional dispatched on its own.
    tx, _ = CASES["switch_at"]
    compiled, _ = train(tx.update, tx, False)
    op_by_op, _ = train(tx.update.__wrapped__, tx, False)
    for (params, state), (expected, expected_state) in zip(
        compiled, op_by_op, strict=True
    ):
        assert int(osw.phase(state)) == int(osw.phase(expected_state))
        jax.tree.map(
            lambda a, e: np.testing.assert_allclose(a, e, rtol=1e-6), params, expected
        )


def test_traced_update_is_traced_in_place():
    tx, _ = CASES["switch_at"]
    params = make_params()
    jaxpr = jax.make_jaxpr(tx.update)(params, tx.init(params), params)
    nested = [
        eqn for eqn in jaxpr.eqns if eqn.params.get("name") == "update_fn"
    ]  # a jit of the update inside the caller's trace
    assert not nested
    assert any(eqn.primitive.name == "cond" for eqn in jaxpr.eqns)


def test_update_with_a_callable_argument_stays_eager_and_trains_as_jitted():
    # L-BFGS's line search takes the objective as `value_fn`, which jit
    # cannot take as an argument: the call stays eager, as it always was.
    tx = osw.switch_at([optax.adam(0.05), optax.lbfgs()], [2])
    params, state = lbfgs_run(tx, 4, loss_fn, jit=False)
    expected, expected_state = lbfgs_run(tx, 4, loss_fn)
    assert int(osw.phase(state)) == int(osw.phase(expected_state)) == 1
    jax.tree.map(
        lambda a, e: np.testing.assert_allclose(a, e, rtol=1e-5), params, expected
    )


def test_eager_nnx_optimizer_update_compiles_once_and_switches():
    class Model(nnx.Module):
        def __init__(self, rngs: nnx.Rngs):
            self.linear = nnx.Linear(3, 2, rngs=rngs)

        def __call__(self, x: jax.Array) -> jax.Array:
            return self.linear(x)

    model = Model(nnx.Rngs(0))
    optimizer = nnx.Optimizer(
        model, osw.switch_on_plateau([ADAM, SGD], patience=1), wrt=nnx.Param
    )
    inputs = jnp.ones((4, 3))

    def loss(model: Any) -> jax.Array:
        return jnp.mean(model(inputs) ** 2)

    phases = []
    with count_compilations() as compilations:
        for value in PLATEAU_VALUES:
            grads = nnx.grad(loss)(model)
            optimizer.update(model, grads, value=value)
            phases.append(int(osw.phase(optimizer)[...]))
    assert phases == [0, 0, 1, 1, 1, 1]
    assert compilations["jit(update_fn)"] == 1, compilations

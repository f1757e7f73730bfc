"""SPEC guarantee 1 on a mesh: scalar leaves placed like the params, one compile.

A state whose counters sit on one device while the step returns them on the
params' mesh makes ``jit`` compile the step twice (once for the state from
``init``, once for the state from the step). The mesh here has the test
process's one device: the placement, and the extra compile it causes, do not
depend on the device count (the multi-process tests use 4 devices).
"""

import contextlib

import jax
import jax.numpy as jnp
from jax.sharding import AxisType
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import numpy as np
import optax
import pytest
from training import count_compilations

import optaxswap as osw

TRANSFORMS = {
    "switch_on_plateau": lambda: osw.switch_on_plateau(
        [optax.adam(0.1), optax.sgd(0.1, momentum=0.9)], patience=1
    ),
    "resettable_every": lambda: osw.resettable(optax.adam(0.1), osw.every(2)),
    "resettable_inside_switch_at": lambda: osw.switch_at(
        [osw.resettable(optax.adam(0.1), osw.every(2)), optax.sgd(0.1)], [3]
    ),
    "switch_sharing_memory": lambda: osw.switch_at(
        [optax.adam(0.1), optax.adam(0.01)], [2], share_memory=True
    ),
}


def placed_params(mesh: jax.sharding.Mesh) -> dict[str, jax.Array]:
    return jax.device_put(
        {"w": jnp.arange(6.0).reshape(3, 2), "b": jnp.ones(2)},
        NamedSharding(mesh, P()),
    )


def loss_fn(params):
    return jnp.sum((params["w"] - 1.0) ** 2) + jnp.sum(params["b"] ** 2)


CASES = [
    (name, axis_type, use_set_mesh)
    for name in ("switch_on_plateau", "resettable_inside_switch_at")
    for axis_type in (AxisType.Auto, AxisType.Explicit)
    for use_set_mesh in (False, True)
] + [
    ("resettable_every", AxisType.Explicit, False),
    ("switch_sharing_memory", AxisType.Explicit, False),
]


@pytest.mark.parametrize("name, axis_type, use_set_mesh", CASES)
def test_state_leaves_are_placed_like_the_params_and_the_step_compiles_once(
    name, axis_type, use_set_mesh
):
    mesh = jax.make_mesh((1,), ("data",), axis_types=(axis_type,))
    tx = TRANSFORMS[name]()
    in_mesh = jax.set_mesh(mesh) if use_set_mesh else contextlib.nullcontext()
    params = placed_params(mesh)
    opt_state = tx.init(params)
    for path, leaf in jax.tree_util.tree_flatten_with_path(opt_state)[0]:
        assert isinstance(leaf.sharding, NamedSharding), jax.tree_util.keystr(path)
        assert leaf.sharding.mesh == mesh, jax.tree_util.keystr(path)

    def train_step(params, opt_state, value):
        updates, opt_state = tx.update(
            jax.grad(loss_fn)(params), opt_state, params, value=value
        )
        return optax.apply_updates(params, updates), opt_state

    train_step = jax.jit(train_step)
    with count_compilations() as compilations, in_mesh:
        for value in [3.0, 4.0, 5.0, 6.0, 7.0]:  # Plateaus, so it switches.
            params, opt_state = train_step(params, opt_state, jnp.float32(value))
            if "resettable" in name:
                opt_state = osw.request_reset(opt_state)  # Host-side, eager.
    assert compilations["jit(train_step)"] == 1


def test_bare_optax_adam_state_compiles_the_step_twice_where_a_combinator_does_not():
    """The reference: what the placement saves, seen on optax's own adam."""
    mesh = jax.make_mesh((1,), ("data",))

    def run(tx):
        params = placed_params(mesh)
        opt_state = tx.init(params)

        def train_step(params, opt_state):
            grads = jax.grad(loss_fn)(params)
            updates, opt_state = tx.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state

        train_step = jax.jit(train_step)
        with count_compilations() as compilations:
            for _ in range(3):
                params, opt_state = train_step(params, opt_state)
        return compilations["jit(train_step)"], params

    bare_compiles, bare_params = run(optax.adam(0.1))
    wrapped_compiles, wrapped_params = run(osw.resettable(optax.adam(0.1)))
    assert (bare_compiles, wrapped_compiles) == (2, 1)
    np.testing.assert_array_equal(wrapped_params["w"], bare_params["w"])


def test_init_under_jit_and_eval_shape_is_unchanged_by_the_placement():
    mesh = jax.make_mesh((1,), ("data",), axis_types=(AxisType.Explicit,))
    tx = TRANSFORMS["switch_on_plateau"]()
    params = placed_params(mesh)
    eager = tx.init(params)
    jitted = jax.jit(tx.init)(params)
    abstract = jax.eval_shape(tx.init, params)
    assert jax.tree.structure(jitted) == jax.tree.structure(eager)
    for got, want, shape in zip(
        jax.tree.leaves(jitted), jax.tree.leaves(eager), jax.tree.leaves(abstract)
    ):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
        assert (shape.shape, shape.dtype) == (want.shape, want.dtype)


def test_params_on_a_single_device_leave_the_state_as_init_made_it():
    params = {"w": jnp.ones(3)}
    state = osw.resettable(optax.adam(0.1)).init(params)
    for leaf in jax.tree.leaves(state):
        assert isinstance(leaf.sharding, jax.sharding.SingleDeviceSharding)


def test_wrap_state_places_the_state_like_the_params():
    mesh = jax.make_mesh((1,), ("data",))
    params = placed_params(mesh)
    adam = optax.adam(0.1)
    adam_state = jax.device_get(adam.init(params))  # As from a host copy.
    tx = osw.switch_on_plateau([adam, optax.sgd(0.1)])
    state = osw.wrap_state(tx, params, adam_state, count=5)
    for leaf in jax.tree.leaves(state):
        assert isinstance(leaf.sharding, NamedSharding)
        assert leaf.sharding.mesh == mesh


@pytest.mark.parametrize("axis_type", [AxisType.Auto, AxisType.Explicit])
def test_an_eager_update_between_jitted_steps_keeps_the_placement(axis_type):
    # Eagerly, the update runs as one compiled step too, so the leaves it
    # creates (`requested`, the trigger's `pending`) come back placed on the
    # params' mesh, not on one device: the jitted step does not compile again.
    mesh = jax.make_mesh((1,), ("data",), axis_types=(axis_type,))
    tx = TRANSFORMS["switch_on_plateau"]()
    params = placed_params(mesh)
    opt_state = tx.init(params)

    def train_step(params, opt_state, value):
        updates, opt_state = tx.update(
            jax.grad(loss_fn)(params), opt_state, params, value=value
        )
        return optax.apply_updates(params, updates), opt_state

    jitted_step = jax.jit(train_step)
    with count_compilations() as compilations:
        for value in [3.0, 4.0, 5.0, 6.0]:
            params, opt_state = jitted_step(params, opt_state, jnp.float32(value))
            params, opt_state = train_step(params, opt_state, jnp.float32(value))
    assert compilations["jit(train_step)"] == 1
    assert int(osw.phase(opt_state)) == 1
    for path, leaf in jax.tree_util.tree_flatten_with_path(opt_state)[0]:
        assert isinstance(leaf.sharding, NamedSharding), jax.tree_util.keystr(path)

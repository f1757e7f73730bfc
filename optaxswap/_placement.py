"""Placing an optimizer state's own leaves on the mesh its params live on.

A state built outside ``jit`` mixes two kinds of leaves: those made from a
param (``jnp.zeros_like(param)``: Adam's moments) keep that param's sharding,
while those made from nothing (``jnp.zeros((), jnp.int32)``: counters, flags,
a plateau's best value) land on the default device, unless ``jax.set_mesh``
is active. A jitted train step returns every leaf on the params' mesh, and
``jit`` caches its executable by the shardings of its arguments: the first
call (state from ``init``) and every later one (state from the step) would
compile the step twice. Placing the unplaced leaves replicated on the
params' mesh at ``init`` makes the first call look like all the others.
"""

from typing import Any, TypeVar

import jax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec
import numpy as np

State = TypeVar("State")


def params_mesh(params: Any) -> jax.sharding.Mesh | None:
    """The one mesh that the concrete params are placed on, if there is one.

    ``None`` for params on a single device, on several meshes, or traced
    (under ``jit`` or ``jax.eval_shape`` the compiler places the state).
    """
    meshes = set()
    for leaf in jax.tree.leaves(params):
        if isinstance(leaf, jax.core.Tracer):
            return None
        sharding = getattr(leaf, "sharding", None)
        if isinstance(sharding, NamedSharding) and isinstance(
            sharding.mesh, jax.sharding.Mesh
        ):
            meshes.add(sharding.mesh)
    return meshes.pop() if len(meshes) == 1 else None


def place_like_params(state: State, params: Any) -> State:
    """``state`` with its leaves that are off the params' mesh replicated on it.

    Leaves already on the params' mesh (a moment sharded like its param) are
    kept as they are. A no-op for traced params or states (inside ``jit``,
    ``jax.eval_shape``) and for params that are not placed on one mesh.

    Args:
      state: an optimizer state, just built by an ``init``.
      params: the params it was built from.

    Returns:
      ``state``, every concrete array leaf of it on the params' mesh.
    """
    mesh = params_mesh(params)
    if mesh is None:
        return state
    leaves, treedef = jax.tree.flatten(state)
    if any(isinstance(leaf, jax.core.Tracer) for leaf in leaves):
        return state
    replicated = NamedSharding(mesh, PartitionSpec())
    unplaced = [
        index
        for index, leaf in enumerate(leaves)
        if isinstance(leaf, jax.Array)
        and not (
            isinstance(leaf.sharding, NamedSharding) and leaf.sharding.mesh == mesh
        )
    ]
    if not unplaced:
        return state
    if replicated.is_fully_addressable:
        placed = jax.device_put(
            [leaves[index] for index in unplaced], [replicated] * len(unplaced)
        )
    else:
        # In a multi-process run, device_put of a process-local array onto a
        # global sharding first checks with a collective, per leaf, that every
        # process holds the same value. Every process computed these leaves
        # from the same code and params: build each from its host copy.
        placed = [
            _replicated_from_host(leaves[index], replicated) for index in unplaced
        ]
    for index, leaf in zip(unplaced, placed):
        leaves[index] = leaf
    return jax.tree.unflatten(treedef, leaves)


def _replicated_from_host(leaf: jax.Array, sharding: NamedSharding) -> jax.Array:
    value = np.asarray(leaf)
    return jax.make_array_from_callback(
        value.shape, sharding, lambda index: value[index]
    )

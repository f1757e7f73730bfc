"""Finding and rewriting combinator states anywhere inside a pytree.

The host-side helpers work on whatever the user holds: a bare state, an
``optax.chain`` state, a Flax ``TrainState``, or an ``nnx.Optimizer`` state
whose leaves are NNX variables. Variables are pytree nodes, so traversal sees
through them; values are read as arrays and written back into variables of
the same type.
"""

from collections.abc import Callable
import sys
from typing import Any, TypeVar

import jax

State = TypeVar("State")


def _is_variable(node: Any) -> bool:
    # Flax is optional: if it was never imported, no NNX variable exists.
    nnx = sys.modules.get("flax.nnx")
    return nnx is not None and isinstance(node, nnx.Variable)


def unwrap(tree: Any) -> Any:
    """``tree`` with every NNX variable replaced by its array."""
    return jax.tree.map(
        lambda node: node[...] if _is_variable(node) else node,
        tree,
        is_leaf=_is_variable,
    )


def rewrap(like: Any, new: Any) -> Any:
    """``new`` with the arrays put back into ``like``'s variables."""
    return jax.tree.map(
        lambda old, value: old.replace(value) if _is_variable(old) else value,
        like,
        new,
        is_leaf=_is_variable,
    )


def _children(node: Any) -> list[Any]:
    return jax.tree.leaves(node, is_leaf=lambda child: child is not node)


def find(tree: Any, state_type: type[State]) -> list[State]:
    """Every ``state_type`` node in ``tree``, outer before inner."""
    found = []
    for node in jax.tree.leaves(
        tree, is_leaf=lambda node: isinstance(node, state_type)
    ):
        if isinstance(node, state_type):
            found.append(node)
            for child in _children(node):
                found.extend(find(child, state_type))
    return found


def rewrite(tree: Any, state_type: type[State], fn: Callable[[State], State]) -> Any:
    """``tree`` with ``fn`` applied to every ``state_type`` node.

    Nested nodes are rewritten first; ``fn`` receives plain arrays and its
    result goes back into the node's NNX variables, if it had any.
    """

    def visit(node: Any) -> Any:
        if not isinstance(node, state_type):
            return node
        node = jax.tree.map(
            lambda child: rewrite(child, state_type, fn),
            node,
            is_leaf=lambda child: child is not node,
        )
        return rewrap(node, fn(unwrap(node)))

    return jax.tree.map(visit, tree, is_leaf=lambda node: isinstance(node, state_type))

"""Finding and rewriting combinator states anywhere inside a pytree.

The host-side helpers work on whatever the user holds: a bare state, an
``optax.chain`` state, a Flax ``TrainState``, an ``nnx.Optimizer`` or its
state, whose leaves are NNX variables, or ``nnx.state(optimizer)``.
Variables are pytree nodes, so traversal sees through them; values are read
as arrays and written back into variables of the same type.

``nnx.state`` keeps a state's arrays but turns each ``NamedTuple`` or
dataclass node into a mapping of its fields, leaves out the fields that hold
no array (a stateless trigger's ``()``), and drops the static metadata (a
plateau trigger's settings). Such a mapping is recognized by its field
names: the readers and the request writers work on it, while a writer that
needs the settings raises.
"""

from collections.abc import Callable, Mapping
import dataclasses
import sys
from typing import Any, TypeVar

import jax

State = TypeVar("State")
Tree = TypeVar("Tree")


def _nnx() -> Any:
    # Flax is optional: if it was never imported, no NNX object exists.
    return sys.modules.get("flax.nnx")


def _is_variable(node: Any) -> bool:
    nnx = _nnx()
    return nnx is not None and isinstance(node, nnx.Variable)


def is_nnx_object(node: Any) -> bool:
    """Whether ``node`` is an NNX object (an ``nnx.Optimizer``, a module...)."""
    nnx = _nnx()
    return nnx is not None and isinstance(node, nnx.Pytree)


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


def _kinds(state_type: type) -> list[type]:
    """``state_type`` and its subclasses that are concrete state types."""
    kinds = [
        kind
        for kind in (state_type, *state_type.__subclasses__())
        if hasattr(kind, "_fields") or dataclasses.is_dataclass(kind)
    ]
    for subclass in state_type.__subclasses__():
        kinds.extend(kind for kind in _kinds(subclass) if kind not in kinds)
    return kinds


def _array_fields(kind: type) -> frozenset[str]:
    if hasattr(kind, "_fields"):
        return frozenset(kind._fields)
    return frozenset(
        declared.name
        for declared in dataclasses.fields(kind)
        if not declared.metadata.get("static", False)
    )


# The fields that hold nested pytrees rather than one array: nnx.state
# leaves them out where they hold no array at all.
_NESTED_FIELDS = frozenset({"trigger_state", "inner_state", "inner_states"})


def kind_of(node: Any, state_type: type[State]) -> type[State] | None:
    """The type of ``state_type`` that ``node`` is, or is the mapping of.

    A mapping is one of ``state_type`` if its keys are array fields of one of
    its kinds, all of them but possibly nested ones (as ``nnx.state`` writes
    the state).
    """
    if isinstance(node, state_type):
        return type(node)
    if isinstance(node, Mapping):
        keys = frozenset(node.keys())
        for kind in _kinds(state_type):
            fields = _array_fields(kind)
            if fields - _NESTED_FIELDS <= keys <= fields:
                return kind
    return None


def field_names(node: Any) -> tuple[str, ...]:
    """The field names of a state, or the keys of the mapping of one."""
    if isinstance(node, Mapping):
        return tuple(node.keys())
    if hasattr(node, "_fields"):
        return node._fields
    return tuple(declared.name for declared in dataclasses.fields(node))


def field(node: Any, name: str) -> Any:
    """Field ``name`` of a state, or of the mapping of one."""
    return node[name] if isinstance(node, Mapping) else getattr(node, name)


def _children(node: Any) -> list[Any]:
    return jax.tree.leaves(node, is_leaf=lambda child: child is not node)


def find(tree: Any, state_type: type[State]) -> list[Any]:
    """Every ``state_type`` node in ``tree``, or mapping of one, outer first."""

    def is_state(node: Any) -> bool:
        return kind_of(node, state_type) is not None

    found = []
    for node in jax.tree.leaves(tree, is_leaf=is_state):
        if is_state(node):
            found.append(node)
            for child in _children(node):
                found.extend(find(child, state_type))
    return found


def _apply_to_mapping(
    node: Mapping[str, Any], kind: type, fn: Callable[[Any], Any]
) -> Mapping[str, Any]:
    """``fn`` applied to the state that mapping ``node`` holds the fields of."""
    if not hasattr(kind, "_fields"):
        raise ValueError(
            f"found a {kind.__name__} as a mapping of its arrays, as"
            " nnx.state() writes it, without the settings it needs (they are"
            " static metadata, which nnx.state() drops): pass the"
            " nnx.Optimizer itself, or optimizer.opt_state, instead."
        )
    # A field that nnx.state left out held no array: () stands in for it.
    as_state = kind(**{name: node.get(name, ()) for name in kind._fields})
    new = rewrap(as_state, fn(unwrap(as_state)))
    return type(node)({name: getattr(new, name) for name in node})


def rewrite(tree: Tree, state_type: type[State], fn: Callable[[State], State]) -> Tree:
    """``tree`` with ``fn`` applied to every ``state_type`` node.

    Nested nodes are rewritten first; ``fn`` receives plain arrays and its
    result goes back into the node's NNX variables, if it had any. An NNX
    object (an ``nnx.Optimizer``) is updated in place, as NNX updates its
    objects, and returned.
    """

    def visit(node: Any) -> Any:
        kind = kind_of(node, state_type)
        if kind is None:
            return node
        node = jax.tree.map(
            lambda child: rewrite(child, state_type, fn),
            node,
            is_leaf=lambda child: child is not node,
        )
        if isinstance(node, state_type):
            return rewrap(node, fn(unwrap(node)))
        return _apply_to_mapping(node, kind, fn)

    def is_state(node: Any) -> bool:
        return kind_of(node, state_type) is not None

    new = jax.tree.map(visit, tree, is_leaf=is_state)
    if is_nnx_object(tree):
        _assign_in_place(tree, new)
        return tree
    return new


def _assign_in_place(target: Any, source: Any) -> None:
    """Writes the values of ``source``'s variables into ``target``'s."""
    targets = jax.tree.leaves(target, is_leaf=_is_variable)
    sources = jax.tree.leaves(source, is_leaf=_is_variable)
    for old, new in zip(targets, sources, strict=True):
        if _is_variable(old):
            old[...] = new[...]

"""Partial resets: the leaves of a state that sit under given field names."""

from collections.abc import Sequence
from typing import Any

import jax
import optax


def check_fields(fields: Sequence[str] | None) -> tuple[str, ...] | None:
    """``None``, or a non-empty tuple of field names."""
    if fields is None:
        return None
    if isinstance(fields, str):
        raise TypeError(
            f"fields must be a tuple of field names, got the string {fields!r};"
            f" write ({fields!r},) for a single field."
        )
    try:
        fields = tuple(fields)
    except TypeError:  # Not iterable: an int, a 0-d array.
        raise TypeError(
            f"fields must be None or a tuple of field names, got {fields!r} of"
            f" type {type(fields).__name__}."
        ) from None
    if not fields:
        raise ValueError("fields must name at least one field, got ().")
    for i, name in enumerate(fields):
        if not isinstance(name, str):
            raise TypeError(f"fields[{i}] must be a str, got {name!r}.")
    return fields


def _key_name(key: Any) -> str | None:
    for attribute in ("name", "key"):
        name = getattr(key, attribute, None)
        if isinstance(name, str):
            return name
    return None


def _existing_names(state: Any) -> list[str]:
    paths = [path for path, _ in jax.tree_util.tree_flatten_with_path(state)[0]]
    names = {_key_name(key) for path in paths for key in path}
    names.discard(None)
    return sorted(names)


def leaves_named(state: Any, fields: tuple[str, ...]) -> frozenset[int]:
    """Indices (in ``jax.tree.leaves`` order) of the leaves under ``fields``.

    A name matches wherever it occurs, as a NamedTuple field, a dict key or a
    NamedTuple's class name: the lookup of ``optax.tree.get_all_with_path``,
    which this applies to a copy of ``state`` whose leaves are their indices.

    Raises:
      ValueError: naming the fields that exist, if a name matches nothing.
    """
    leaves, treedef = jax.tree.flatten(state)
    numbered = jax.tree.unflatten(treedef, range(len(leaves)))
    indices = set()
    for name in fields:
        found = optax.tree.get_all_with_path(numbered, name)
        if not found:
            raise ValueError(
                f"fields names {name!r}, which the inner state does not have;"
                f" its fields are {_existing_names(state)}."
            )
        for _, subtree in found:
            indices.update(jax.tree.leaves(subtree))
    return frozenset(indices)


def replace_named(current: Any, fresh: Any, fields: tuple[str, ...]) -> Any:
    """``current`` with the leaves under ``fields`` taken from ``fresh``."""
    chosen = leaves_named(current, fields)
    current_leaves, treedef = jax.tree.flatten(current)
    fresh_leaves = treedef.flatten_up_to(fresh)
    return jax.tree.unflatten(
        treedef,
        [
            fresh_leaf if i in chosen else leaf
            for i, (leaf, fresh_leaf) in enumerate(zip(current_leaves, fresh_leaves))
        ],
    )

"""Shared slots: the phases of a ``switch`` keep their big buffers in one set.

Only the active phase's state is ever used (a fused step computes the
others' updates and discards them), and entering a phase re-initializes it,
so the phases can take turns in the same buffers. What
they share are their *params-shaped* subtrees (Adam's ``mu`` and ``nu``,
SGD's ``trace``, L-BFGS's ``params``): the ``k``-th such subtree of every
phase lives in slot ``k``, a tree of the params' structure. Adam followed by
SGD with momentum then holds two params-sized trees, not three. Everything
else (counters, step sizes, factored or stacked statistics) stays in the
phase's *rest*, where a :class:`SlotRef` marks each subtree that moved out.

Sharing whole params-shaped subtrees, rather than single leaves, is what
keeps the state usable by the tools that know the params' structure:
``optax.tree_utils.tree_map_params`` finds every slot (it initializes the
transform on a placeholder for the params, and a slot is exactly where that
placeholder lands), and no layout needs to live in the state as metadata.

Kept whole, in the rest, are the nested states that something finds by name:
a combinator or metric-watching trigger nested inside a phase (the host-side
helpers steer it), and a state holding the objective's ``value``, which
``optax.value_and_grad_from_state`` reads with its ``grad`` (L-BFGS).
"""

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import optax


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True)
class SlotRef:
    """Marks, in a phase's rest, the params-shaped subtree held by slot ``index``."""

    index: int


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class SharedStates:
    """The states of all phases of a ``switch(..., share_memory=True)``.

    Attributes:
      slots: one params-shaped tree per slot, in the dtypes that every phase
        using it can be stored in exactly (their promotion); a slot holds the
        state of whichever phase used it last.
      rests: per phase, its state with each shared subtree replaced by a
        :class:`SlotRef`.
    """

    slots: tuple[Any, ...]
    rests: tuple[Any, ...]

    def phase_state(self, index: int, like: Any = None) -> optax.OptState:
        """The state of phase ``index``, meaningful only while it is active.

        Args:
          index: the phase.
          like: a tree with the phase's own dtypes (e.g. from
            ``jax.eval_shape`` of its ``init``) to read the slots in; by
            default the slots' dtypes.
        """
        state = jax.tree.map(
            lambda node: self.slots[node.index] if isinstance(node, SlotRef) else node,
            self.rests[index],
            is_leaf=_is_slot_ref,
        )
        if like is None:
            return state
        return jax.tree.map(lambda leaf, ref: leaf.astype(ref.dtype), state, like)

    def split(self, index: int, state: optax.OptState) -> dict[Any, Any]:
        """``state`` of phase ``index`` as values of the cells it owns.

        The keys are ``("slot", k)`` for the slots it uses and ``("rest",
        index)`` for its rest; every value has the dtypes of what it replaces.
        """
        cells = {}

        def take(node: Any, value: Any) -> Any:
            if isinstance(node, SlotRef):
                slot = self.slots[node.index]
                cells["slot", node.index] = jax.tree.map(
                    lambda leaf, ref: jnp.asarray(leaf, ref.dtype), value, slot
                )
                return node
            return value

        rest = jax.tree.map(take, self.rests[index], state, is_leaf=_is_slot_ref)
        cells["rest", index] = rest
        return cells

    def cells(self) -> dict[Any, Any]:
        """Every slot and rest, keyed as in :meth:`split`."""
        cells: dict[Any, Any] = {("slot", k): slot for k, slot in enumerate(self.slots)}
        cells.update({("rest", i): rest for i, rest in enumerate(self.rests)})
        return cells

    def replace_cells(self, cells: dict[Any, Any]) -> "SharedStates":
        """The shared states with the given cells replaced."""
        return SharedStates(
            slots=tuple(
                cells.get(("slot", k), slot) for k, slot in enumerate(self.slots)
            ),
            rests=tuple(
                cells.get(("rest", i), rest) for i, rest in enumerate(self.rests)
            ),
        )

    def owned(self, index: int) -> list[Any]:
        """The keys of the cells phase ``index`` reads and writes."""
        refs = jax.tree.leaves(self.rests[index], is_leaf=_is_slot_ref)
        slots = sorted({ref.index for ref in refs if isinstance(ref, SlotRef)})
        return [("slot", k) for k in slots] + [("rest", index)]


def _is_slot_ref(node: Any) -> bool:
    # A switch nested in a phase (kept whole) has slot markers of its own:
    # the traversal stops at its shared states.
    return isinstance(node, SlotRef | SharedStates)


def _is_params_shaped(node: Any, params: Any) -> bool:
    if jax.tree.structure(node) != jax.tree.structure(params):
        return False
    return all(
        jnp.shape(leaf) == jnp.shape(ref)
        for leaf, ref in zip(jax.tree.leaves(node), jax.tree.leaves(params))
    )


def share(states: tuple[Any, ...], params: Any, keep: Any) -> SharedStates:
    """Packs one initial state per phase into shared slots.

    Args:
      states: the initial state of each phase.
      params: the params the states were initialized from (or the
        placeholder of ``optax.tree_utils.tree_map_params``).
      keep: ``keep(node) -> bool``, true for a node to keep whole in its
        phase's rest.

    Returns:
      The :class:`SharedStates`; a slot starts with the value of the first
      phase that uses it, so phase 0's state reads back exactly.
    """
    slot_trees: list[list[Any]] = []
    rests = []
    for state in states:
        moved: list[Any] = []

        def move_out(node: Any, moved: list[Any] = moved) -> Any:
            if keep(node) or not _is_params_shaped(node, params):
                return node
            moved.append(node)
            return SlotRef(len(moved) - 1)

        rests.append(
            jax.tree.map(
                move_out,
                state,
                is_leaf=lambda node: keep(node) or _is_params_shaped(node, params),
            )
        )
        for k, tree in enumerate(moved):
            if k == len(slot_trees):
                slot_trees.append([])
            slot_trees[k].append(tree)
    slots = tuple(
        jax.tree.map(
            # A copy, so that no slot shares a buffer with another leaf.
            lambda first, *others: jnp.array(
                first, jnp.result_type(first, *others) if others else first.dtype
            ),
            trees[0],
            *trees[1:],
        )
        for trees in slot_trees
    )
    return SharedStates(slots=slots, rests=tuple(rests))

"""Shared slots: the phases of a ``switch`` store their states in one set of buffers.

Only the active phase's state is ever read, and entering a phase
re-initializes it, so the phases can take turns in the same buffers: leaves of
equal shape and dtype share one buffer (a "slot"). Adam followed by SGD with
momentum then holds two parameter-sized buffers, not three.

Which slot holds which leaf of which phase is static: it lives in the state as
pytree metadata (like :class:`optaxswap.PlateauState`'s config), so the state
alone says how to read any phase's state, and ``jax.eval_shape(tx.init,
params)`` gives a complete restore target.

A state the host-side helpers steer (a combinator or metric-watching trigger
nested inside a phase) is kept whole, in buffers of its own: pooled, its node
would vanish from the pytree and the helpers could not find it, and it could
not be rewritten while its phase is inactive without writing into slots that
the active phase owns.
"""

from collections.abc import Callable, Sequence
import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import optax

from optaxswap import _engine


@dataclasses.dataclass(frozen=True)
class SlotLayout:
    """Where the leaves of each phase's state live (static metadata).

    Attributes:
      treedefs: per phase, the tree structure of its state, down to its array
        leaves and its kept nodes.
      slot_indices: per phase, for each of those leaves in order, its slot,
        or ``None`` for a kept node (the phase's next entry in ``kept``).
    """

    treedefs: tuple[Any, ...]
    slot_indices: tuple[tuple[int | None, ...], ...]


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class SharedStates:
    """The states of all phases of a ``switch(..., share_memory=True)``.

    Attributes:
      slots: the buffers, one per leaf of the phase that needs the most of a
        given shape and dtype; a slot holds the state of whichever phase used
        it last.
      kept: per phase, the nested states it keeps whole (combinator and
        trigger states that the helpers steer), in order.
      layout: the static :class:`SlotLayout`.
    """

    slots: tuple[jax.Array, ...]
    kept: tuple[tuple[Any, ...], ...]
    layout: SlotLayout = dataclasses.field(metadata=dict(static=True))

    def phase_state(self, index: int) -> optax.OptState:
        """The state of phase ``index``, meaningful only while it is active."""
        kept = iter(self.kept[index])
        leaves = [
            next(kept) if slot is None else self.slots[slot]
            for slot in self.layout.slot_indices[index]
        ]
        return jax.tree.unflatten(self.layout.treedefs[index], leaves)

    def with_phase_state(
        self, index: int, inner_state: optax.OptState
    ) -> "SharedStates":
        """The slots with phase ``index``'s state written in, dtypes kept."""
        leaves = self.layout.treedefs[index].flatten_up_to(inner_state)
        slots = list(self.slots)
        kept = []
        for slot, leaf in zip(self.layout.slot_indices[index], leaves):
            if slot is None:
                kept.append(leaf)
            else:
                slots[slot] = jnp.asarray(leaf, slots[slot].dtype)
        all_kept = list(self.kept)
        all_kept[index] = _engine.cast_like(tuple(kept), self.kept[index])
        return dataclasses.replace(self, slots=tuple(slots), kept=tuple(all_kept))


def _slot_key(leaf: Any) -> tuple[tuple[int, ...], jnp.dtype]:
    leaf = jnp.asarray(leaf)
    return leaf.shape, leaf.dtype


def share(
    states: Sequence[optax.OptState], keep: Callable[[Any], bool]
) -> SharedStates:
    """Packs one state per phase into shared slots.

    The ``k``-th leaf of a given shape and dtype in each phase goes to the
    ``k``-th slot of that shape and dtype, so the slots are as many as the
    phase that needs most of each kind. A slot starts with the value of the
    first phase that uses it, so phase 0's state is exactly ``states[0]``.

    Args:
      states: the initial state of each phase.
      keep: true for a node to keep whole rather than pool (a nested state
        that the host-side helpers must be able to find and rewrite).

    Returns:
      The :class:`SharedStates`, every slot a distinct strong-typed buffer.
    """
    slots: list[jax.Array] = []
    slots_by_key: dict[Any, list[int]] = {}
    treedefs, slot_indices, kept = [], [], []
    for state in states:
        leaves, treedef = jax.tree.flatten(state, is_leaf=keep)
        used: dict[Any, int] = {}
        indices: list[int | None] = []
        phase_kept = []
        for leaf in leaves:
            if keep(leaf):
                indices.append(None)
                phase_kept.append(leaf)
                continue
            key = _slot_key(leaf)
            rank = used.get(key, 0)
            used[key] = rank + 1
            same_kind = slots_by_key.setdefault(key, [])
            if rank == len(same_kind):
                same_kind.append(len(slots))
                # A copy, so that no two slots share a buffer and none is weak.
                slots.append(jnp.array(leaf, dtype=key[1]))
            indices.append(same_kind[rank])
        treedefs.append(treedef)
        slot_indices.append(tuple(indices))
        kept.append(tuple(phase_kept))
    return SharedStates(
        slots=tuple(slots),
        kept=tuple(kept),
        layout=SlotLayout(treedefs=tuple(treedefs), slot_indices=tuple(slot_indices)),
    )

"""An experiment kept for the record: a switch without a conditional per step.

Every phase's update runs on every step and ``jnp.where`` keeps the active
phase's results, with the phases' states in shared slots (as
``switch(..., share_memory=True)`` stores them). With no conditional in the
way, XLA may fuse the update into ``apply_updates`` as it does for the bare
optimizer, which is the only way under the "one extra write of the updates"
floor of a conditional; the price is that every phase's arithmetic and memory
traffic runs in every phase. ``docs/performance.md`` reports what it costs.
Re-initialization stays under ``lax.cond``, as it is rare.
"""

from collections.abc import Sequence
from typing import NamedTuple

import jax
from jax import lax
import jax.numpy as jnp
import optax

import optaxswap as osw
from optaxswap import _slots


class BranchFreeState(NamedTuple):
    count: jax.Array
    phase: jax.Array
    requested: jax.Array
    inner_states: _slots.SharedStates


def branchfree_switch(
    transforms: Sequence[optax.GradientTransformation], boundaries: Sequence[int]
) -> optax.GradientTransformationExtraArgs:
    transforms = tuple(optax.with_extra_args_support(tx) for tx in transforms)
    last = len(transforms) - 1
    trigger = osw.at_steps(boundaries)

    def init_fn(params):
        return BranchFreeState(
            count=jnp.zeros((), jnp.int32),
            phase=jnp.zeros((), jnp.int32),
            requested=jnp.zeros((), jnp.bool_),
            inner_states=_slots.share(
                [tx.init(params) for tx in transforms], keep=lambda node: False
            ),
        )

    def update_fn(updates, state, params=None, **extra_args):
        context = osw.TriggerContext(state.count, updates, params, extra_args)
        fire = trigger.update((), context)[0] | state.requested
        advances = fire & (state.phase < last)
        phase = jnp.where(advances, state.phase + 1, state.phase)
        shared = state.inner_states
        for index in range(1, last + 1):
            shared = lax.cond(
                advances & (phase == index),
                lambda shared, index=index: shared.with_phase_state(
                    index, transforms[index].init(params)
                ),
                lambda shared: shared,
                shared,
            )
        slots = list(shared.slots)
        selected = None
        for index, tx in enumerate(transforms):
            new_updates, inner_state = tx.update(
                updates, shared.phase_state(index), params, **extra_args
            )
            written = shared.with_phase_state(index, inner_state).slots
            active = phase == index
            for slot in set(shared.layout.slot_indices[index]) - {None}:
                slots[slot] = jnp.where(active, written[slot], slots[slot])
            new_updates = optax.tree.cast_like(new_updates, updates)
            selected = (
                new_updates
                if selected is None
                else jax.tree.map(
                    lambda new, old, active=active: jnp.where(active, new, old),
                    new_updates,
                    selected,
                )
            )
        return selected, BranchFreeState(
            count=optax.safe_increment(state.count),
            phase=phase,
            requested=jnp.zeros((), jnp.bool_),
            inner_states=_slots.SharedStates(tuple(slots), shared.kept, shared.layout),
        )

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)

"""The naive switch, kept as a baseline: one ``lax.switch`` over all phases.

This is the obvious implementation of the SPEC's ``switch`` (and what
optaxswap's first version did): a ``lax.cond`` re-initializes the entering
phase, then one ``lax.switch`` runs the active phase, and every branch returns
the whole tuple of phase states. XLA then copies the states of the inactive
phases through the conditional on every step; ``benchmarks/`` measures that
cost against the per-phase conditionals of :func:`optaxswap.switch`.
"""

from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
from jax import lax
import jax.numpy as jnp
import optax

import optaxswap as osw


class NaiveSwitchState(NamedTuple):
    count: jax.Array
    phase: jax.Array
    requested: jax.Array
    trigger_state: Any
    inner_states: tuple[optax.OptState, ...]


def naive_switch(
    transforms: Sequence[optax.GradientTransformation], trigger: osw.Trigger
) -> optax.GradientTransformationExtraArgs:
    transforms = tuple(optax.with_extra_args_support(tx) for tx in transforms)
    last = len(transforms) - 1

    def init_fn(params: optax.Params) -> NaiveSwitchState:
        return NaiveSwitchState(
            count=jnp.zeros((), jnp.int32),
            phase=jnp.zeros((), jnp.int32),
            requested=jnp.zeros((), jnp.bool_),
            trigger_state=trigger.init(params),
            inner_states=tuple(tx.init(params) for tx in transforms),
        )

    def update_fn(updates, state, params=None, **extra_args):
        context = osw.TriggerContext(state.count, updates, params, extra_args, state)
        fire, trigger_state = trigger.update(state.trigger_state, context)
        fire = fire | state.requested
        phase = jnp.where(fire, jnp.minimum(state.phase + 1, last), state.phase)

        def enter(index):
            def enter_phase(inner_states):
                fresh = optax.tree.cast_like(
                    transforms[index].init(params), inner_states[index]
                )
                return inner_states[:index] + (fresh,) + inner_states[index + 1 :]

            return enter_phase

        inner_states = lax.cond(
            fire & (state.phase < last),
            lambda states: lax.switch(
                phase, [enter(i) for i in range(last + 1)], states
            ),
            lambda states: states,
            state.inner_states,
        )

        def run(index):
            def run_phase(updates, inner_states):
                new_updates, new_state = transforms[index].update(
                    updates, inner_states[index], params, **extra_args
                )
                new_state = optax.tree.cast_like(new_state, inner_states[index])
                return optax.tree.cast_like(new_updates, updates), (
                    inner_states[:index] + (new_state,) + inner_states[index + 1 :]
                )

            return run_phase

        updates, inner_states = lax.switch(
            phase, [run(i) for i in range(last + 1)], updates, inner_states
        )
        return updates, NaiveSwitchState(
            count=optax.safe_increment(state.count),
            phase=phase,
            requested=jnp.zeros((), jnp.bool_),
            trigger_state=trigger_state,
            inner_states=inner_states,
        )

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)

"""The one code path both combinators share.

Evaluate the trigger, re-initialize under ``lax.cond`` if it fired (or a
request is pending), then run the active inner transform, inside the compiled
step, on a state whose structure and dtypes never change.

A combinator describes itself as a list of :class:`Phase` s (``resettable``
has one, ``switch`` one per transform). Each phase gets its own conditionals,
and each conditional changes only that phase's part of the state: JAX drops
the outputs that every branch forwards unchanged, so no conditional carries
another phase's state, and XLA has nothing to copy. One ``lax.switch`` whose
branches all return every phase's state makes XLA copy the inactive states on
every step (``benchmarks/`` keeps that design as a baseline to measure).
"""

from collections.abc import Callable, Sequence
from typing import Any, Generic, NamedTuple, Protocol, Self, TypeVar

import jax
from jax import lax
import jax.numpy as jnp
import optax

from optaxswap import _triggers


class CombinatorState(Protocol):
    """The fields :func:`guarded_update` reads and writes."""

    count: jax.Array
    requested: jax.Array
    trigger_state: Any

    def _replace(self, **fields: Any) -> Self: ...


State = TypeVar("State", bound=CombinatorState)


class Phase(NamedTuple, Generic[State]):
    """One inner transform, as the engine drives it.

    Attributes:
      enter: ``enter(state) -> state`` with this phase's inner state
        re-initialized (from the params of this update); ``None`` for a phase
        that is never entered (a switch's first phase, unless it cycles).
      run: ``run(updates, state) -> (updates, state)``, this phase's inner
        update on its part of the state.
    """

    enter: Callable[[State], State] | None
    run: Callable[[optax.Updates, State], tuple[optax.Updates, State]]


def require_params(params: optax.Params | None, owner: str) -> None:
    if params is None:
        raise ValueError(
            f"{owner}.update needs params: pass them as"
            f" `tx.update(updates, state, params)`, since a reset or switch"
            f" re-initializes the inner state from the current params."
        )


def cast_like(tree: Any, like: Any) -> Any:
    """``tree`` with the dtypes (strong, never weak) of ``like``.

    Both branches of a ``lax.cond`` must agree on every dtype, and a fresh
    ``init`` can produce weak types or another float width than the state it
    replaces; casting keeps the state's types fixed for the whole run. Python
    scalars (say, from a hand-off function) become arrays of ``like``'s dtype.
    """
    return jax.tree.map(lambda leaf, ref: jnp.asarray(leaf, ref.dtype), tree, like)


def _unchanged(state: State) -> State:
    return state


def _skip(updates: optax.Updates, state: State) -> tuple[optax.Updates, State]:
    return updates, state


def fire_and_enter(
    state: State,
    updates: optax.Updates,
    params: optax.Params,
    extra_args: dict[str, Any],
    *,
    trigger: _triggers.Trigger,
    phases: Sequence[Phase[State]],
    advance: Callable[[State, jax.Array], tuple[State, jax.Array]],
) -> State:
    """Evaluates the trigger, books the fire, re-initializes what it enters.

    The first half of :func:`guarded_update`: one ``lax.cond`` per phase that
    can be entered, each changing only that phase's part of the state.
    """
    context = _triggers.TriggerContext(
        count=state.count,
        updates=updates,
        params=params,
        extra_args=extra_args,
        state=state,
    )
    fire, trigger_state = trigger.update(state.trigger_state, context)
    fire = _triggers.as_fire(fire, "the trigger") | state.requested
    state, entered = advance(state._replace(trigger_state=trigger_state), fire)
    # Re-initializing before the inner update makes the firing update the
    # first one of the fresh state, exactly as re-instantiating the optimizer
    # between two steps would.
    for index, phase in enumerate(phases):
        if phase.enter is not None:
            state = lax.cond(entered == index, phase.enter, _unchanged, state)
    return state


def finish(state: State) -> State:
    """The state after an update: ``count`` advanced, ``requested`` cleared."""
    return state._replace(
        count=optax.safe_increment(state.count),
        requested=jnp.zeros((), jnp.bool_),
    )


def guarded_update(
    state: State,
    updates: optax.Updates,
    params: optax.Params | None,
    extra_args: dict[str, Any],
    *,
    trigger: _triggers.Trigger,
    phases: Sequence[Phase[State]],
    advance: Callable[[State, jax.Array], tuple[State, jax.Array]],
    active_phase: Callable[[State], jax.Array] | None = None,
    owner: str,
) -> tuple[optax.Updates, State]:
    """One update of a combinator, in the order the SPEC fixes.

    Args:
      state: the combinator's state.
      updates: the updates given to ``update``.
      params: the params given to ``update``.
      extra_args: the extra keyword arguments given to ``update``.
      trigger: decides whether this update fires.
      phases: the inner transforms, one :class:`Phase` each.
      advance: ``advance(state, fire) -> (state, entered)``: the state after
        this update's bookkeeping of a fire, and the int32 index of the phase
        this update enters (re-initializes), ``-1`` for none.
      active_phase: ``active_phase(state) -> int32``, the phase whose inner
        update runs (after ``advance``); needed with more than one phase.
      owner: the combinator's name, for error messages.

    Returns:
      The updates and the new state, with ``count`` advanced and ``requested``
      cleared.
    """
    require_params(params, owner)
    state = fire_and_enter(
        state,
        updates,
        params,
        extra_args,
        trigger=trigger,
        phases=phases,
        advance=advance,
    )
    if len(phases) == 1:
        updates, state = phases[0].run(updates, state)
    else:
        # A chain of one conditional per phase, not one lax.switch: each
        # conditional then carries only its own phase's state (and the
        # updates, which the inactive phases forward).
        active = active_phase(state)
        for index, phase in enumerate(phases):
            updates, state = lax.cond(active == index, phase.run, _skip, updates, state)
    return updates, finish(state)

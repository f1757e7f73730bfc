"""The one code path both combinators share.

Evaluate the trigger, re-initialize under ``lax.cond`` if it fired (or a
request is pending), then run the active inner transform, inside the compiled
step, on a state whose structure and dtypes never change.
"""

from collections.abc import Callable
from typing import Any, Protocol, Self

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
    replaces; casting keeps the state's types fixed for the whole run.
    """
    return optax.tree.cast_like(tree, like)


def guarded_update(
    state: CombinatorState,
    updates: optax.Updates,
    params: optax.Params | None,
    extra_args: dict[str, Any],
    *,
    trigger: _triggers.Trigger,
    reinitialize: Callable[[CombinatorState], CombinatorState],
    apply_active: Callable[
        [optax.Updates, CombinatorState], tuple[optax.Updates, CombinatorState]
    ],
    owner: str,
) -> tuple[optax.Updates, CombinatorState]:
    """One update of a combinator, in the order the SPEC fixes.

    Args:
      state: the combinator's state.
      updates: the updates given to ``update``.
      params: the params given to ``update``.
      extra_args: the extra keyword arguments given to ``update``.
      trigger: decides whether this update fires.
      reinitialize: the state after a fire (re-initialized from ``params``).
      apply_active: runs the active inner transform on the updates.
      owner: the combinator's name, for error messages.

    Returns:
      The updates and the new state, with ``count`` advanced and ``requested``
      cleared.
    """
    require_params(params, owner)
    context = _triggers.TriggerContext(
        count=state.count,
        updates=updates,
        params=params,
        extra_args=extra_args,
        state=state,
    )
    fire, trigger_state = trigger.update(state.trigger_state, context)
    fire = _triggers.as_fire(fire, "the trigger") | state.requested
    state = state._replace(trigger_state=trigger_state)
    # Re-initializing before the inner update makes the firing update the
    # first one of the fresh state, exactly as re-instantiating the optimizer
    # between two steps would.
    state = lax.cond(fire, reinitialize, lambda unchanged: unchanged, state)
    updates, state = apply_active(updates, state)
    return updates, state._replace(
        count=optax.safe_increment(state.count),
        requested=jnp.zeros((), jnp.bool_),
    )

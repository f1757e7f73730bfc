"""``resettable``: re-initialize an optimizer's state when a trigger fires."""

from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from optaxswap import _engine
from optaxswap import _fields
from optaxswap import _observing
from optaxswap import _triggers
from optaxswap import _validation


class ResettableState(NamedTuple):
    """State of :func:`resettable`.

    Attributes:
      count: int32, updates performed so far (saturating).
      resets: int32, resets performed so far (saturating).
      requested: bool, a reset was requested for the next update.
      trigger_state: the trigger's state.
      inner_state: the wrapped transform's state.
    """

    count: jax.Array
    resets: jax.Array
    requested: jax.Array
    trigger_state: Any
    inner_state: optax.OptState


def resettable(
    inner: optax.GradientTransformation,
    trigger: _triggers.Trigger | None = None,
    *,
    fields: Sequence[str] | None = None,
) -> optax.GradientTransformationExtraArgs:
    """Re-initializes ``inner``'s state when ``trigger`` fires.

    The reset happens inside the compiled step, before the inner update, so
    the update of the firing step is the first update of the fresh state. The
    train step compiles once however many resets happen.

    Args:
      inner: the transform to wrap; plain ``GradientTransformation`` s receive
        every extra keyword argument too (through
        ``optax.with_extra_args_support``).
      trigger: when to reset; ``None`` resets only on
        :func:`optaxswap.request_reset`.
      fields: ``None`` resets the whole inner state. A tuple of state field
        names (e.g. ``("mu", "nu")`` to keep Adam's ``count``, as SPAM does,
        or ``("count",)`` for Adam-Rel) resets only the fields of those names
        wherever they occur in the inner state, with the name lookup of
        ``optax.tree.get``. An unknown name is a ``ValueError`` at ``init``.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with a
      :class:`ResettableState`.

    Raises:
      TypeError: if ``inner`` is not a transform or ``trigger`` not a Trigger.
      ValueError: if ``fields`` is empty or holds a non-string.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optax
      >>> import optaxswap as osw
      >>> tx = osw.resettable(optax.adam(0.1), osw.every(2))
      >>> params = jnp.array([1.0, -2.0])
      >>> state = tx.init(params)
      >>> for _ in range(5):
      ...     updates, state = tx.update(params, state, params)
      ...     params = optax.apply_updates(params, updates)
      >>> int(osw.reset_count(state))
      2
    """
    inner = optax.with_extra_args_support(_validation.check_transform("inner", inner))
    if trigger is None:
        trigger = _triggers.never()
    elif not isinstance(trigger, _triggers.Trigger):
        raise TypeError(f"trigger must be a Trigger or None, got {trigger!r}.")
    fields = _fields.check_fields(fields)

    def init_fn(params: optax.Params) -> ResettableState:
        inner_state = inner.init(params)
        if fields is not None:
            _fields.leaves_named(inner_state, fields)
        return ResettableState(
            count=jnp.zeros((), jnp.int32),
            resets=jnp.zeros((), jnp.int32),
            requested=jnp.zeros((), jnp.bool_),
            trigger_state=trigger.init(params),
            inner_state=inner_state,
        )

    def update_fn(
        updates: optax.Updates,
        state: ResettableState,
        params: optax.Params | None = None,
        **extra_args: Any,
    ) -> tuple[optax.Updates, ResettableState]:
        # The trigger reads every extra argument; the inner, all but its own.
        inner_args = _observing.inner_extra_args(state.trigger_state, extra_args)

        def reinitialize(state: ResettableState) -> ResettableState:
            fresh = inner.init(params)
            if fields is not None:
                fresh = _fields.replace_named(state.inner_state, fresh, fields)
            return state._replace(
                resets=optax.safe_increment(state.resets),
                inner_state=_engine.cast_like(fresh, state.inner_state),
            )

        def apply_active(
            updates: optax.Updates, state: ResettableState
        ) -> tuple[optax.Updates, ResettableState]:
            updates, inner_state = inner.update(
                updates, state.inner_state, params, **inner_args
            )
            return updates, state._replace(
                inner_state=_engine.cast_like(inner_state, state.inner_state)
            )

        def advance(
            state: ResettableState, fire: jax.Array
        ) -> tuple[ResettableState, jax.Array]:
            # The one phase is re-entered on every fire.
            return state, jnp.where(fire, 0, -1).astype(jnp.int32)

        return _engine.guarded_update(
            state,
            updates,
            params,
            extra_args,
            trigger=trigger,
            phases=[_engine.Phase(enter=reinitialize, run=apply_active)],
            advance=advance,
            owner="resettable",
        )

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)

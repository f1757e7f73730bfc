"""``resettable``: re-initialize an optimizer's state when a trigger fires."""

from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from optaxswap import _eager
from optaxswap import _engine
from optaxswap import _fields
from optaxswap import _placement
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
        inner_state = _engine.strong(inner.init(params))
        if fields is not None:
            _fields.leaves_named(inner_state, fields)
        state = ResettableState(
            count=jnp.zeros((), jnp.int32),
            resets=jnp.zeros((), jnp.int32),
            requested=jnp.zeros((), jnp.bool_),
            trigger_state=_engine.strong(trigger.init(params)),
            inner_state=inner_state,
        )
        return _placement.place_like_params(state, params)

    def update_fn(
        updates: optax.Updates,
        state: ResettableState,
        params: optax.Params | None = None,
        **extra_args: Any,
    ) -> tuple[optax.Updates, ResettableState]:
        _engine.check_state(state, ResettableState, "resettable")

        def advance(
            state: ResettableState, fire: jax.Array
        ) -> tuple[ResettableState, _engine.Moves]:
            # The one phase is re-entered on every fire.
            resets = jnp.where(fire, optax.safe_increment(state.resets), state.resets)
            moves = _engine.Moves(
                active=jnp.zeros((), jnp.int32),
                entered=jnp.where(fire, 0, -1).astype(jnp.int32),
                left=jnp.full((), -1, jnp.int32),
            )
            return state._replace(resets=resets.astype(jnp.int32)), moves

        def enter(entry: _engine.Entry) -> optax.OptState:
            if fields is None:
                return entry.fresh
            return _fields.replace_named(entry.read(0), entry.fresh, fields)

        def rebuild(
            state: ResettableState, storage: _engine.Storage
        ) -> ResettableState:
            return state._replace(inner_state=storage.states[0])

        return _engine.update(
            state,
            updates,
            params,
            extra_args,
            trigger=trigger,
            transforms=[inner],
            storage=_engine.SeparateStates((state.inner_state,)),
            advance=advance,
            rebuild=rebuild,
            enter=enter,
            owner="resettable",
        )

    return optax.GradientTransformationExtraArgs(
        init_fn, _eager.compiled_when_eager(update_fn)
    )

"""Triggers: pure, jittable rules that say *when* a combinator acts.

A trigger is to a combinator what a schedule is to a learning rate: it owns a
small fixed-structure state and, once per update, answers "fire or not" as a
bool scalar computed inside the compiled step.
"""

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp
import optax

from optaxswap import _validation

TriggerState = Any


class TriggerContext(NamedTuple):
    """What a trigger sees of one update.

    Attributes:
      count: int32 scalar, the number of updates the combinator performed
        before this one (saturating at ``2**31 - 1``).
      updates: the updates (gradients) given to this update.
      params: the params given to this update.
      extra_args: dict of the extra keyword arguments given to ``update``
        (for example ``value``).
      state: the combinator's whole state before this update (e.g. a
        :class:`SwitchState`), for rules that read the inner optimizer's state;
        ``None`` where no combinator is involved.
    """

    count: jax.Array
    updates: optax.Updates
    params: optax.Params
    extra_args: dict[str, Any]
    state: Any = None


class TriggerInitFn(Protocol):
    def __call__(self, params: optax.Params) -> TriggerState: ...


class TriggerUpdateFn(Protocol):
    def __call__(
        self, state: TriggerState, context: TriggerContext
    ) -> tuple[jax.Array, TriggerState]: ...


class Trigger(NamedTuple):
    """A rule deciding when a combinator fires, as a pair of pure functions.

    Attributes:
      init: ``init(params) -> state``, a pytree of fixed structure and dtypes.
      update: ``update(state, context) -> (fire, new_state)`` with ``fire`` a
        bool scalar and ``context`` a :class:`TriggerContext`.
    """

    init: TriggerInitFn
    update: TriggerUpdateFn


def _stateless(fire_fn: Callable[[TriggerContext], jax.Array]) -> Trigger:
    """A trigger whose decision depends on the context alone."""

    def init_fn(params: optax.Params) -> tuple[()]:
        del params
        return ()

    def update_fn(
        state: tuple[()], context: TriggerContext
    ) -> tuple[jax.Array, tuple[()]]:
        return as_fire(fire_fn(context), "the trigger"), state

    return Trigger(init_fn, update_fn)


def as_fire(fire: Any, source: str) -> jax.Array:
    """Checks that ``fire`` is a scalar and returns it as a strong bool."""
    fire = jnp.asarray(fire)
    if fire.shape != ():
        raise ValueError(
            f"{source} must return a scalar, got an array of shape {fire.shape}."
        )
    return fire.astype(jnp.bool_)


def never() -> Trigger:
    """A trigger that never fires: the combinator acts on requests only.

    This is ``resettable``'s default; give it to ``switch`` to advance phases
    only through :func:`optaxswap.request_switch`.

    Returns:
      A stateless :class:`Trigger`.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxswap as osw
      >>> context = osw.TriggerContext(jnp.int32(0), None, None, {})
      >>> bool(osw.never().update((), context)[0])
      False
    """
    return _stateless(lambda context: jnp.zeros((), jnp.bool_))


def at_steps(boundaries: Sequence[int]) -> Trigger:
    """Fires on update ``t`` (0-based) when ``t`` is one of ``boundaries``.

    Args:
      boundaries: strictly increasing positive ints (may be empty, in which
        case the trigger never fires).

    Returns:
      A stateless :class:`Trigger`.

    Raises:
      ValueError: if ``boundaries`` is not strictly increasing and positive.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxswap as osw
      >>> trigger = osw.at_steps([2, 5])
      >>> fires = [
      ...     bool(trigger.update((), osw.TriggerContext(
      ...         jnp.int32(t), None, None, {}))[0])
      ...     for t in range(7)
      ... ]
      >>> [t for t, fire in enumerate(fires) if fire]
      [2, 5]
    """
    steps = _validation.check_boundaries("boundaries", boundaries)

    def fire_fn(context: TriggerContext) -> jax.Array:
        # Boundaries stay below INT32_MAX, so a saturated count never matches.
        return jnp.isin(context.count, jnp.asarray(steps, jnp.int32))

    return _stateless(fire_fn)


def every(n: int, *, start: int | None = None) -> Trigger:
    """Fires on updates ``start, start + n, start + 2n, ...``.

    Once the update count saturates at ``2**31 - 1`` the trigger stops
    firing, so a counter at its limit never fires on every step.

    Args:
      n: the period, an int ``>= 1``.
      start: the first update that fires, an int ``>= 0``; defaults to ``n``
        (the first ``n`` updates run on the initial state).

    Returns:
      A stateless :class:`Trigger`.

    Raises:
      ValueError: if ``n < 1`` or ``start < 0``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxswap as osw
      >>> trigger = osw.every(3)
      >>> [t for t in range(10) if trigger.update(
      ...     (), osw.TriggerContext(jnp.int32(t), None, None, {}))[0]]
      [3, 6, 9]
    """
    n = _validation.check_int("n", n, minimum=1)
    start = n if start is None else _validation.check_int("start", start, minimum=0)

    def fire_fn(context: TriggerContext) -> jax.Array:
        count = context.count
        return (
            (count >= start)
            & ((count - start) % n == 0)
            & (count < _validation.INT32_MAX)
        )

    return _stateless(fire_fn)


def when(predicate: Callable[[TriggerContext], Any]) -> Trigger:
    """Fires where ``predicate(context)`` is true.

    Args:
      predicate: a jittable function of a :class:`TriggerContext` returning a
        bool scalar, e.g. ``lambda c: c.extra_args["target_synced"]``.

    Returns:
      A stateless :class:`Trigger`.

    Raises:
      TypeError: if ``predicate`` is not callable.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxswap as osw
      >>> trigger = osw.when(lambda c: c.extra_args["sync"])
      >>> context = osw.TriggerContext(jnp.int32(0), None, None,
      ...                              {"sync": jnp.bool_(True)})
      >>> bool(trigger.update((), context)[0])
      True
    """
    if not callable(predicate):
        raise TypeError(f"predicate must be callable, got {predicate!r}.")
    return _stateless(predicate)


def any_of(*triggers: Trigger) -> Trigger:
    """Fires where any of ``triggers`` fires.

    Every sub-trigger's state advances on every update (no short-circuit), so
    a plateau trigger keeps observing while another trigger fires.

    Args:
      *triggers: one or more :class:`Trigger`.

    Returns:
      A :class:`Trigger` whose state is the tuple of the sub-triggers' states.

    Raises:
      ValueError: if no trigger is given.
      TypeError: if an argument is not a :class:`Trigger`.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxswap as osw
      >>> trigger = osw.any_of(osw.at_steps([4]), osw.every(3))
      >>> state = trigger.init(None)
      >>> [t for t in range(8) if trigger.update(
      ...     state, osw.TriggerContext(jnp.int32(t), None, None, {}))[0]]
      [3, 4, 6]
    """
    if not triggers:
        raise ValueError("any_of needs at least one trigger, got none.")
    for i, trigger in enumerate(triggers):
        if not isinstance(trigger, Trigger):
            raise TypeError(f"triggers[{i}] must be a Trigger, got {trigger!r}.")

    def init_fn(params: optax.Params) -> tuple[TriggerState, ...]:
        return tuple(trigger.init(params) for trigger in triggers)

    def update_fn(
        state: tuple[TriggerState, ...], context: TriggerContext
    ) -> tuple[jax.Array, tuple[TriggerState, ...]]:
        fires, new_state = zip(
            *(
                trigger.update(sub_state, context)
                for trigger, sub_state in zip(triggers, state)
            )
        )
        fire = jnp.any(jnp.stack([as_fire(f, "a sub-trigger") for f in fires]))
        return fire, tuple(new_state)

    return Trigger(init_fn, update_fn)

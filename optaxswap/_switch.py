"""``switch`` and its constructors: change optimizer while training runs."""

from collections.abc import Callable, Sequence
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import optax

from optaxswap import _engine
from optaxswap import _observing
from optaxswap import _plateau
from optaxswap import _resettable
from optaxswap import _slots
from optaxswap import _triggers
from optaxswap import _validation
from optaxswap import handoff as _handoff


class SwitchState(NamedTuple):
    """State of :func:`switch`.

    Attributes:
      count: int32, updates performed so far (saturating).
      phase: int32, the index of the active transform.
      requested: bool, a switch was requested for the next update.
      trigger_state: the trigger's state.
      inner_states: tuple with one state per transform; inactive phases keep
        the state they had when they were left. With ``share_memory=True``, a
        ``SharedStates`` whose slots the phases share instead (read a phase's
        state with ``phase_state``).
    """

    count: jax.Array
    phase: jax.Array
    requested: jax.Array
    trigger_state: Any
    inner_states: tuple[optax.OptState, ...] | _slots.SharedStates


def switch(
    transforms: Sequence[optax.GradientTransformation],
    trigger: _triggers.Trigger,
    *,
    handoff: _handoff.HandoffFn | None = None,
    cycle: bool = False,
    share_memory: bool = False,
) -> optax.GradientTransformationExtraArgs:
    """Runs ``transforms[phase]``, advancing ``phase`` each time ``trigger`` fires.

    Each fire (or :func:`optaxswap.request_switch`) advances the phase by one,
    up to the last transform, which then stays. Entering a phase re-initializes
    that transform's state from the current params, as re-instantiating the
    optimizer would, before this update runs on it. States of inactive phases
    are left untouched. The decision is taken inside the compiled step: the
    train step compiles once however many switches happen, and a phase's step
    costs what its transform's step costs (see :doc:`/performance`).

    Args:
      transforms: a non-empty sequence of transforms; with one, nothing ever
        switches. Plain ``GradientTransformation`` s receive every extra
        keyword argument too.
      trigger: when to advance.
      handoff: optional ``fn(HandoffContext) -> state`` that builds the
        entering phase's state instead of a bare ``init`` (see
        :mod:`optaxswap.handoff`).
      cycle: if true, a fire in the last phase returns to phase 0
        (re-initialized) instead of staying.
      share_memory: if true, leaves of equal shape and dtype in different
        phases share one buffer, so the optimizer state takes the memory of
        the largest phase only (Adam then SGD with momentum: two
        parameter-sized buffers, not three). The results are the same; the
        price is that an inactive phase's state is overwritten, and
        ``state.inner_states`` is no longer a tuple of per-phase states. A
        combinator or plateau/spike trigger nested inside a phase keeps its
        own buffers, so the host-side helpers still find it.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with a :class:`SwitchState`.

    Raises:
      ValueError: if ``transforms`` is empty.
      TypeError: if an argument has the wrong type.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optax
      >>> import optaxswap as osw
      >>> tx = osw.switch([optax.adam(0.1), optax.sgd(0.1, momentum=0.9)],
      ...                 osw.at_steps([3]))
      >>> params = jnp.array([1.0, -2.0])
      >>> state = tx.init(params)
      >>> phases = []
      >>> for _ in range(5):
      ...     updates, state = tx.update(params, state, params)
      ...     params = optax.apply_updates(params, updates)
      ...     phases.append(int(osw.phase(state)))
      >>> phases
      [0, 0, 0, 1, 1]

      With ``share_memory=True`` Adam's two moments and SGD's momentum take
      two buffers per parameter instead of three:

      >>> shared = osw.switch([optax.adam(0.1), optax.sgd(0.1, momentum=0.9)],
      ...                     osw.at_steps([3]), share_memory=True)
      >>> params = jnp.zeros(1000)
      >>> [sum(leaf.nbytes for leaf in jax.tree.leaves(t.init(params)))
      ...  for t in (tx, shared)]
      [12013, 8013]
    """
    transforms = _validation.check_transforms("transforms", transforms)
    if not isinstance(trigger, _triggers.Trigger):
        raise TypeError(f"trigger must be a Trigger, got {trigger!r}.")
    if handoff is not None and not callable(handoff):
        raise TypeError(f"handoff must be callable or None, got {handoff!r}.")
    if not isinstance(cycle, bool):
        raise TypeError(f"cycle must be a bool, got {cycle!r}.")
    if not isinstance(share_memory, bool):
        raise TypeError(f"share_memory must be a bool, got {share_memory!r}.")
    num_phases = len(transforms)

    def init_fn(params: optax.Params) -> SwitchState:
        inner_states = tuple(tx.init(params) for tx in transforms)
        return SwitchState(
            count=jnp.zeros((), jnp.int32),
            phase=jnp.zeros((), jnp.int32),
            requested=jnp.zeros((), jnp.bool_),
            trigger_state=trigger.init(params),
            inner_states=(
                _slots.share(inner_states, keep=_is_steered)
                if share_memory
                else inner_states
            ),
        )

    def update_fn(
        updates: optax.Updates,
        state: SwitchState,
        params: optax.Params | None = None,
        **extra_args: Any,
    ) -> tuple[optax.Updates, SwitchState]:
        def advance(
            state: SwitchState, fire: jax.Array
        ) -> tuple[SwitchState, jax.Array]:
            advances = fire if cycle else fire & (state.phase < num_phases - 1)
            phase = jnp.where(advances, (state.phase + 1) % num_phases, state.phase)
            entered = jnp.where(advances, phase, -1).astype(jnp.int32)
            return state._replace(phase=phase.astype(jnp.int32)), entered

        def enter(to_phase: int) -> Callable[[SwitchState], SwitchState]:
            from_phase = (to_phase - 1) % num_phases

            def enter_phase(state: SwitchState) -> SwitchState:
                entering = transforms[to_phase].init(params)
                if handoff is not None:
                    # Read before writing: with shared slots, the entering
                    # state overwrites buffers the leaving state lives in.
                    entering = handoff(
                        _handoff.HandoffContext(
                            from_phase=from_phase,
                            to_phase=to_phase,
                            from_state=phase_state(state, from_phase),
                            fresh_state=entering,
                            params=params,
                            trigger_state=state.trigger_state,
                            count=state.count,
                        )
                    )
                return with_phase_state(state, to_phase, entering)

            return enter_phase

        def run(index: int) -> Callable[..., tuple[optax.Updates, SwitchState]]:
            def run_phase(
                updates: optax.Updates, state: SwitchState
            ) -> tuple[optax.Updates, SwitchState]:
                new_updates, inner_state = transforms[index].update(
                    updates, phase_state(state, index), params, **extra_args
                )
                # Every phase's conditional must return the same types; the
                # gradients' dtypes are the ones all phases agree on.
                return _engine.cast_like(new_updates, updates), with_phase_state(
                    state, index, inner_state
                )

            return run_phase

        return _engine.guarded_update(
            state,
            updates,
            params,
            extra_args,
            trigger=trigger,
            phases=[
                _engine.Phase(
                    enter=enter(index) if index > 0 or cycle else None,
                    run=run(index),
                )
                for index in range(num_phases)
            ],
            advance=advance,
            active_phase=lambda state: state.phase,
            owner="switch",
        )

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _is_steered(node: Any) -> bool:
    """A nested state that the host-side helpers find and rewrite."""
    return isinstance(
        node, SwitchState | _resettable.ResettableState | _observing.ObservingState
    )


def phase_state(state: SwitchState, index: int) -> optax.OptState:
    """The state of phase ``index`` (whatever the storage layout).

    With shared slots, only the active phase's state is meaningful: the others
    have been overwritten by the phases that used their buffers since.
    """
    if isinstance(state.inner_states, _slots.SharedStates):
        return state.inner_states.phase_state(index)
    return state.inner_states[index]


def with_phase_state(
    state: SwitchState, index: int, inner_state: optax.OptState
) -> SwitchState:
    """``state`` with phase ``index``'s state replaced, keeping its dtypes."""
    inner_states = state.inner_states
    if isinstance(inner_states, _slots.SharedStates):
        return state._replace(
            inner_states=inner_states.with_phase_state(index, inner_state)
        )
    inner_state = _engine.cast_like(inner_state, inner_states[index])
    return state._replace(
        inner_states=inner_states[:index] + (inner_state,) + inner_states[index + 1 :]
    )


def switch_at(
    transforms: Sequence[optax.GradientTransformation],
    boundaries: Sequence[int],
    **switch_kwargs: Any,
) -> optax.GradientTransformationExtraArgs:
    """Switches to the next transform at fixed update numbers.

    ``switch(transforms, at_steps(boundaries))``: update ``t`` (0-based) uses
    ``transforms[i]`` for ``boundaries[i-1] <= t < boundaries[i]``, and each
    new phase starts from ``init(params)`` of the params it is entered with.

    Args:
      transforms: a non-empty sequence of transforms.
      boundaries: ``len(transforms) - 1`` strictly increasing positive ints.
      **switch_kwargs: further keyword arguments of :func:`switch`
        (``handoff``, ``cycle``, ``share_memory``).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with a :class:`SwitchState`.

    Raises:
      ValueError: if the boundaries are not ``len(transforms) - 1`` strictly
        increasing positive ints.

    Examples:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import optax
      >>> import optaxswap as osw
      >>> tx = osw.switch_at([optax.adam(1e-2), optax.sgd(1e-2, momentum=0.9)],
      ...                    boundaries=[100])
      >>> params = {"w": jnp.ones(3)}
      >>> state = tx.init(params)
      >>> @jax.jit
      ... def step(params, state):
      ...     grads = jax.grad(lambda p: jnp.sum(p["w"] ** 2))(params)
      ...     updates, state = tx.update(grads, state, params)
      ...     return optax.apply_updates(params, updates), state
      >>> for _ in range(150):
      ...     params, state = step(params, state)
      >>> int(osw.phase(state))
      1
    """
    transforms = _validation.check_transforms("transforms", transforms)
    boundaries = _validation.check_boundaries("boundaries", boundaries)
    if len(boundaries) != len(transforms) - 1:
        raise ValueError(
            f"boundaries must hold len(transforms) - 1 = {len(transforms) - 1}"
            f" steps, got {len(boundaries)}: {list(boundaries)}."
        )
    return switch(transforms, _triggers.at_steps(boundaries), **switch_kwargs)


def switch_on_plateau(
    transforms: Sequence[optax.GradientTransformation],
    *,
    patience: int = 10,
    cooldown: int = 0,
    rtol: float = 1e-4,
    atol: float = 0.0,
    mode: Literal["min", "max"] = "min",
    accumulation_size: int = 1,
    axis_name: Any = None,
    **switch_kwargs: Any,
) -> optax.GradientTransformationExtraArgs:
    """Switches to the next transform when a metric stops improving.

    ``switch(transforms, on_plateau(...))``: see :func:`on_plateau` for the
    exact plateau rule. Feed the metric with ``value=`` on ``update`` (a
    per-step training loss, best with ``accumulation_size > 1``) or with
    :func:`optaxswap.observe` (a validation loss).

    Args:
      transforms: a non-empty sequence of transforms.
      patience: bad observations before switching, ``>= 1``.
      cooldown: observations ignored after a switch, ``>= 0``.
      rtol: relative improvement threshold, ``>= 0``.
      atol: absolute improvement threshold, ``>= 0``.
      mode: ``"min"`` (a loss) or ``"max"`` (an accuracy).
      accumulation_size: values averaged into one observation, ``>= 1``.
      axis_name: the ``pmap``/``shard_map`` axis over which each ``value=``
        is averaged, so every replica switches alike.
      **switch_kwargs: further keyword arguments of :func:`switch`
        (``handoff``, ``cycle``, ``share_memory``).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with a :class:`SwitchState`.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optax
      >>> import optaxswap as osw
      >>> tx = osw.switch_on_plateau(
      ...     [optax.adam(1e-2), optax.sgd(1e-2, momentum=0.9)], patience=2)
      >>> params = jnp.ones(3)
      >>> state = tx.init(params)
      >>> for val_loss in [1.0, 0.5, 0.6, 0.7]:
      ...     state = osw.observe(state, val_loss)
      ...     updates, state = tx.update(params, state, params)
      >>> int(osw.phase(state))
      1
    """
    trigger = _plateau.on_plateau(
        patience=patience,
        cooldown=cooldown,
        rtol=rtol,
        atol=atol,
        mode=mode,
        accumulation_size=accumulation_size,
        axis_name=axis_name,
    )
    return switch(transforms, trigger, **switch_kwargs)

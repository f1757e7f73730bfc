"""``switch`` and its constructors: change optimizer while training runs."""

from collections.abc import Callable, Sequence
from typing import Any, Literal, NamedTuple

import jax
from jax import lax
import jax.numpy as jnp
import optax

from optaxswap import _engine
from optaxswap import _plateau
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
        the state they had when they were left.
    """

    count: jax.Array
    phase: jax.Array
    requested: jax.Array
    trigger_state: Any
    inner_states: tuple[optax.OptState, ...]


def switch(
    transforms: Sequence[optax.GradientTransformation],
    trigger: _triggers.Trigger,
    *,
    handoff: _handoff.HandoffFn | None = None,
    cycle: bool = False,
) -> optax.GradientTransformationExtraArgs:
    """Runs ``transforms[phase]``, advancing ``phase`` each time ``trigger`` fires.

    Each fire (or :func:`optaxswap.request_switch`) advances the phase by one,
    up to the last transform, which then stays. Entering a phase re-initializes
    that transform's state from the current params, as re-instantiating the
    optimizer would, before this update runs on it. States of inactive phases
    are left untouched. The decision is taken inside the compiled step: the
    train step compiles once however many switches happen.

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
    """
    transforms = _validation.check_transforms("transforms", transforms)
    if not isinstance(trigger, _triggers.Trigger):
        raise TypeError(f"trigger must be a Trigger, got {trigger!r}.")
    if handoff is not None and not callable(handoff):
        raise TypeError(f"handoff must be callable or None, got {handoff!r}.")
    if not isinstance(cycle, bool):
        raise TypeError(f"cycle must be a bool, got {cycle!r}.")
    num_phases = len(transforms)

    def init_fn(params: optax.Params) -> SwitchState:
        return SwitchState(
            count=jnp.zeros((), jnp.int32),
            phase=jnp.zeros((), jnp.int32),
            requested=jnp.zeros((), jnp.bool_),
            trigger_state=trigger.init(params),
            inner_states=tuple(tx.init(params) for tx in transforms),
        )

    def update_fn(
        updates: optax.Updates,
        state: SwitchState,
        params: optax.Params | None = None,
        **extra_args: Any,
    ) -> tuple[optax.Updates, SwitchState]:
        def enter(to_phase: int) -> Callable[[SwitchState], SwitchState]:
            from_phase = (to_phase - 1) % num_phases

            def enter_phase(state: SwitchState) -> SwitchState:
                entering = transforms[to_phase].init(params)
                if handoff is not None:
                    entering = handoff(
                        _handoff.HandoffContext(
                            from_phase=from_phase,
                            to_phase=to_phase,
                            from_state=state.inner_states[from_phase],
                            fresh_state=entering,
                            params=params,
                            trigger_state=state.trigger_state,
                            count=state.count,
                        )
                    )
                return state._replace(
                    phase=jnp.full((), to_phase, jnp.int32),
                    inner_states=_with_phase_state(
                        state.inner_states, to_phase, entering
                    ),
                )

            return enter_phase

        def stay(state: SwitchState) -> SwitchState:
            return state

        # The successor of each phase is static, so a fire selects one branch
        # by the current phase and each branch knows which phase it enters.
        successors = [
            enter((index + 1) % num_phases) if cycle or index < num_phases - 1 else stay
            for index in range(num_phases)
        ]

        def reinitialize(state: SwitchState) -> SwitchState:
            return lax.switch(state.phase, successors, state)

        def run(index: int) -> Callable[..., tuple[optax.Updates, SwitchState]]:
            def run_phase(
                updates: optax.Updates, state: SwitchState
            ) -> tuple[optax.Updates, SwitchState]:
                new_updates, inner_state = transforms[index].update(
                    updates, state.inner_states[index], params, **extra_args
                )
                # Every branch must return the same types; the gradients'
                # dtypes are the ones all phases agree on.
                return _engine.cast_like(new_updates, updates), state._replace(
                    inner_states=_with_phase_state(
                        state.inner_states, index, inner_state
                    )
                )

            return run_phase

        def apply_active(
            updates: optax.Updates, state: SwitchState
        ) -> tuple[optax.Updates, SwitchState]:
            return lax.switch(
                state.phase, [run(i) for i in range(num_phases)], updates, state
            )

        return _engine.guarded_update(
            state,
            updates,
            params,
            extra_args,
            trigger=trigger,
            reinitialize=reinitialize,
            apply_active=apply_active,
            owner="switch",
        )

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _with_phase_state(
    inner_states: tuple[optax.OptState, ...], index: int, new_state: optax.OptState
) -> tuple[optax.OptState, ...]:
    """``inner_states`` with entry ``index`` replaced, keeping its dtypes."""
    new_state = _engine.cast_like(new_state, inner_states[index])
    return inner_states[:index] + (new_state,) + inner_states[index + 1 :]


def phase_state(state: SwitchState, index: int) -> optax.OptState:
    """The state of phase ``index`` (whatever the storage layout)."""
    return state.inner_states[index]


def with_phase_state(
    state: SwitchState, index: int, inner_state: optax.OptState
) -> SwitchState:
    """``state`` with phase ``index``'s state replaced, keeping its dtypes."""
    return state._replace(
        inner_states=_with_phase_state(state.inner_states, index, inner_state)
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
        (``handoff``, ``cycle``).

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
      **switch_kwargs: further keyword arguments of :func:`switch`.

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

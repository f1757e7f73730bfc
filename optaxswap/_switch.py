"""``switch`` and its constructors: change optimizer while training runs."""

from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import optax

from optaxswap import _eager
from optaxswap import _engine
from optaxswap import _observing
from optaxswap import _placement
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
      inner_states: tuple with one state per transform; an inactive phase
        holds the ``init`` it was re-initialized to when it was left (or
        its initial state). With ``share_memory=True``, a ``SharedStates``
        whose slots the phases share instead.
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
    execution: _engine.Execution = "auto",
) -> optax.GradientTransformationExtraArgs:
    """Runs ``transforms[phase]``, advancing ``phase`` each time ``trigger`` fires.

    Each fire (or :func:`optaxswap.request_switch`) advances the phase by one,
    up to the last transform, which then stays. Entering a phase re-initializes
    that transform's state from the current params, as re-instantiating the
    optimizer would, before this update runs on it; leaving a phase
    re-initializes its state too (after ``handoff`` has read it), so no
    optax lookup (``optax.tree.get``, ``optax.value_and_grad_from_state``)
    ever reads a stale value from an inactive phase. The decision is taken
    inside the compiled step: the train step compiles once however many
    switches happen (see :doc:`/performance` for what a step costs).

    The updates equal the active transform's in value; their dtype is the
    promotion of the phases' output dtypes (f32 params with bf16 gradients
    give f32 Adam updates, as bare Adam does).

    Args:
      transforms: a non-empty sequence of transforms; with one, nothing ever
        switches. Plain ``GradientTransformation`` s receive every extra
        keyword argument too (but a trigger's own ``metric_arg``).
      trigger: when to advance.
      handoff: optional ``fn(HandoffContext) -> state`` that builds the
        entering phase's state instead of a bare ``init`` (see
        :mod:`optaxswap.handoff`).
      cycle: if true, a fire in the last phase returns to phase 0
        (re-initialized) instead of staying.
      share_memory: if true, the phases keep their params-shaped buffers
        (Adam's moments, SGD's momentum) in shared slots, so the optimizer
        state takes the memory of the largest phase only (Adam then SGD with
        momentum: two params-sized trees, not three). The results are the
        same; ``state.inner_states`` is then a ``SharedStates``, not a tuple
        of per-phase states. A combinator or plateau/spike trigger nested
        inside a phase, and a state holding the objective's ``value`` (L-BFGS's
        line search), keep their own buffers, so the host-side helpers and
        ``optax.value_and_grad_from_state`` still find them.
      execution: how the phases run inside the step. ``"auto"`` (default):
        ``"fused"`` where the step is compiled for a GPU and every phase
        allows it (no loop or host call in its update, an ``init`` that only
        fills buffers: Adam, SGD and the like; not L-BFGS, whose line search
        loops), ``"branched"`` otherwise (CPU, TPU), decided per platform
        when the step is lowered (in a process without a GPU, always
        ``"branched"``: a step exported there for a GPU runs branched on it).
        ``"branched"``: one conditional per phase runs only the active one
        and touches no other phase's buffers. ``"leafwise"``: the same, with
        one conditional per phase and parameter leaf wherever a phase's
        update treats each leaf on its own (Adam, SGD, ...; not global-norm
        clipping or L-BFGS, which keep one), so each leaf's update starts as
        soon as its gradient is ready: faster on CPU for a small train step
        with few phases; values may differ from the bare optimizer's by
        float32 round-off, as XLA compiles each leaf's arithmetic on its
        own. ``"fused"``: every phase's update runs and the active one's
        result is selected, with no conditional, at the price of every
        phase's arithmetic (and on CPU a copy of the state per step); on a
        GPU, where each conditional makes the host wait, it was faster than
        ``"branched"`` in most cases measured (``docs/performance.md``).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with a :class:`SwitchState`.

    Raises:
      ValueError: if ``transforms`` is empty or ``execution`` unknown.
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
    execution = _validation.check_choice("execution", execution, _engine.EXECUTIONS)
    num_phases = len(transforms)
    enterable = tuple(index > 0 or cycle for index in range(num_phases))

    def init_fn(params: optax.Params) -> SwitchState:
        inner_states = _engine.strong(tuple(tx.init(params) for tx in transforms))
        state = SwitchState(
            count=jnp.zeros((), jnp.int32),
            phase=jnp.zeros((), jnp.int32),
            requested=jnp.zeros((), jnp.bool_),
            trigger_state=_engine.strong(trigger.init(params)),
            inner_states=(
                _slots.share(inner_states, params, keep=_is_kept)
                if share_memory
                else inner_states
            ),
        )
        return _placement.place_like_params(state, params)

    def update_fn(
        updates: optax.Updates,
        state: SwitchState,
        params: optax.Params | None = None,
        **extra_args: Any,
    ) -> tuple[optax.Updates, SwitchState]:
        _engine.check_state(state, SwitchState, "switch")

        def advance(
            state: SwitchState, fire: jax.Array
        ) -> tuple[SwitchState, _engine.Moves]:
            advances = fire if cycle else fire & (state.phase < num_phases - 1)
            phase = jnp.where(advances, (state.phase + 1) % num_phases, state.phase)
            phase = phase.astype(jnp.int32)
            moves = _engine.Moves(
                active=phase,
                entered=jnp.where(advances, phase, -1).astype(jnp.int32),
                left=jnp.where(advances & (num_phases > 1), state.phase, -1).astype(
                    jnp.int32
                ),
            )
            return state._replace(phase=phase), moves

        def enter(entry: _engine.Entry) -> optax.OptState:
            from_phase = (entry.index - 1) % num_phases
            return handoff(
                _handoff.HandoffContext(
                    from_phase=from_phase,
                    to_phase=entry.index,
                    from_state=entry.read(from_phase),
                    fresh_state=entry.fresh,
                    params=entry.params,
                    trigger_state=entry.state.trigger_state,
                    count=entry.state.count,
                )
            )

        return _engine.update(
            state,
            updates,
            params,
            extra_args,
            trigger=trigger,
            transforms=transforms,
            storage=_storage(state),
            advance=advance,
            rebuild=_rebuild,
            enter=_engine.fresh_entry if handoff is None else enter,
            enterable=enterable,
            execution=execution,
            owner="switch",
        )

    return optax.GradientTransformationExtraArgs(
        init_fn, _eager.compiled_when_eager(update_fn)
    )


def _is_kept(node: Any) -> bool:
    """A nested state that must keep its own buffers under ``share_memory``.

    The host-side helpers find and rewrite combinator and metric-watching
    trigger states; ``optax.value_and_grad_from_state`` reads a state's
    ``value`` and ``grad`` by name.
    """
    if isinstance(
        node, SwitchState | _resettable.ResettableState | _observing.ObservingState
    ):
        return True
    return "value" in getattr(type(node), "_fields", ())


def _storage(state: SwitchState) -> _engine.Storage:
    if isinstance(state.inner_states, _slots.SharedStates):
        return state.inner_states
    return _engine.SeparateStates(tuple(state.inner_states))


def _rebuild(state: SwitchState, storage: _engine.Storage) -> SwitchState:
    if isinstance(storage, _engine.SeparateStates):
        return state._replace(inner_states=storage.states)
    return state._replace(inner_states=storage)


def phase_state(state: SwitchState, index: int) -> optax.OptState:
    """The state of phase ``index`` (whatever the storage layout).

    With shared slots, only the active phase's state is meaningful: the others
    have been overwritten by the phases that used their buffers since. Slots
    shared by phases of different dtypes read in their promoted dtype.
    """
    return _storage(state).phase_state(index)


def with_phase_state(
    state: SwitchState, index: int, inner_state: optax.OptState
) -> SwitchState:
    """``state`` with phase ``index``'s state replaced, keeping its dtypes."""
    storage = _storage(state)
    return _rebuild(state, storage.replace_cells(storage.split(index, inner_state)))


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
    metric_arg: str | None = "value",
    **switch_kwargs: Any,
) -> optax.GradientTransformationExtraArgs:
    """Switches to the next transform when a metric stops improving.

    ``switch(transforms, on_plateau(...))``: see :func:`on_plateau` for the
    exact plateau rule. Feed the metric with ``value=`` on ``update`` (a
    per-step training loss, best with ``accumulation_size > 1``), with another
    keyword named by ``metric_arg``, or with :func:`optaxswap.observe` (a
    validation loss).

    Args:
      transforms: a non-empty sequence of transforms.
      patience: bad observations before switching, ``>= 1``.
      cooldown: observations ignored after a switch, ``>= 0``.
      rtol: relative improvement threshold, ``>= 0``.
      atol: absolute improvement threshold, ``>= 0``.
      mode: ``"min"`` (a loss) or ``"max"`` (an accuracy).
      accumulation_size: values averaged into one observation, ``>= 1``.
      axis_name: the ``pmap``/``shard_map`` axis over which each value given
        to ``update`` is averaged, so every replica switches alike.
      metric_arg: the keyword of ``update`` that carries the metric. With a
        phase that reads the training loss as ``value=`` (``optax.lbfgs``,
        ``optax.polyak_sgd``), name another one (``"val_loss"``), which the
        phases do not receive, or ``None`` to switch on
        :func:`optaxswap.observe` alone.
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
        metric_arg=metric_arg,
    )
    return switch(transforms, trigger, **switch_kwargs)

"""Host-side helpers: read and steer combinator states between updates.

Each helper is pure and jittable and changes no shape, dtype or structure, so
calling it between steps (inside or outside ``jit``) never recompiles the
train step. They find the combinator states anywhere in a pytree: inside
``optax.chain``, ``optax.partition``, ``optax.MultiSteps``,
``optax.inject_hyperparams``, a Flax ``TrainState``, an ``nnx.Optimizer``,
its ``opt_state`` or ``nnx.state(optimizer)``, or nested in one another.

The writers return a new pytree and leave their input alone, except on an
NNX object (an ``nnx.Optimizer``): that one they update in place, as
``optimizer.update`` does, and return, so that a call inside ``nnx.jit``
needs no assignment. A writer that finds nothing to act on raises
``ValueError``: a request that nothing would ever read is a bug.
"""

from typing import Any, TypeVar

import jax
import jax.numpy as jnp

from optaxswap import _observing
from optaxswap import _processes
from optaxswap import _resettable
from optaxswap import _state_tree
from optaxswap import _switch

Tree = TypeVar("Tree")


def observe(
    opt_state: Tree,
    value: Any,
    *,
    axis_name: Any = None,
    across_processes: _processes.AcrossProcesses = "check",
) -> Tree:
    """Feeds one metric value to every metric-watching trigger in ``opt_state``.

    Those are :func:`on_plateau` and :func:`on_spike` triggers. This is
    exactly what the ``metric_arg`` keyword (``value=``) on an update does,
    evaluated at once: for a plateau, the value joins the accumulator and, if
    that completes an observation, the plateau rule runs now; a plateau (or
    spike) detected here fires on the next update.

    Args:
      opt_state: any pytree holding optaxswap states, or an ``nnx.Optimizer``
        (updated in place). Not ``nnx.state(optimizer)``, which drops the
        triggers' settings: pass the optimizer or its ``opt_state``.
      value: a float scalar, e.g. a validation loss.
      axis_name: under ``pmap``/``shard_map``, average ``value`` over this
        axis first so every replica observes the same number.
      across_processes: in a multi-process (``jax.distributed``) run, what
        to do with a concrete ``value`` (a Python float, a NumPy scalar, an
        array), which may differ between processes: ``"check"`` (the
        default) checks that every process passed the same value, ``"mean"``
        averages the processes' values; either is one all-gather of a
        scalar. A traced value (``observe`` called inside ``jit``,
        ``shard_map`` or ``pmap``) is used as it is, as is any value in a
        single process.

    Returns:
      ``opt_state`` with its metric-watching trigger states advanced.

    Raises:
      TypeError: if ``value`` is not a number or an array.
      ValueError: if ``value`` is not a floating-point scalar, if
        ``opt_state`` holds no metric-watching trigger, if
        ``across_processes`` is not ``"check"`` or ``"mean"``, or, with
        ``"check"``, if the processes passed different values (naming each
        process's value, on every process).

    Examples:
      >>> import jax.numpy as jnp
      >>> import optax
      >>> import optaxswap as osw
      >>> tx = osw.switch_on_plateau([optax.adam(0.1), optax.sgd(0.1)],
      ...                            patience=1)
      >>> params = jnp.zeros(2)
      >>> state = tx.init(params)
      >>> state = osw.observe(state, 1.0)  # improves on +inf
      >>> state = osw.observe(state, 1.5)  # bad: patience reached
      >>> int(osw.phase(state))            # the next update switches
      0
      >>> _, state = tx.update(params, state, params)
      >>> int(osw.phase(state))
      1
    """
    value = _processes.agree(value, across_processes)
    value = _observing.metric_value(value, axis_name=axis_name)
    _require(
        opt_state,
        _observing.ObservingState,
        "observe",
        "on_plateau or on_spike trigger state (PlateauState, SpikeState)",
    )
    return _state_tree.rewrite(
        opt_state, _observing.ObservingState, lambda state: state.observe(value)
    )


def request_reset(opt_state: Tree) -> Tree:
    """Makes the next update of every ``resettable`` inside reset its state.

    Args:
      opt_state: any pytree holding optaxswap states, or an ``nnx.Optimizer``
        (updated in place).

    Returns:
      ``opt_state`` with every :class:`ResettableState`'s request flag set.

    Raises:
      ValueError: if ``opt_state`` holds no ``resettable`` state.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optax
      >>> import optaxswap as osw
      >>> tx = osw.resettable(optax.adam(0.1))
      >>> params = jnp.zeros(2)
      >>> state = osw.request_reset(tx.init(params))
      >>> _, state = tx.update(params, state, params)
      >>> int(osw.reset_count(state))
      1
    """
    _require(
        opt_state,
        _resettable.ResettableState,
        "request_reset",
        "resettable state (ResettableState)",
    )
    return _state_tree.rewrite(opt_state, _resettable.ResettableState, _set_requested)


def request_switch(opt_state: Tree) -> Tree:
    """Makes the next update of every ``switch`` inside advance its phase.

    Args:
      opt_state: any pytree holding optaxswap states, or an ``nnx.Optimizer``
        (updated in place).

    Returns:
      ``opt_state`` with every :class:`SwitchState`'s request flag set.

    Raises:
      ValueError: if ``opt_state`` holds no ``switch`` state.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optax
      >>> import optaxswap as osw
      >>> tx = osw.switch([optax.adam(0.1), optax.sgd(0.1)], osw.never())
      >>> params = jnp.zeros(2)
      >>> state = osw.request_switch(tx.init(params))
      >>> _, state = tx.update(params, state, params)
      >>> int(osw.phase(state))
      1
    """
    _require(
        opt_state, _switch.SwitchState, "request_switch", "switch state (SwitchState)"
    )
    return _state_tree.rewrite(opt_state, _switch.SwitchState, _set_requested)


def phase(opt_state: Any) -> jax.Array:
    """The phase of the one ``switch`` inside ``opt_state``.

    Args:
      opt_state: any pytree holding exactly one :class:`SwitchState`.

    Returns:
      The int32 phase (batched if the state is).

    Raises:
      ValueError: if ``opt_state`` holds no ``switch`` state or several.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optax
      >>> import optaxswap as osw
      >>> tx = optax.chain(optax.clip(1.0),
      ...                  osw.switch_at([optax.adam(0.1), optax.sgd(0.1)], [5]))
      >>> int(osw.phase(tx.init(jnp.zeros(2))))
      0
    """
    return _the_one(opt_state, _switch.SwitchState, "switch", "phase")


def reset_count(opt_state: Any) -> jax.Array:
    """The number of resets of the one ``resettable`` inside ``opt_state``.

    Args:
      opt_state: any pytree holding exactly one :class:`ResettableState`.

    Returns:
      The int32 reset count (batched if the state is).

    Raises:
      ValueError: if ``opt_state`` holds no ``resettable`` state or several.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optax
      >>> import optaxswap as osw
      >>> tx = osw.resettable(optax.adam(0.1), osw.every(10))
      >>> int(osw.reset_count(tx.init(jnp.zeros(2))))
      0
    """
    return _the_one(opt_state, _resettable.ResettableState, "resettable", "resets")


def _set_requested(state: Any) -> Any:
    return state._replace(requested=jnp.ones_like(state.requested))


def _require(opt_state: Any, state_type: type, helper: str, wanted: str) -> None:
    if not _state_tree.find(opt_state, state_type):
        raise ValueError(
            f"{helper} found no {wanted} in opt_state, a"
            f" {type(opt_state).__name__}, so it would change nothing. It"
            " looks anywhere in a pytree (chain, partition, MultiSteps,"
            " TrainState.opt_state, an nnx.Optimizer): pass the state that"
            " holds the combinator."
        )


def _the_one(opt_state: Any, state_type: type, name: str, field: str) -> jax.Array:
    found = _state_tree.find(opt_state, state_type)
    if len(found) != 1:
        raise ValueError(
            f"expected exactly one {name} state ({state_type.__name__}) in"
            f" opt_state, found {len(found)}."
        )
    return _state_tree.field(_state_tree.unwrap(found[0]), field)

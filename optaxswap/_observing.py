"""Trigger states that watch a metric, fed by an update keyword and ``observe``.

A metric-watching trigger keeps its hyper-parameters as static pytree
metadata beside its array leaves, so ``osw.observe`` can advance it from the
optimizer state alone, without the transform that created it. Its floats are
in JAX's default float precision (float64 with ``jax_enable_x64``), so the
plateau rule compares in the metric's precision.
"""

from collections.abc import Callable
import dataclasses
import numbers
from typing import Any, Self

import jax
from jax import lax
import jax.numpy as jnp
import numpy as np
import optax

from optaxswap import _state_tree
from optaxswap import _triggers

# The keyword that optax's own transforms (lbfgs, polyak_sgd,
# reduce_on_plateau) read the training loss from: always forwarded to them.
SHARED_METRIC_ARG = "value"


class ObservingState:
    """Base class of trigger states that consume metric values.

    Subclasses are frozen dataclasses registered as pytrees, with a bool
    ``pending`` leaf that :func:`observing_trigger` fires on and a static
    ``config`` with a ``metric_arg`` attribute.
    """

    pending: jax.Array
    config: Any

    def observe(self, value: jax.Array) -> Self:
        """Returns the state after one metric value (a float scalar)."""
        raise NotImplementedError


def metric_dtype() -> jnp.dtype:
    """The float dtype of metric states: float64 with ``jax_enable_x64``."""
    return jax.dtypes.canonicalize_dtype(jnp.float64)


def metric_value(
    value: Any, *, name: str = "value", axis_name: Any = None
) -> jax.Array:
    """Checks a metric value and returns it as a float scalar.

    The scalar is no narrower than :func:`metric_dtype`; each state then casts
    it to its own float dtype. The check runs on types, shapes and dtypes, so
    a bad value fails at trace time, naming the argument ``name`` it came
    from.
    """
    expected = (
        f"{name} must be a floating-point scalar (a float or a 0-d float array),"
        f" got {value!r} of type {type(value).__name__}."
    )
    if not isinstance(
        value, jax.Array | np.ndarray | np.number | np.bool_ | numbers.Real
    ):
        raise TypeError(expected)
    try:
        value = jnp.asarray(value)
    except TypeError as error:  # A NumPy array of strings or objects.
        raise TypeError(expected) from error
    if value.shape != ():
        raise ValueError(
            f"{name} must be a scalar metric, got an array of shape {value.shape}."
        )
    if not jnp.issubdtype(value.dtype, jnp.floating):
        raise ValueError(
            f"{name} must be a floating-point scalar, got dtype {value.dtype}."
            " Pass the metric as a float (e.g. float(loss) or loss.astype(float))."
        )
    # Never narrower than float32, and no rounding of a float64 metric when
    # x64 is on: the plateau rule's margins can be far below float32's step.
    value = value.astype(jnp.promote_types(value.dtype, metric_dtype()))
    if axis_name is not None:
        # Every replica must take the same decision, so they must all observe
        # the same number.
        value = lax.pmean(value, axis_name)
    return value


def observing_trigger(
    init_fn: Callable[[optax.Params], ObservingState],
    *,
    metric_arg: str | None,
    axis_name: Any,
) -> _triggers.Trigger:
    """A trigger that observes ``update``'s ``metric_arg`` and fires on ``pending``.

    The state's ``pending`` flag records a condition met by any observation
    since the last update, from the ``metric_arg`` keyword of ``update`` or
    from ``osw.observe``; the update fires on it and clears it, so several
    between two updates fire once. ``metric_arg=None`` reads no keyword.
    """

    def update_fn(
        state: ObservingState, context: _triggers.TriggerContext
    ) -> tuple[jax.Array, ObservingState]:
        value = None if metric_arg is None else context.extra_args.get(metric_arg)
        if value is not None:
            state = state.observe(
                metric_value(value, name=metric_arg, axis_name=axis_name)
            )
        return state.pending, dataclasses.replace(
            state, pending=jnp.zeros((), jnp.bool_)
        )

    return _triggers.Trigger(init_fn, update_fn)


def inner_extra_args(trigger_state: Any, extra_args: dict[str, Any]) -> dict[str, Any]:
    """The extra arguments of ``update`` that the inner transforms receive.

    All of them but the ``metric_arg`` keywords of the metric-watching
    triggers in ``trigger_state`` (nested ones, in ``any_of``, included):
    those are the triggers' own, and optax's L-BFGS, for one, passes every
    keyword to its ``value_fn``, which raises ``TypeError`` on one it does not
    take. ``value`` is always forwarded, since optax's own transforms read the
    training loss from it.
    """
    own = {
        state.config.metric_arg
        for state in _state_tree.find(trigger_state, ObservingState)
    } - {None, SHARED_METRIC_ARG}
    return {name: arg for name, arg in extra_args.items() if name not in own}

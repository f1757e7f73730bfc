"""Trigger states that watch a metric, fed by ``value=`` and ``observe``.

A metric-watching trigger keeps its hyper-parameters as static pytree
metadata beside its array leaves, so ``osw.observe`` can advance it from the
optimizer state alone, without the transform that created it.
"""

from collections.abc import Callable
import dataclasses
from typing import Any, Self

import jax
from jax import lax
import jax.numpy as jnp
import optax

from optaxswap import _triggers


class ObservingState:
    """Base class of trigger states that consume metric values.

    Subclasses are frozen dataclasses registered as pytrees, with a bool
    ``pending`` leaf that :func:`observing_trigger` fires on.
    """

    pending: jax.Array

    def observe(self, value: jax.Array) -> Self:
        """Returns the state after one metric value (a float32 scalar)."""
        raise NotImplementedError


def metric_value(value: Any, *, axis_name: Any = None) -> jax.Array:
    """Checks a metric value and returns it as a float32 scalar.

    The check runs on shapes and dtypes, so a bad value fails at trace time.
    """
    value = jnp.asarray(value)
    if value.shape != ():
        raise ValueError(
            f"value must be a scalar metric, got an array of shape {value.shape}."
        )
    if not jnp.issubdtype(value.dtype, jnp.floating):
        raise ValueError(
            f"value must be a floating-point scalar, got dtype {value.dtype}."
            " Pass the metric as a float (e.g. float(loss) or loss.astype(float))."
        )
    value = value.astype(jnp.float32)
    if axis_name is not None:
        # Every replica must take the same decision, so they must all observe
        # the same number.
        value = lax.pmean(value, axis_name)
    return value


def observing_trigger(
    init_fn: Callable[[optax.Params], ObservingState], axis_name: Any
) -> _triggers.Trigger:
    """A trigger that observes ``value=`` (if given) and fires on ``pending``.

    The state's ``pending`` flag records a condition met by any observation
    since the last update, from ``value=`` or from ``osw.observe``; the update
    fires on it and clears it, so several between two updates fire once.
    """

    def update_fn(
        state: ObservingState, context: _triggers.TriggerContext
    ) -> tuple[jax.Array, ObservingState]:
        value = context.extra_args.get("value")
        if value is not None:
            state = state.observe(metric_value(value, axis_name=axis_name))
        return state.pending, dataclasses.replace(
            state, pending=jnp.zeros((), jnp.bool_)
        )

    return _triggers.Trigger(init_fn, update_fn)


def inner_extra_args(trigger_state: Any, extra_args: dict[str, Any]) -> dict[str, Any]:
    """The extra arguments to forward to the inner transforms.

    Every one but the metric keywords of the metric-watching triggers in
    ``trigger_state`` other than ``value`` (which the inner transforms may
    read too: L-BFGS and Polyak SGD take the training loss as ``value=``).
    """
    from optaxswap import _state_tree

    own = {
        getattr(state.config, "metric_arg", "value")
        for state in _state_tree.find(trigger_state, ObservingState)
    }
    own.discard("value")
    return {name: arg for name, arg in extra_args.items() if name not in own}

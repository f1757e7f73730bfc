"""Trigger states that watch a metric, fed by ``value=`` and ``observe``.

A metric-watching trigger keeps its hyper-parameters as static pytree
metadata beside its array leaves, so ``osw.observe`` can advance it from the
optimizer state alone, without the transform that created it.
"""

from typing import Any, Self

import jax
from jax import lax
import jax.numpy as jnp

from optaxswap import _triggers


class ObservingState:
    """Base class of trigger states that consume metric values."""

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


def observe_value_arg(
    state: ObservingState, context: _triggers.TriggerContext, axis_name: Any
) -> ObservingState:
    """Feeds the ``value=`` extra argument of an update, if one was given."""
    value = context.extra_args.get("value")
    if value is None:
        return state
    return state.observe(metric_value(value, axis_name=axis_name))

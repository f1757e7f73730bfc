"""Checks of optimizer hyper-parameters shared by the strategy recipes.

Like :mod:`optaxswap._validation`, every check raises at construction time
with a message that names the argument, quotes the bad value and says what is
allowed.
"""

import math
import numbers
from typing import Any

import jax
import numpy as np
import optax


def check_real(
    name: str,
    value: Any,
    *,
    low: float,
    high: float | None = None,
    low_open: bool = False,
) -> float | jax.Array:
    """Returns ``value`` as a float if it is finite and in range.

    The range is ``value >= low`` (``> low`` with ``low_open``), and
    ``value < high`` when ``high`` is given. A traced scalar, as
    ``optax.inject_hyperparams`` passes, cannot be checked and is returned
    as is; a concrete array scalar is checked like a number.
    """
    if isinstance(value, jax.core.Tracer):
        return value
    if isinstance(value, (jax.Array, np.ndarray)) and np.ndim(value) == 0:
        value = value.item()
    lower = f"{'>' if low_open else '>='} {low}"
    allowed = lower if high is None else f"{lower} and < {high}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{name} must be a real number {allowed}, got {value!r} of type"
            f" {type(value).__name__}."
        )
    try:
        as_float = float(value)
    except OverflowError:  # An int beyond float range.
        as_float = math.inf
    in_range = (as_float > low if low_open else as_float >= low) and (
        high is None or as_float < high
    )
    if not (math.isfinite(as_float) and in_range):
        raise ValueError(f"{name} must be a finite number {allowed}, got {value!r}.")
    return float(value)


def check_learning_rate(value: Any) -> optax.ScalarOrSchedule:
    """A schedule (any callable) or a finite number ``> 0``."""
    if callable(value):
        return value
    return check_real("learning_rate", value, low=0.0, low_open=True)


def check_decays(b1: Any, b2: Any, eps: Any) -> tuple[float, float, float]:
    """Adam's ``b1`` in ``[0, 1)``, ``b2`` in ``(0, 1)`` and ``eps >= 0``."""
    return (
        check_real("b1", b1, low=0.0, high=1.0),
        check_real("b2", b2, low=0.0, high=1.0, low_open=True),
        check_real("eps", eps, low=0.0),
    )

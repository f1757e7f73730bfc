"""Argument checks shared by the public constructors.

Every check raises at construction time, in Python, with a message that names
the argument, quotes the bad value and says what is allowed.
"""

from collections.abc import Sequence
import math
import numbers
from typing import Any

import jax
import numpy as np
import optax

INT32_MAX = int(np.iinfo(np.int32).max)


def check_int(name: str, value: Any, *, minimum: int) -> int:
    """Returns ``value`` as an ``int`` if it is an integer ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"{name} must be an int >= {minimum}, got {value!r} of type"
            f" {type(value).__name__}."
        )
    if not minimum <= value <= INT32_MAX:
        raise ValueError(
            f"{name} must be an int in [{minimum}, {INT32_MAX}], got {value!r}."
        )
    return int(value)


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


def check_choice(name: str, value: Any, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {tuple(allowed)}, got {value!r}.")
    return value


def check_boundaries(name: str, boundaries: Any) -> tuple[int, ...]:
    """Strictly increasing positive int32 step numbers."""
    if isinstance(boundaries, (str, bytes)) or not isinstance(
        boundaries, (Sequence, np.ndarray)
    ):
        raise TypeError(
            f"{name} must be a sequence of ints, got {boundaries!r} of type"
            f" {type(boundaries).__name__}."
        )
    # INT32_MAX itself is never a boundary: a saturated count stays there.
    steps = tuple(
        check_int(f"{name}[{i}]", step, minimum=1) for i, step in enumerate(boundaries)
    )
    if any(step >= INT32_MAX for step in steps):
        raise ValueError(f"{name} must be below {INT32_MAX}, got {list(steps)}.")
    if any(later <= earlier for earlier, later in zip(steps, steps[1:])):
        raise ValueError(f"{name} must be strictly increasing, got {list(steps)}.")
    return steps


def _is_transform(value: Any) -> bool:
    return callable(getattr(value, "init", None)) and callable(
        getattr(value, "update", None)
    )


def check_transform(name: str, value: Any) -> optax.GradientTransformation:
    """An object with ``init`` and ``update``, as optax transforms have."""
    if not _is_transform(value):
        raise TypeError(
            f"{name} must be an optax.GradientTransformation, got {value!r}."
        )
    return value


def check_transforms(
    name: str, transforms: Any
) -> tuple[optax.GradientTransformationExtraArgs, ...]:
    """A non-empty sequence of transforms, each given extra-args support."""
    if _is_transform(transforms):
        # An optax transform is a NamedTuple, so it would pass for a sequence
        # of its two functions.
        raise TypeError(
            f"{name} must be a sequence of optax transforms, got a single"
            f" transform ({type(transforms).__name__}); wrap it in a list:"
            f" [tx]."
        )
    if isinstance(transforms, (str, bytes)) or not isinstance(transforms, Sequence):
        raise TypeError(
            f"{name} must be a non-empty sequence of optax transforms, got"
            f" {transforms!r}."
        )
    if not transforms:
        raise ValueError(
            f"{name} must be a non-empty sequence of optax transforms, got"
            f" {transforms!r}."
        )
    return tuple(
        optax.with_extra_args_support(check_transform(f"{name}[{i}]", tx))
        for i, tx in enumerate(transforms)
    )


# The parameters of ``update`` itself: a keyword of one of these names never
# reaches the extra arguments a trigger reads.
_UPDATE_PARAMETERS = ("updates", "state", "params")


def check_metric_arg(metric_arg: Any) -> str | None:
    """The name of an ``update`` keyword, or ``None``."""
    if metric_arg is None:
        return None
    if not isinstance(metric_arg, str) or not metric_arg.isidentifier():
        raise TypeError(
            "metric_arg must be the name of a keyword argument of update (a"
            f" str such as 'value' or 'val_loss') or None, got {metric_arg!r}."
        )
    if metric_arg in _UPDATE_PARAMETERS:
        raise ValueError(
            f"metric_arg must not be one of update's own parameters"
            f" {_UPDATE_PARAMETERS}, got {metric_arg!r}."
        )
    return metric_arg

"""An update called outside any trace runs as one compiled step.

A combinator's update is built to be traced: its conditionals, and the
jaxprs it reads to choose how to run the phases, assume one trace per
compilation. Called eagerly (in a notebook, a debugging session, a loop that
jits nothing, ``nnx.Optimizer.update`` outside ``nnx.jit``), every one of its
``lax.cond`` would be traced and compiled again on every call, since the
branches are new functions each time: a two-phase switch took 0.3 to 0.5 s
per update where bare Adam takes 2 to 3 ms (20K parameters, on CPU;
``docs/performance.md``, "Eager calls"). So an eager call goes through one
``jax.jit`` of the update, kept with the transformation: compiled on the
first call for each shape and dtype of its arguments, then dispatched as
bare optax's jitted step is. Inside a trace (``jit``, ``vmap``, ``grad``,
``pmap``, ``shard_map``), the update is traced in place, as before.

An argument that ``jax.jit`` cannot take (a leaf that is neither an array
nor a number, such as the ``value_fn`` that L-BFGS's line search is given)
leaves the call eager, as it was.
"""

from collections.abc import Callable
import functools
from typing import Any

import jax
import numpy as np

_ARRAY_LIKE = (jax.Array, np.ndarray, np.generic, bool, int, float, complex)


def _eager(leaf: Any) -> bool:
    """Whether ``jax.jit`` takes ``leaf`` as an argument and no trace holds it."""
    return isinstance(leaf, _ARRAY_LIKE) and not isinstance(leaf, jax.core.Tracer)


def compiled_when_eager(update_fn: Callable[..., Any]) -> Callable[..., Any]:
    """``update_fn``, run through one ``jax.jit`` when called outside a trace.

    Args:
      update_fn: a combinator's ``update(updates, state, params=None,
        **extra_args)``.

    Returns:
      An update with the same signature and results.
    """
    compiled = jax.jit(update_fn)

    @functools.wraps(update_fn)
    def update(
        updates: Any, state: Any, params: Any = None, **extra_args: Any
    ) -> tuple[Any, Any]:
        leaves = jax.tree.leaves((updates, state, params, extra_args))
        if all(_eager(leaf) for leaf in leaves):
            return compiled(updates, state, params, **extra_args)
        return update_fn(updates, state, params, **extra_args)

    return update

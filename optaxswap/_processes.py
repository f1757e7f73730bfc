"""Metric values given on the host in a multi-process (``jax.distributed``) run.

Every process runs the same train step on its own copy of the optimizer
state's replicated leaves (phase, plateau best, counters). A value computed
inside a jitted function from global arrays is the same on every process, but
a value computed on the host (a validation loss over the process's own
evaluation shard) is not: fed to ``observe`` as it is, it would make the
processes switch at different steps and run different optimizers on what
should be the same params, without any error. Here every concrete value is
either checked to be the same on every process (the default: a mistake
becomes an error) or averaged over the processes (when the user asks for it).
"""

from typing import Any, Literal

import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import numpy as np

AcrossProcesses = Literal["check", "mean"]
ACROSS_PROCESSES = ("check", "mean")


def agree(value: Any, across_processes: AcrossProcesses) -> Any:
    """The one value every process uses for a concrete ``value`` of this process.

    A traced value (under ``jit``, ``pmap``, ``shard_map``) is part of the
    step's global computation and is returned as it is, as is any value in a
    single process. Every concrete value is this process's own, whatever its
    type: under ``jax.set_mesh``, even ``jnp.asarray(local_loss)`` or a jitted
    function of process-local NumPy data returns an array typed as global (a
    ``NamedSharding`` over every process's devices) that holds each process's
    own number. For those, every process takes part in one all-gather of the
    scalar: ``"check"`` raises on every process (so none waits for the
    others) if any value differs, ``"mean"`` returns the mean, computed alike
    on every process so that all of them get the same bits.

    Args:
      value: a metric value as given to ``observe``.
      across_processes: ``"check"`` or ``"mean"``.

    Returns:
      ``value``, or the processes' mean as a NumPy scalar of its dtype.

    Raises:
      ValueError: with ``"check"``, if the processes passed different values,
        naming each process's value.
    """
    if across_processes not in ACROSS_PROCESSES:
        raise ValueError(
            f"across_processes must be one of {ACROSS_PROCESSES}, got"
            f" {across_processes!r}."
        )
    if jax.process_count() == 1 or isinstance(value, jax.core.Tracer):
        return value
    host_value = np.asarray(value)
    if host_value.shape != () or not jnp.issubdtype(host_value.dtype, jnp.floating):
        return value  # Not a float scalar: observe refuses it.
    gathered = np.asarray(multihost_utils.process_allgather(host_value))
    if across_processes == "mean":
        return np.asarray(gathered.astype(np.float64).mean(), host_value.dtype)
    # Bitwise, so that NaN on every process counts as the same value.
    if len({item.tobytes() for item in gathered}) > 1:
        listed = ", ".join(
            f"process {index}: {item.item()!r}" for index, item in enumerate(gathered)
        )
        raise ValueError(
            "observe got a different value on each process, which would make"
            f" the processes switch at different steps ({listed}). Average it"
            ' with observe(..., across_processes="mean"), or compute it inside'
            " a jitted function from global arrays, so every process passes"
            " the same value."
        )
    return value

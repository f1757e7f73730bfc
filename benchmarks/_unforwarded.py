"""A baseline: the per-phase conditionals without forwarding the gradients.

optaxswap chains one conditional per phase through the updates: an inactive
phase's conditional forwards them unchanged. When the gradients are a
read-only argument of the step (the ``apply`` view), XLA copies them in front
of the first conditional on every step. This variant instead starts the chain
from an empty buffer (``lax.empty``: uninitialized on GPU and TPU, zeros on
CPU) that the active phase overwrites, so nothing forwards the gradients.
The benchmark keeps it to show the trade: the copy leaves the apply view, but
the updates no longer reuse the gradients' buffer, so the ``update`` and
``train`` views, where the gradients are donated or an intermediate and the
current chain copies nothing, pay for a buffer and a copy instead.
"""

from collections.abc import Iterator, Sequence
import contextlib
from typing import Any

import jax
from jax import lax
import optax

import optaxswap as osw
from optaxswap import _engine

_guarded_update = _engine.guarded_update


def _unforwarded_update(
    state, updates, params, extra_args, *, active_phase, owner, **engine
) -> tuple[optax.Updates, Any]:
    """``_engine.guarded_update`` with the run chain started from ``lax.empty``."""
    del owner
    state = _engine.fire_and_enter(state, updates, params, extra_args, **engine)
    active = active_phase(state)
    result = jax.tree.map(lambda leaf: lax.empty(leaf.shape, leaf.dtype), updates)
    for index, phase in enumerate(engine["phases"]):
        result, state = lax.cond(
            active == index,
            lambda result, updates, state, phase=phase: phase.run(updates, state),
            lambda result, updates, state: (result, state),
            result,
            updates,
            state,
        )
    return result, _engine.finish(state)


@contextlib.contextmanager
def _unforwarded_engine() -> Iterator[None]:
    _engine.guarded_update = _unforwarded_update
    try:
        yield
    finally:
        _engine.guarded_update = _guarded_update


def unforwarded_switch(
    transforms: Sequence[optax.GradientTransformation], boundaries: Sequence[int]
) -> optax.GradientTransformationExtraArgs:
    """``osw.switch_at`` traced with :func:`_unforwarded_update` as its engine."""
    tx = osw.switch_at(transforms, boundaries)

    def update_fn(updates, state, params=None, **extra_args):
        with _unforwarded_engine():
            return tx.update(updates, state, params, **extra_args)

    return optax.GradientTransformationExtraArgs(tx.init, update_fn)

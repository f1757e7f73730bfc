"""Phase hand-off: build an entering phase's state from the leaving one's.

By default, entering a phase re-initializes its state from the current params,
as re-instantiating an optimizer in Keras or PyTorch would. A ``handoff``
function given to :func:`optaxswap.switch` replaces that ``init`` by any pure
function of a :class:`HandoffContext`.
"""

from typing import Any, NamedTuple, Protocol

import jax
import optax


class HandoffContext(NamedTuple):
    """What a hand-off function sees when phase ``from_phase`` ends.

    Attributes:
      from_phase: the index of the phase that ends (a Python int).
      to_phase: the index of the phase that begins (a Python int).
      from_state: the leaving phase's state, as its last update left it.
      fresh_state: ``transforms[to_phase].init(params)``, the default.
      params: the current params.
      trigger_state: the trigger's state after this update's evaluation.
      count: int32, updates performed before this one.
    """

    from_phase: int
    to_phase: int
    from_state: optax.OptState
    fresh_state: optax.OptState
    params: optax.Params
    trigger_state: Any
    count: jax.Array


class HandoffFn(Protocol):
    def __call__(self, context: HandoffContext) -> optax.OptState: ...

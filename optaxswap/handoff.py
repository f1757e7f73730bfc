"""Phase hand-off: build an entering phase's state from the leaving one's.

By default, entering a phase re-initializes its state from the current params,
as re-instantiating an optimizer in Keras or PyTorch would. A ``handoff``
function given to :func:`optaxswap.switch` replaces that ``init`` by any pure
function of a :class:`HandoffContext`. :func:`carry_momentum` is one: the
first moment of an Adam phase becomes the momentum of the SGD phase after it.
"""

from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp
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


def carry_momentum(context: HandoffContext) -> optax.OptState:
    """Enters an SGD-with-momentum phase with Adam's first moment as its trace.

    Give it as ``switch(..., handoff=osw.handoff.carry_momentum)``: instead of
    starting from a zero momentum, the entering phase's ``trace`` (the buffer
    of ``optax.trace``, used by ``optax.sgd(..., momentum=m)``) is set to the
    leaving phase's ``mu`` (the first moment of ``optax.scale_by_adam`` and of
    every optax optimizer built on it: ``adam``, ``adamw``, ``nadam``, ...);
    every other leaf of the entering state is its fresh ``init``.

    State-layout assumptions, checked when the step is traced:

    - the leaving state holds exactly one field named ``mu``, and the entering
      state exactly one named ``trace`` (the lookup of ``optax.tree.get``, so
      both may sit anywhere inside ``optax.chain`` or ``inject_hyperparams``);
    - both have the same tree structure and leaf shapes (they do when both
      phases optimize the same params). Dtypes follow the entering ``trace``.

    Adam's ``mu`` is an exponential average, ``(1 - b1) * sum_i b1**i g_i``,
    while ``optax.trace`` accumulates ``sum_i m**i g_i``: with ``m == b1`` the
    carried momentum is ``1 - b1`` times what the trace would have built from
    the same gradients. It is carried unscaled: the first SGD steps continue
    in Adam's averaged gradient direction, without a burst of size
    ``1 / (1 - b1)``.

    Args:
      context: the :class:`HandoffContext` of the phase change.

    Returns:
      The entering phase's state, ``context.fresh_state`` with ``trace``
      replaced by the leaving state's ``mu``.

    Raises:
      ValueError: if the leaving state has no single ``mu``, the entering
        state no single ``trace``, or their structures or shapes differ.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optax
      >>> import optaxswap as osw
      >>> tx = osw.switch_at([optax.adam(0.1), optax.sgd(0.1, momentum=0.9)],
      ...                    [2], handoff=osw.handoff.carry_momentum)
      >>> params = jnp.array([1.0, -2.0])
      >>> state = tx.init(params)
      >>> for _ in range(2):
      ...     updates, state = tx.update(params, state, params)
      >>> adam_mu = state.inner_states[0][0].mu
      >>> _, state = tx.update(jnp.zeros(2), state, params)  # enters SGD
      >>> sgd_trace = state.inner_states[1][0].trace  # 0.9 * mu + 0
      >>> bool(jnp.allclose(sgd_trace, 0.9 * adam_mu))
      True
    """
    mu = _the_only_field(
        context.from_state, "mu", f"leaving (phase {context.from_phase})"
    )
    trace = _the_only_field(
        context.fresh_state, "trace", f"entering (phase {context.to_phase})"
    )
    mu_structure, trace_structure = jax.tree.structure(mu), jax.tree.structure(trace)
    if mu_structure != trace_structure:
        raise ValueError(
            "carry_momentum needs the leaving phase's `mu` and the entering"
            f" phase's `trace` to have the same tree structure, got {mu_structure}"
            f" and {trace_structure}."
        )
    mu_shapes = [jnp.shape(leaf) for leaf in jax.tree.leaves(mu)]
    trace_shapes = [jnp.shape(leaf) for leaf in jax.tree.leaves(trace)]
    if mu_shapes != trace_shapes:
        raise ValueError(
            "carry_momentum needs the leaving phase's `mu` and the entering"
            f" phase's `trace` to have the same leaf shapes, got {mu_shapes}"
            f" and {trace_shapes}."
        )
    return optax.tree.set(context.fresh_state, trace=optax.tree.cast_like(mu, trace))


def _the_only_field(state: optax.OptState, name: str, which: str) -> Any:
    found = optax.tree.get_all_with_path(state, name)
    if len(found) != 1:
        raise ValueError(
            f"carry_momentum needs exactly one `{name}` field in the {which}"
            f" state, found {len(found)}: it moves the `mu` of an Adam-family"
            " state (optax.scale_by_adam) into the `trace` of an SGD-momentum"
            " state (optax.trace, optax.sgd(..., momentum=m)). Write your own"
            " handoff for other layouts."
        )
    return found[0][1]

"""Optimizer-reset recipes from the literature, built on ``resettable``.

Each recipe is a few lines over :func:`optaxswap.resettable`; the
:doc:`strategy pages </strategies/index>` give the paper, the formula and a
worked example.

- :func:`spam`: SPAM's periodic momentum reset with a cosine warm-up and
  spike-aware gradient clipping (Huang et al. 2025).
- :func:`adam_rel`: Adam-Rel, Adam whose step count restarts at each trigger
  while its moments carry on (Ellis et al. 2024).
- :func:`target_sync_reset`: reset the whole optimizer state whenever a
  reinforcement-learning target network is synced (Asadi et al. 2023).

The two RL recipes fire, by default, on each update called with
``target_synced=True``; an update without that argument does not fire, and
:func:`optaxswap.request_reset` works as for any ``resettable``.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from optaxswap import _resettable
from optaxswap import _triggers
from optaxswap import _validation

TARGET_SYNCED = "target_synced"


def _target_synced() -> _triggers.Trigger:
    """Fires on each update given ``target_synced=True``."""

    def synced(context: _triggers.TriggerContext) -> jax.Array:
        signal = context.extra_args.get(TARGET_SYNCED)
        if signal is None:
            return jnp.zeros((), jnp.bool_)
        return jnp.asarray(signal).astype(jnp.bool_)

    return _triggers.when(synced)


def _or_target_synced(trigger: _triggers.Trigger | None) -> _triggers.Trigger:
    # resettable checks the type; None here means the loop's sync signal.
    return _target_synced() if trigger is None else trigger


class ScaleBySpamState(NamedTuple):
    """State of SPAM's Adam (the inner state of :func:`spam`).

    Attributes:
      adam: the ``optax.scale_by_adam`` state (``count``, ``mu``, ``nu``).
      steps_since_reset: int32, updates since the last reset (or ``init``),
        which drive the warm-up and the clipping delay.
    """

    adam: optax.ScaleByAdamState
    steps_since_reset: jax.Array


# SPAM resets these and keeps Adam's ``count``, so that the bias correction
# continues from the global step.
SPAM_RESET_FIELDS = ("mu", "nu", "steps_since_reset")

# The authors' warm-up rises from 1 - 0.99 along a half cosine.
_WARMUP_FLOOR = 0.01


def spam_warmup_scale(steps_since_reset: jax.Array, warmup: int) -> jax.Array:
    """SPAM's update scale, ``steps_since_reset`` updates after a reset.

    ``1 - 0.99 * (1 + cos(pi * s / (warmup + 1))) / 2`` for ``s < warmup``,
    then ``1``: the cosine warm-up of the authors' code (a cosine decay of
    ``0.99`` over ``warmup + 1`` steps, subtracted from one).

    Args:
      steps_since_reset: int32 scalar ``s``.
      warmup: the warm-up length, an int ``>= 0``.

    Returns:
      A float32 scalar in ``[0.01, 1]``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from optaxswap import recipes
      >>> [round(float(recipes.spam_warmup_scale(jnp.int32(s), 3)), 4)
      ...  for s in range(5)]
      [0.01, 0.155, 0.505, 1.0, 1.0]
    """
    decay = optax.cosine_decay_schedule(1.0 - _WARMUP_FLOOR, decay_steps=warmup + 1)
    return jnp.where(
        steps_since_reset < warmup, 1.0 - decay(steps_since_reset), 1.0
    ).astype(jnp.float32)


def _scale_by_spam(
    b1: float,
    b2: float,
    eps: float,
    threshold: float | None,
    warmup: int,
    clip_delay: int,
) -> optax.GradientTransformation:
    adam = optax.scale_by_adam(b1=b1, b2=b2, eps=eps)

    def init_fn(params: optax.Params) -> ScaleBySpamState:
        return ScaleBySpamState(
            adam=adam.init(params), steps_since_reset=jnp.zeros((), jnp.int32)
        )

    def clip_spikes(updates: optax.Updates, state: ScaleBySpamState) -> optax.Updates:
        if threshold is None:
            return updates
        # Right after a reset nu is zero and would clip every gradient to
        # zero, which would keep it zero forever: the authors' code clips only
        # once clip_delay updates have refilled it.
        clipping = state.steps_since_reset >= clip_delay

        def clip(grad: jax.Array, nu: jax.Array) -> jax.Array:
            limit = threshold * nu
            spike = clipping & (jnp.square(grad) > limit)
            return jnp.where(spike, jnp.sign(grad) * jnp.sqrt(limit), grad).astype(
                grad.dtype
            )

        return jax.tree.map(clip, updates, state.adam.nu)

    def update_fn(
        updates: optax.Updates,
        state: ScaleBySpamState,
        params: optax.Params | None = None,
    ) -> tuple[optax.Updates, ScaleBySpamState]:
        step, adam_state = adam.update(clip_spikes(updates, state), state.adam, params)
        scale = spam_warmup_scale(state.steps_since_reset, warmup)
        step = jax.tree.map(lambda leaf: (scale * leaf).astype(leaf.dtype), step)
        return step, ScaleBySpamState(
            adam=adam_state,
            steps_since_reset=optax.safe_increment(state.steps_since_reset),
        )

    return optax.GradientTransformation(init_fn, update_fn)


def spam(
    learning_rate: optax.ScalarOrSchedule = 1e-3,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    *,
    interval: int = 500,
    warmup: int = 150,
    threshold: float | None = 5000.0,
    clip_delay: int = 20,
) -> optax.GradientTransformationExtraArgs:
    r"""SPAM: Adam with periodic momentum resets and spike-aware clipping.

    ``resettable(adam, every(interval), fields=("mu", "nu", ...))`` with:

    - Momentum reset: on updates ``interval, 2 * interval, ...`` Adam's ``mu``
      and ``nu`` restart from zero while its ``count`` (hence the bias
      correction) carries on.
    - Warm-up: ``s`` updates after a reset (and after ``init``) the update is
      scaled by ``1 - 0.99 * (1 + cos(pi * s / (warmup + 1))) / 2`` for
      ``s < warmup`` (see :func:`spam_warmup_scale`), by one afterwards.
    - Spike-aware clipping: a gradient entry with ``g**2 > threshold * nu``,
      ``nu`` being Adam's second moment before this update, becomes
      ``sign(g) * sqrt(threshold * nu)``. As in the authors' code, nothing is
      clipped in the first ``clip_delay`` updates after a reset (or ``init``),
      where ``nu`` is still near zero.

    The update is ``-learning_rate * scale * m_hat / (sqrt(v_hat) + eps)``
    with optax's Adam. Other triggers work too: build
    ``resettable(chain, trigger, fields=SPAM_RESET_FIELDS)`` yourself, or call
    :func:`optaxswap.request_reset`.

    Args:
      learning_rate: the learning rate (or schedule).
      b1: Adam's first-moment decay, in ``[0, 1)``.
      b2: Adam's second-moment decay, in ``(0, 1)``.
      eps: Adam's epsilon, ``>= 0``.
      interval: updates between two momentum resets, ``>= 1``.
      warmup: length of the warm-up after each reset, ``>= 0`` (``0``: none).
      threshold: the clipping threshold ``theta``, ``> 0``; ``None`` turns
        clipping off.
      clip_delay: updates after a reset before clipping starts, ``>= 0``.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with a
      :class:`ResettableState` around a chain of a :class:`ScaleBySpamState`
      and the learning-rate scaling.

    Raises:
      TypeError: if an argument has the wrong type.
      ValueError: if an argument is out of range.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optax
      >>> import optaxswap as osw
      >>> from optaxswap import recipes
      >>> tx = recipes.spam(1e-2, interval=4, warmup=2)
      >>> params = jnp.array([1.0, -2.0])
      >>> state = tx.init(params)
      >>> for _ in range(10):
      ...     updates, state = tx.update(params, state, params)
      ...     params = optax.apply_updates(params, updates)
      >>> adam_state = state.inner_state[0].adam  # count kept, moments reset
      >>> int(osw.reset_count(state)), int(adam_state.count)
      (2, 10)

    References:
      Huang et al., `SPAM: Spike-Aware Adam with Momentum Reset for Stable LLM
      Training <https://arxiv.org/abs/2501.06842>`_, ICLR 2025.
    """
    learning_rate = _validation.check_learning_rate(learning_rate)
    b1, b2, eps = _validation.check_decays(b1, b2, eps)
    interval = _validation.check_int("interval", interval, minimum=1)
    warmup = _validation.check_int("warmup", warmup, minimum=0)
    if threshold is not None:
        threshold = _validation.check_real(
            "threshold", threshold, low=0.0, low_open=True
        )
    clip_delay = _validation.check_int("clip_delay", clip_delay, minimum=0)
    inner = optax.chain(
        _scale_by_spam(b1, b2, eps, threshold, warmup, clip_delay),
        optax.scale_by_learning_rate(learning_rate),
    )
    return _resettable.resettable(
        inner, _triggers.every(interval), fields=SPAM_RESET_FIELDS
    )


def adam_rel(
    learning_rate: optax.ScalarOrSchedule = 1e-3,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    *,
    trigger: _triggers.Trigger | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Adam-Rel: Adam whose step count restarts at each trigger.

    Adam with "relative" time steps: when ``trigger`` fires, Adam's ``count``
    returns to zero while ``mu`` and ``nu`` carry on, so the bias correction
    ``1 / (1 - b**t)`` restarts with ``t`` counted from the last trigger and
    the update magnitude right after a change of objective (a new target
    network, a new batch of rollouts) stays bounded, without forgetting the
    moments as a full reset would. In symbols, with ``t`` updates since the
    last trigger (``t = 1`` on the firing update)::

      m = b1 * m + (1 - b1) * g;  v = b2 * v + (1 - b2) * g**2
      update = -learning_rate * (m / (1 - b1**t)) / (sqrt(v / (1 - b2**t)) + eps)

    Only the Adam scaling is reset: a learning-rate schedule keeps its own
    step count.

    Args:
      learning_rate: the learning rate (or schedule).
      b1: Adam's first-moment decay, in ``[0, 1)``.
      b2: Adam's second-moment decay, in ``(0, 1)``.
      eps: Adam's epsilon, ``>= 0``.
      trigger: when to restart the count. ``None``: on each update called
        with ``target_synced=True`` (pass it on the update after each target
        sync, or on the first update of each new batch of rollouts in PPO);
        ``osw.every(n)`` restarts every ``n`` updates.

    Returns:
      An ``optax.GradientTransformationExtraArgs``: a chain of a
      ``resettable(optax.scale_by_adam(...), trigger, fields=("count",))``
      and the learning-rate scaling.

    Raises:
      TypeError: if an argument has the wrong type.
      ValueError: if an argument is out of range.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optax
      >>> import optaxswap as osw
      >>> from optaxswap import recipes
      >>> tx = recipes.adam_rel(1e-3)
      >>> params = jnp.array([1.0, -2.0])
      >>> state = tx.init(params)
      >>> for synced in [False, False, True, False]:
      ...     updates, state = tx.update(params, state, params,
      ...                                target_synced=synced)
      >>> int(state[0].inner_state.count)  # updates since the last sync
      2

    References:
      Ellis et al., `Adam on Local Time: Addressing Nonstationarity in RL with
      Relative Adam Timesteps <https://arxiv.org/abs/2412.17113>`_, NeurIPS
      2024.
    """
    learning_rate = _validation.check_learning_rate(learning_rate)
    b1, b2, eps = _validation.check_decays(b1, b2, eps)
    return optax.chain(
        _resettable.resettable(
            optax.scale_by_adam(b1=b1, b2=b2, eps=eps),
            _or_target_synced(trigger),
            fields=("count",),
        ),
        optax.scale_by_learning_rate(learning_rate),
    )


def target_sync_reset(
    inner: optax.GradientTransformation,
    trigger: _triggers.Trigger | None = None,
) -> optax.GradientTransformationExtraArgs:
    """Resets ``inner``'s whole state each time the target network syncs.

    Asadi et al. (2023) found that in value-based deep RL (DQN, Rainbow) the
    optimizer's moments, fitted to the previous target, mislead the first
    updates towards the new one, and that re-initializing Adam's state at each
    target-network update recovers much of the lost performance. This is
    ``resettable(inner, trigger)`` with the loop's sync as default trigger.

    Args:
      inner: the optimizer, e.g. ``optax.adam(1e-4)``.
      trigger: when to reset. ``None``: on each update called with
        ``target_synced=True`` (the first update after each target sync).
        With a sync every ``n`` updates, ``osw.every(n)`` is equivalent.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with a
      :class:`ResettableState`.

    Raises:
      TypeError: if ``inner`` is not a transform or ``trigger`` not a Trigger.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optax
      >>> import optaxswap as osw
      >>> from optaxswap import recipes
      >>> tx = recipes.target_sync_reset(optax.adam(1e-3))
      >>> params = jnp.array([1.0, -2.0])
      >>> state = tx.init(params)
      >>> for step in range(6):
      ...     updates, state = tx.update(params, state, params,
      ...                                target_synced=step % 3 == 0)
      >>> int(osw.reset_count(state))  # steps 0 and 3
      2

    References:
      Asadi et al., `Resetting the Optimizer in Deep RL: An Empirical Study
      <https://arxiv.org/abs/2306.17833>`_, NeurIPS 2023.
    """
    return _resettable.resettable(inner, _or_target_synced(trigger))

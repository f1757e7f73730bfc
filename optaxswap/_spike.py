"""The loss-spike trigger: fire when a metric jumps above its recent mean."""

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import optax

from optaxswap import _observing
from optaxswap import _triggers
from optaxswap import _validation


@dataclasses.dataclass(frozen=True)
class SpikeConfig:
    """Hyper-parameters of :func:`on_spike`, kept as static state metadata."""

    factor: float
    window: int
    warmup: int


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class SpikeState(_observing.ObservingState):
    """State of :func:`on_spike`.

    Attributes:
      recent: float32 ``[window]``, a ring buffer of the last recorded values
        (zeros where nothing was recorded yet).
      num_recorded: int32, values recorded so far (saturating); the next one
        goes to ``recent[num_recorded % window]``.
      pending: bool, a spike was observed since the last update; the next
        update fires.
      config: the trigger's hyper-parameters (static metadata, not a leaf).
    """

    recent: jax.Array
    num_recorded: jax.Array
    pending: jax.Array
    config: SpikeConfig = dataclasses.field(metadata=dict(static=True))

    def observe(self, value: jax.Array) -> "SpikeState":
        config = self.config
        num_in_window = jnp.minimum(self.num_recorded, config.window)
        mean = jnp.sum(self.recent) / jnp.maximum(num_in_window, 1).astype(jnp.float32)
        finite = jnp.isfinite(value)
        # The margin is written against |mean| so that the rule stays "well
        # above the recent level" for a negative metric too; for a positive
        # mean it is exactly value > factor * mean.
        above = value > mean + (config.factor - 1.0) * jnp.abs(mean)
        warmed_up = self.num_recorded >= config.warmup
        spike = warmed_up & (above | ~finite)
        # A non-finite value is never recorded: it would poison the mean for
        # the whole window. Spikes themselves are recorded, so that a lasting
        # change of level stops firing once it fills the window.
        slot = self.num_recorded % config.window
        recent = jnp.where(finite, self.recent.at[slot].set(value), self.recent)
        return dataclasses.replace(
            self,
            recent=recent,
            num_recorded=jnp.where(
                finite, optax.safe_increment(self.num_recorded), self.num_recorded
            ),
            pending=self.pending | spike,
        )


def on_spike(
    *,
    factor: float = 2.0,
    window: int = 100,
    warmup: int | None = None,
    axis_name: Any = None,
) -> _triggers.Trigger:
    """Fires when a metric value jumps above ``factor`` times its recent mean.

    Values come from the ``value=`` extra argument of ``update`` (an update
    without it observes nothing) and from :func:`optaxswap.observe`, like
    :func:`on_plateau`'s. A value ``v`` is a spike iff at least ``warmup``
    values were recorded before it and ``v > mean + (factor - 1) * |mean|``
    (that is ``v > factor * mean`` for a positive mean, as a loss has), where
    ``mean`` is the mean of the last ``min(window, recorded)`` recorded values,
    taken before ``v`` joins them. A non-finite value (a NaN or infinite loss)
    is a spike once warmed up.

    Every finite value is recorded, spikes included, so the spike raises the
    mean that the next values are compared with, and a lasting change of level
    stops firing once it fills the window; a non-finite value is never
    recorded. A spike observed by :func:`optaxswap.observe` fires on the next
    update, one given with ``value=`` on that same update; several spikes
    between two updates fire once.

    Use it to reset an optimizer on a loss spike,
    ``resettable(optax.adam(1e-3), on_spike(factor=3.0))``, alone or in
    :func:`any_of` with a schedule.

    Args:
      factor: how far above the mean a spike is, a finite number ``>= 1``.
      window: how many recent values the mean covers, ``>= 1``.
      warmup: values recorded before anything can fire, ``>= 1``; defaults to
        ``window``.
      axis_name: under ``pmap``/``shard_map``, the axis over which each
        ``value=`` is averaged first, so every replica decides alike.

    Returns:
      A :class:`Trigger` with a :class:`SpikeState`.

    Raises:
      TypeError: if an argument has the wrong type.
      ValueError: if an argument is out of range.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxswap as osw
      >>> trigger = osw.on_spike(factor=2.0, window=3)
      >>> state = trigger.init(None)
      >>> fired = []
      >>> for t, loss in enumerate([1.0, 1.2, 0.8, 0.9, 2.5, 1.0]):
      ...     context = osw.TriggerContext(jnp.int32(t), None, None,
      ...                                  {"value": loss})
      ...     fire, state = trigger.update(state, context)
      ...     fired.append(bool(fire))
      >>> fired
      [False, False, False, False, True, False]
    """
    factor = _validation.check_real("factor", factor, low=1.0)
    window = _validation.check_int("window", window, minimum=1)
    warmup = (
        window if warmup is None else _validation.check_int("warmup", warmup, minimum=1)
    )
    config = SpikeConfig(factor=factor, window=window, warmup=warmup)

    def init_fn(params: optax.Params) -> SpikeState:
        del params
        return SpikeState(
            recent=jnp.zeros(window, jnp.float32),
            num_recorded=jnp.zeros((), jnp.int32),
            pending=jnp.zeros((), jnp.bool_),
            config=config,
        )

    return _observing.observing_trigger(init_fn, axis_name)

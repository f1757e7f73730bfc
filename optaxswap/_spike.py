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
    metric_arg: str | None


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class SpikeState(_observing.ObservingState):
    """State of :func:`on_spike`.

    Attributes:
      recent: ``[window]``, a ring buffer of the last recorded values (zeros
        where nothing was recorded yet); float32, or float64 with
        ``jax_enable_x64``.
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
        value = value.astype(self.recent.dtype)
        mean = self.mean()
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

    def mean(self) -> jax.Array:
        """The mean of the recorded values in the window (0 before any)."""
        return running_mean(self.recent, self.num_recorded)


def running_mean(recent: jax.Array, num_recorded: jax.Array) -> jax.Array:
    """The mean of a spike trigger's window (0 before any value is recorded).

    Computed from the arrays alone (the window is ``recent``'s last axis), so
    it also reads a state whose static config was dropped, or a batch of them.
    """
    num_in_window = jnp.minimum(num_recorded, recent.shape[-1])
    return jnp.sum(recent, axis=-1) / jnp.maximum(num_in_window, 1).astype(recent.dtype)


def on_spike(
    *,
    factor: float = 2.0,
    window: int = 100,
    warmup: int | None = None,
    axis_name: Any = None,
    metric_arg: str | None = "value",
) -> _triggers.Trigger:
    """Fires when a metric value jumps above ``factor`` times its recent mean.

    Values come from the extra argument of ``update`` named ``metric_arg``
    (``value=`` by default; an update without it observes nothing) and from
    :func:`optaxswap.observe`, like :func:`on_plateau`'s. A value ``v`` is a
    spike iff at least ``warmup`` values were recorded before it and
    ``v > mean + (factor - 1) * |mean|`` (that is ``v > factor * mean`` for a
    positive mean, as a loss has), where ``mean`` is the mean of the last
    ``min(window, recorded)`` recorded values, taken before ``v`` joins them.
    A non-finite value (a NaN or infinite loss) is a spike once warmed up.

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
        value given to ``update`` is averaged first, so every replica decides
        alike.
      metric_arg: the keyword of ``update`` that carries the metric, as in
        :func:`on_plateau`: a name other than ``"value"`` is not forwarded to
        the inner transforms; ``None`` reads no keyword.

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
    config = SpikeConfig(
        factor=factor,
        window=window,
        warmup=warmup,
        metric_arg=_validation.check_metric_arg(metric_arg),
    )

    def init_fn(params: optax.Params) -> SpikeState:
        del params
        return SpikeState(
            recent=jnp.zeros(window, _observing.metric_dtype()),
            num_recorded=jnp.zeros((), jnp.int32),
            pending=jnp.zeros((), jnp.bool_),
            config=config,
        )

    return _observing.observing_trigger(
        init_fn, metric_arg=config.metric_arg, axis_name=axis_name
    )

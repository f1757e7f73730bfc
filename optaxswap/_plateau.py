"""The plateau trigger: fire when a metric stops improving."""

import dataclasses
from typing import Any, Literal

import jax
import jax.numpy as jnp
import optax

from optaxswap import _observing
from optaxswap import _triggers
from optaxswap import _validation


@dataclasses.dataclass(frozen=True)
class PlateauConfig:
    """Hyper-parameters of :func:`on_plateau`, kept as static state metadata."""

    patience: int
    cooldown: int
    rtol: float
    atol: float
    mode: Literal["min", "max"]
    accumulation_size: int
    metric_arg: str | None


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class PlateauState(_observing.ObservingState):
    """State of :func:`on_plateau`.

    Attributes:
      best: the best observation so far (``+inf`` in ``"min"`` mode and
        ``-inf`` in ``"max"`` mode until the first finite one); float32, or
        float64 with ``jax_enable_x64``, like ``accumulated``.
      bad_count: int32, observations since the last improvement.
      cooldown_count: int32, observations left in the running cooldown.
      pending: bool, the bad count reached ``patience`` since the last update;
        the next update fires.
      accumulated: sum of the values of the observation in progress.
      num_accumulated: int32, how many values it holds so far.
      config: the trigger's hyper-parameters (static metadata, not a leaf).
    """

    best: jax.Array
    bad_count: jax.Array
    cooldown_count: jax.Array
    pending: jax.Array
    accumulated: jax.Array
    num_accumulated: jax.Array
    config: PlateauConfig = dataclasses.field(metadata=dict(static=True))

    def observe(self, value: jax.Array) -> "PlateauState":
        config = self.config
        accumulated = self.accumulated + value.astype(self.accumulated.dtype)
        num_accumulated = self.num_accumulated + 1
        complete = num_accumulated >= config.accumulation_size
        judged = dataclasses.replace(
            self._judge(accumulated / config.accumulation_size),
            accumulated=jnp.zeros_like(accumulated),
            num_accumulated=jnp.zeros_like(num_accumulated),
        )
        waiting = dataclasses.replace(
            self, accumulated=accumulated, num_accumulated=num_accumulated
        )
        return judged._select(complete, waiting)

    def _judge(self, observation: jax.Array) -> "PlateauState":
        """The state after one complete observation."""
        config = self.config
        margin = config.rtol * jnp.abs(self.best) + config.atol
        if config.mode == "min":
            beats_best = observation < self.best - margin
        else:
            beats_best = observation > self.best + margin
        # best starts infinite, where the margin is nan: the first finite
        # observation improves by definition.
        improved = jnp.isfinite(observation) & (jnp.isinf(self.best) | beats_best)
        in_cooldown = self.cooldown_count > 0
        bad_count = jnp.where(
            in_cooldown | improved, 0, optax.safe_increment(self.bad_count)
        )
        reached = bad_count >= config.patience
        return dataclasses.replace(
            self,
            best=jnp.where(improved, observation, self.best),
            bad_count=jnp.where(reached, 0, bad_count),
            cooldown_count=jnp.where(
                reached,
                config.cooldown,
                jnp.where(in_cooldown, self.cooldown_count - 1, 0),
            ),
            pending=self.pending | reached,
        )

    def _select(self, take: jax.Array, otherwise: "PlateauState") -> "PlateauState":
        """``self`` where ``take`` else ``otherwise``, with fixed dtypes."""
        return jax.tree.map(
            lambda new, old: jnp.where(take, new, old).astype(old.dtype),
            self,
            otherwise,
        )


def on_plateau(
    *,
    patience: int = 10,
    cooldown: int = 0,
    rtol: float = 1e-4,
    atol: float = 0.0,
    mode: Literal["min", "max"] = "min",
    accumulation_size: int = 1,
    axis_name: Any = None,
    metric_arg: str | None = "value",
) -> _triggers.Trigger:
    """Fires when a metric has not improved for ``patience`` observations.

    Values come from the extra argument of ``update`` named ``metric_arg``
    (``value=`` by default; an update without it observes nothing) and from
    :func:`optaxswap.observe`. An observation is the mean of
    ``accumulation_size`` consecutive values. Comparisons are made in the
    metric's precision: float32, or float64 with ``jax_enable_x64``.

    In ``"min"`` mode an observation ``v`` improves on ``best`` iff
    ``v < best - (rtol * |best| + atol)`` (``"max"``: iff
    ``v > best + (rtol * |best| + atol)``), which is correct for negative
    metrics too. A non-finite observation never improves. An improvement sets
    ``best`` and zeroes the bad count; any other observation adds one. While a
    cooldown runs, each observation decrements it instead and the bad count
    stays at zero. When the bad count reaches ``patience`` the trigger fires on
    the next update (on this update if the value came with it), the bad count
    returns to zero and the cooldown restarts. ``best`` is kept across fires,
    as in Keras and PyTorch. Several plateaus reached between two updates fire
    once.

    Args:
      patience: bad observations before firing, ``>= 1``.
      cooldown: observations ignored after a fire, ``>= 0``.
      rtol: relative improvement threshold, ``>= 0``.
      atol: absolute improvement threshold, ``>= 0``.
      mode: ``"min"`` (a loss) or ``"max"`` (an accuracy).
      accumulation_size: values averaged into one observation, ``>= 1``; use
        more than one to smooth a per-step training loss.
      axis_name: under ``pmap``/``shard_map``, the axis over which each
        value given to ``update`` is averaged first, so every replica decides
        alike.
      metric_arg: the keyword of ``update`` that carries the metric. A name
        other than ``"value"`` is the trigger's own: a combinator does not
        forward it to its inner transforms, while ``value=`` (the training
        loss that ``optax.lbfgs`` or ``optax.polyak_sgd`` read) always is.
        ``None`` reads no keyword: only :func:`optaxswap.observe` feeds it.

    Returns:
      A :class:`Trigger` with a :class:`PlateauState`.

    Raises:
      TypeError: if an argument has the wrong type.
      ValueError: if an argument is out of range.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxswap as osw
      >>> trigger = osw.on_plateau(patience=2)
      >>> state = trigger.init(None)
      >>> fired = []
      >>> for t, loss in enumerate([3.0, 2.0, 2.5, 2.1, 1.0]):
      ...     context = osw.TriggerContext(jnp.int32(t), None, None,
      ...                                  {"value": loss})
      ...     fire, state = trigger.update(state, context)
      ...     fired.append(bool(fire))
      >>> fired
      [False, False, False, True, False]
    """
    config = PlateauConfig(
        patience=_validation.check_int("patience", patience, minimum=1),
        cooldown=_validation.check_int("cooldown", cooldown, minimum=0),
        rtol=_validation.check_real("rtol", rtol, low=0.0),
        atol=_validation.check_real("atol", atol, low=0.0),
        mode=_validation.check_choice("mode", mode, ("min", "max")),
        accumulation_size=_validation.check_int(
            "accumulation_size", accumulation_size, minimum=1
        ),
        metric_arg=_validation.check_metric_arg(metric_arg),
    )
    worst = jnp.inf if config.mode == "min" else -jnp.inf

    def init_fn(params: optax.Params) -> PlateauState:
        del params
        dtype = _observing.metric_dtype()
        return PlateauState(
            best=jnp.full((), worst, dtype),
            bad_count=jnp.zeros((), jnp.int32),
            cooldown_count=jnp.zeros((), jnp.int32),
            pending=jnp.zeros((), jnp.bool_),
            accumulated=jnp.zeros((), dtype),
            num_accumulated=jnp.zeros((), jnp.int32),
            config=config,
        )

    return _observing.observing_trigger(
        init_fn, metric_arg=config.metric_arg, axis_name=axis_name
    )

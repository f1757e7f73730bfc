"""Training one strategy: one jitted train step, compiled once, counted."""

from collections.abc import Callable, Iterator
import contextlib
import dataclasses
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import optaxswap as osw
from optaxswap import _observing
from optaxswap import _state_tree
from optaxswap._demo import _data
from optaxswap._demo import _model
from optaxswap._demo import _strategies

_BACKEND_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"

# Shared by all strategies: the params have one structure, so each split's
# evaluation compiles once per run rather than once per strategy.
evaluate = jax.jit(_model.loss_and_accuracy)


@dataclasses.dataclass
class Compilations:
    """XLA compilations of one jitted function, as JAX reports them."""

    count: int = 0
    seconds: float = 0.0


@contextlib.contextmanager
def count_compilations(function_name: str) -> Iterator[Compilations]:
    """Counts the backend compilations of ``jit(function_name)`` in the block.

    Counted from JAX's own compile events (``jax.monitoring``), so a retrace
    or recompile of the train step shows up here, whatever caused it.

    Args:
      function_name: the ``__name__`` of the jitted Python function.

    Yields:
      A :class:`Compilations` that fills in while the block runs.

    Examples:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> def double(x):
      ...     return 2 * x
      >>> jitted = jax.jit(double)
      >>> with count_compilations("double") as compilations:
      ...     _ = jitted(jnp.ones(2)), jitted(jnp.ones(2)), jitted(jnp.ones(3))
      >>> compilations.count  # the new shape compiled again
      2
    """
    compilations = Compilations()
    wanted = f"jit({function_name})"

    def listener(event: str, duration: float, **metadata: Any) -> None:
        if event == _BACKEND_COMPILE_EVENT and metadata.get("fun_name") == wanted:
            compilations.count += 1
            compilations.seconds += duration

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield compilations
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


@dataclasses.dataclass
class StrategyResult:
    """What one strategy's run produced: the table row and the curves."""

    name: str
    summary: str
    final: dict[str, float]
    event_kind: str
    event_steps: list[int]
    wall_seconds: float
    compilations: int
    compile_seconds: float
    curves: dict[str, list[float]]
    state_summary: dict[str, float | int | bool]


ProgressFn = Callable[[int, str], None]


def phase_label(strategy: _strategies.Strategy, event_count: int) -> str:
    """What the progress bar says about the strategy's current phase.

    Examples:
      >>> plateau = _strategies.STRATEGIES["switch_on_plateau"]
      >>> phase_label(plateau, 0), phase_label(plateau, 1)
      ('phase 0: adam', 'phase 1: sgd')
      >>> phase_label(_strategies.STRATEGIES["resettable"], 2)
      'adam, 2 resets'
    """
    if strategy.events == "switches":
        return f"phase {event_count}: {strategy.phases[event_count]}"
    if strategy.events == "resets":
        return f"{strategy.phases[0]}, {event_count} resets"
    return strategy.phases[0]


def _event_count(strategy: _strategies.Strategy, opt_state: Any) -> jax.Array:
    if strategy.events == "switches":
        return osw.phase(opt_state)
    if strategy.events == "resets":
        return osw.reset_count(opt_state)
    return jnp.zeros((), jnp.int32)


def train_strategy(
    strategy: _strategies.Strategy,
    config: _strategies.DemoConfig,
    digits: _data.Digits,
    order: np.ndarray,
    init_params: _model.Params,
    on_progress: ProgressFn,
) -> StrategyResult:
    """Trains the MLP with one strategy and evaluates it along the way.

    Every ``config.eval_every`` steps the model is evaluated on the train and
    validation splits; the validation loss goes to :func:`optaxswap.observe`,
    which feeds the plateau rule of ``switch_on_plateau`` (in a state that has
    one).

    Args:
      strategy: the strategy to run.
      config: the settings shared by all strategies.
      digits: the three splits.
      order: the minibatch indices of every step, ``(steps, batch_size)``.
      init_params: the initial model, the same for every strategy.
      on_progress: called after each evaluation with the number of steps
        done and the current phase's label.

    Returns:
      The final metrics, the steps at which it switched or reset, its wall
      time, the compilations of its train step, its curves and the
      :func:`optaxswap.summary` of its final optimizer state.
    """
    tx = strategy.build(config)
    train_x, train_y = jnp.asarray(digits.train.x), jnp.asarray(digits.train.y)
    validation_x = jnp.asarray(digits.validation.x)
    validation_y = jnp.asarray(digits.validation.y)

    def train_step(params, opt_state, train_x, train_y, indices):
        def batch_loss(params):
            return _model.loss_and_accuracy(params, train_x[indices], train_y[indices])

        grads, _ = jax.grad(batch_loss, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return params, opt_state, _event_count(strategy, opt_state)

    step = jax.jit(train_step)
    observe = jax.jit(osw.observe)

    curves: dict[str, list[float]] = {
        "step": [],
        "train_loss": [],
        "train_accuracy": [],
        "validation_loss": [],
        "validation_accuracy": [],
    }

    def record(step_number: int, params: _model.Params) -> jax.Array:
        train = evaluate(params, train_x, train_y)
        validation = evaluate(params, validation_x, validation_y)
        curves["step"].append(step_number)
        for key, value in zip(
            ("train_loss", "train_accuracy", "validation_loss", "validation_accuracy"),
            (*train, *validation),
        ):
            curves[key].append(float(value))
        return validation[0]

    start = time.perf_counter()
    with count_compilations("train_step") as compilations:
        params = init_params
        opt_state = tx.init(params)
        # osw.observe refuses a state with no plateau trigger to feed.
        watches_metric = bool(_state_tree.find(opt_state, _observing.ObservingState))
        record(0, params)
        on_progress(0, phase_label(strategy, 0))
        event_counts = []
        pending = []
        for t in range(config.steps):
            params, opt_state, event_count = step(
                params, opt_state, train_x, train_y, order[t]
            )
            pending.append(event_count)
            if (t + 1) % config.eval_every == 0 or t + 1 == config.steps:
                event_counts.extend(int(count) for count in jax.device_get(pending))
                pending = []
                validation_loss = record(t + 1, params)
                if watches_metric:
                    opt_state = observe(opt_state, validation_loss)
                on_progress(t + 1, phase_label(strategy, event_counts[-1]))
        test = evaluate(params, jnp.asarray(digits.test.x), jnp.asarray(digits.test.y))
        jax.block_until_ready(test)
    wall_seconds = time.perf_counter() - start

    # Update t (0-based) is the first one of a fresh phase or state when the
    # count it leaves behind is higher than the one before it.
    before = [0, *event_counts[:-1]]
    event_steps = [
        t for t, (old, new) in enumerate(zip(before, event_counts)) if new > old
    ]
    final = {
        "train_loss": curves["train_loss"][-1],
        "train_accuracy": curves["train_accuracy"][-1],
        "validation_loss": curves["validation_loss"][-1],
        "validation_accuracy": curves["validation_accuracy"][-1],
        "test_loss": float(test[0]),
        "test_accuracy": float(test[1]),
    }
    return StrategyResult(
        name=strategy.name,
        summary=strategy.summary(config),
        final=final,
        event_kind=strategy.events,
        event_steps=event_steps,
        wall_seconds=wall_seconds,
        compilations=compilations.count,
        compile_seconds=compilations.seconds,
        curves=curves,
        state_summary={
            key: value.item()
            for key, value in jax.device_get(osw.summary(opt_state)).items()
        },
    )

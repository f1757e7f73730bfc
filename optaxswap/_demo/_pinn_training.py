"""Training the physics-informed network: Adam, then L-BFGS, inside one step.

Three optaxswap strategies share one loop and one jitted train step each; the
``rejit`` baseline runs the same plan as ``switch_at`` the way it is done
without optaxswap: at the switch it creates a fresh ``optax.lbfgs()`` state
and jits a new train step, in the same process, so the two can be timed side
by side.
"""

from collections.abc import Callable
import dataclasses
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

import optaxswap as osw
from optaxswap._demo import _model
from optaxswap._demo import _pinn_problem
from optaxswap._demo import _training

PINN_DEFAULT_STEPS = 1500
PINN_QUICK_STEPS = 800


@dataclasses.dataclass(frozen=True)
class PinnConfig:
    """Everything that defines one PINN run; the same for every strategy.

    Attributes:
      steps: train steps (optimizer updates) per strategy.
      seed: fixes the initial network.
      collocation_points: interior points where the residual is trained.
      hidden: widths of the network's hidden layers.
      adam_learning_rate: Adam's learning rate (alone and as first phase).
      eval_every: steps between two evaluations (curve points, progress).
      plateau_window: consecutive training losses averaged into one
        observation of the plateau rule (``accumulation_size``).
      plateau_patience: observations without improvement before switching.
      plateau_rtol: the relative improvement an observation must make to
        count as one: Adam still improving, but by less than this per window,
        is a plateau.
      grid_points: the fine grid of the validation residual, the error
        against the exact solution and the plot.
    """

    steps: int = PINN_DEFAULT_STEPS
    seed: int = 0
    collocation_points: int = 128
    hidden: tuple[int, ...] = (32, 32)
    adam_learning_rate: float = 1e-2
    eval_every: int = 50
    plateau_window: int = 50
    plateau_patience: int = 2
    plateau_rtol: float = 0.1
    grid_points: int = 1001

    @property
    def switch_step(self) -> int:
        """The update at which ``switch_at`` (and ``rejit``) start L-BFGS."""
        return max(1, self.steps // 2)


class PinnStrategy(NamedTuple):
    """One way to run the optimizer on the PINN.

    Attributes:
      name: the name used by ``--strategies``, the table and the JSON.
      summary: one line saying what it does with this config.
      phases: the optimizer's name in each phase.
      build: the optax transformation for a config; ``None`` for the
        ``rejit`` baseline, which builds its optimizers in its loop.
    """

    name: str
    summary: Callable[[PinnConfig], str]
    phases: tuple[str, ...]
    build: Callable[[PinnConfig], optax.GradientTransformation] | None


def _adam(config: PinnConfig) -> optax.GradientTransformation:
    return optax.adam(config.adam_learning_rate)


def _adam_then_lbfgs_on_plateau(config: PinnConfig) -> optax.GradientTransformation:
    # L-BFGS needs the training loss as `value=` on every update, and today's
    # plateau trigger reads `value=` too: so it watches the training loss,
    # averaged over `plateau_window` updates. (With a trigger that takes
    # `metric_arg=None`, it could watch the validation residual fed by
    # `osw.observe` instead.)
    return osw.switch_on_plateau(
        [_adam(config), optax.lbfgs()],
        patience=config.plateau_patience,
        rtol=config.plateau_rtol,
        accumulation_size=config.plateau_window,
    )


PINN_STRATEGIES: dict[str, PinnStrategy] = {
    strategy.name: strategy
    for strategy in (
        PinnStrategy(
            "adam",
            lambda c: f"Adam(lr={c.adam_learning_rate:g}) throughout",
            ("adam",),
            _adam,
        ),
        PinnStrategy(
            "switch_at",
            lambda c: f"Adam, then L-BFGS from update {c.switch_step} (switch_at)",
            ("adam", "lbfgs"),
            lambda c: osw.switch_at([_adam(c), optax.lbfgs()], [c.switch_step]),
        ),
        PinnStrategy(
            "switch_on_plateau",
            lambda c: (
                f"Adam, then L-BFGS once the mean loss of {c.plateau_window}"
                f" updates has improved by less than {c.plateau_rtol:.0%}"
                f" {c.plateau_patience} times (switch_on_plateau)"
            ),
            ("adam", "lbfgs"),
            _adam_then_lbfgs_on_plateau,
        ),
        PinnStrategy(
            "rejit",
            lambda c: (
                f"switch_at's plan without optaxswap: at update {c.switch_step}"
                " a fresh optax.lbfgs() and a newly jitted step"
            ),
            ("adam", "lbfgs"),
            None,
        ),
    )
}


class PinnData(NamedTuple):
    """The points every strategy trains and is measured on (float32, 1D)."""

    collocation: jax.Array
    grid: jax.Array


def make_data(config: PinnConfig) -> PinnData:
    """The collocation points and the fine evaluation grid of ``config``.

    Examples:
      >>> data = make_data(PinnConfig(collocation_points=8, grid_points=11))
      >>> data.collocation.shape, data.grid.shape, float(data.grid[-1])
      ((8,), (11,), 1.0)
    """
    return PinnData(
        collocation=_pinn_problem.collocation_points(config.collocation_points),
        grid=jnp.linspace(0.0, 1.0, config.grid_points, dtype=jnp.float32),
    )


def init_network(config: PinnConfig) -> _model.Params:
    """The initial network ``1 -> hidden... -> 1``, the same for every strategy.

    Examples:
      >>> params = init_network(PinnConfig(hidden=(4,)))
      >>> sorted((name, p.shape) for name, p in params.items())
      [('b0', (4,)), ('b1', (1,)), ('w0', (1, 4)), ('w1', (4, 1))]
    """
    return _model.init_mlp(jax.random.key(config.seed), (1, *config.hidden, 1))


@jax.jit
def evaluate(params: _model.Params, data: PinnData) -> dict[str, jax.Array]:
    """The training residual, the residual on the fine grid, the L2 error.

    Shared by all strategies, so it compiles once per run.
    """
    return {
        "train_residual": _pinn_problem.residual_loss(params, data.collocation),
        "validation_residual": _pinn_problem.residual_loss(params, data.grid),
        "l2_error": _pinn_problem.relative_l2_error(params, data.grid),
    }


@dataclasses.dataclass
class PinnResult:
    """What one strategy's run produced: the table row, curves and solution.

    ``compile_seconds_mid_run`` is the compile time spent after the first
    update, i.e. while training stood still (``rejit``'s new L-BFGS step).
    ``curves["update_loss"]`` holds the training loss each update saw (the
    one given as ``value=``), the others one value per evaluation.
    """

    name: str
    summary: str
    final: dict[str, float]
    switch_steps: list[int]
    wall_seconds: float
    compilations: int
    compile_seconds: float
    compile_seconds_mid_run: float
    curves: dict[str, list[float]]
    solution: list[float]


ProgressFn = Callable[[int, str], None]


def _jitted_train_step(
    tx: optax.GradientTransformation,
    loss: Callable[[_model.Params], jax.Array],
    *,
    has_line_search: bool,
    phase_of: Callable[[Any], jax.Array],
) -> Callable[..., Any]:
    """``jit(train_step)``: one update, given what L-BFGS needs.

    Every transform gets ``value=``, ``grad=`` and ``value_fn=``, which L-BFGS
    requires and Adam ignores. Where the state holds L-BFGS's line search,
    ``optax.value_and_grad_from_state`` reuses the value and gradient it
    computed at the accepted point rather than computing them again.
    """
    tx = optax.with_extra_args_support(tx)
    if has_line_search:
        value_and_grad = optax.value_and_grad_from_state(loss)
    else:

        def value_and_grad(params, state):
            del state
            return jax.value_and_grad(loss)(params)

    def train_step(params, opt_state):
        value, grad = value_and_grad(params, state=opt_state)
        updates, opt_state = tx.update(
            grad, opt_state, params, value=value, grad=grad, value_fn=loss
        )
        params = optax.apply_updates(params, updates)
        return params, opt_state, value, phase_of(opt_state)

    return jax.jit(train_step)


def _constant_phase(phase: int) -> Callable[[Any], jax.Array]:
    return lambda opt_state: jnp.int32(phase)


def _phase_label(strategy: PinnStrategy, phase: int) -> str:
    if len(strategy.phases) == 1:
        return strategy.phases[0]
    return f"phase {phase}: {strategy.phases[phase]}"


@jax.jit
def _solution_on(params: _model.Params, points: jax.Array) -> jax.Array:
    return jax.vmap(_pinn_problem.network_solution, in_axes=(None, 0))(params, points)


SOLUTION_STRIDE = 5
"""The solution is saved on every 5th point of the fine grid (for the plot)."""


def train_pinn_strategy(
    strategy: PinnStrategy,
    config: PinnConfig,
    data: PinnData,
    init_params: _model.Params,
    on_progress: ProgressFn,
) -> PinnResult:
    """Trains the network with one strategy and evaluates it along the way.

    Args:
      strategy: the strategy to run.
      config: the settings shared by all strategies.
      data: the collocation points and the fine grid.
      init_params: the initial network, the same for every strategy.
      on_progress: called after each evaluation with the number of updates
        done and the current phase's label.

    Returns:
      The final residuals and error, the update at which it switched, its
      wall time, the compilations of its train step, its curves and its
      solution on the grid.
    """

    def loss(params: _model.Params) -> jax.Array:
        return _pinn_problem.residual_loss(params, data.collocation)

    if strategy.build is None:
        # The plan without optaxswap: Adam's own step now, L-BFGS's later.
        tx = optax.adam(config.adam_learning_rate)
        step = _jitted_train_step(
            tx, loss, has_line_search=False, phase_of=_constant_phase(0)
        )
    else:
        tx = strategy.build(config)
        step = _jitted_train_step(
            tx,
            loss,
            has_line_search="lbfgs" in strategy.phases,
            phase_of=osw.phase if len(strategy.phases) > 1 else _constant_phase(0),
        )

    curves: dict[str, list[float]] = {
        "step": [],
        "train_residual": [],
        "validation_residual": [],
        "l2_error": [],
        "update_loss": [],
    }

    def record(step_number: int, params: _model.Params) -> None:
        curves["step"].append(step_number)
        for key, value in evaluate(params, data).items():
            curves[key].append(float(value))

    start = time.perf_counter()
    with _training.count_compilations("train_step") as compilations:
        params = init_params
        opt_state = tx.init(params)
        record(0, params)
        on_progress(0, _phase_label(strategy, 0))
        phases: list[int] = []
        pending = []
        compile_seconds_at_start = 0.0
        for t in range(config.steps):
            if strategy.build is None and t == config.switch_step:
                lbfgs = optax.lbfgs()
                opt_state = lbfgs.init(params)
                step = _jitted_train_step(
                    lbfgs, loss, has_line_search=True, phase_of=_constant_phase(1)
                )
            params, opt_state, value, phase = step(params, opt_state)
            if t == 0:
                compile_seconds_at_start = compilations.seconds
            pending.append((value, phase))
            if (t + 1) % config.eval_every == 0 or t + 1 == config.steps:
                for value, phase in jax.device_get(pending):
                    curves["update_loss"].append(float(value))
                    phases.append(int(phase))
                pending = []
                record(t + 1, params)
                on_progress(t + 1, _phase_label(strategy, phases[-1]))
        solution = _solution_on(params, data.grid[::SOLUTION_STRIDE])
        jax.block_until_ready(solution)
    wall_seconds = time.perf_counter() - start

    # Update t (0-based) is the first one of L-BFGS when the phase it leaves
    # behind is higher than the one before it.
    before = [0, *phases[:-1]]
    switch_steps = [t for t, (old, new) in enumerate(zip(before, phases)) if new > old]
    final = {
        key: curves[key][-1]
        for key in ("train_residual", "validation_residual", "l2_error")
    }
    return PinnResult(
        name=strategy.name,
        summary=strategy.summary(config),
        final=final,
        switch_steps=switch_steps,
        wall_seconds=wall_seconds,
        compilations=compilations.count,
        compile_seconds=compilations.seconds,
        compile_seconds_mid_run=compilations.seconds - compile_seconds_at_start,
        curves=curves,
        solution=[float(u) for u in solution],
    )

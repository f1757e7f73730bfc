"""The PINN part of the demo: train every strategy, then print, plot and save."""

from collections.abc import Sequence
import dataclasses
import json
import pathlib
from typing import Any

import numpy as np

from optaxswap._demo import _pinn_problem
from optaxswap._demo import _pinn_training
from optaxswap._demo import _report
from optaxswap._demo import _run

PINN_PLOT_NAME = "pinn_curves.png"
PINN_RESULTS_NAME = "pinn_results.json"

_COLORS = {
    "adam": "#1f77b4",
    "switch_at": "#d62728",
    "switch_on_plateau": "#2ca02c",
    "rejit": "#ff7f0e",
}


def run_pinn_demo(
    config: _pinn_training.PinnConfig,
    strategy_names: Sequence[str],
    out: pathlib.Path,
) -> list[_pinn_training.PinnResult]:
    """Trains the PINN with each strategy in turn, shows progress, reports.

    Args:
      config: the settings every strategy shares.
      strategy_names: keys of :data:`PINN_STRATEGIES`, in the order to run.
      out: the folder that receives the PNG and the JSON (created if missing).

    Returns:
      One result per strategy, in order.
    """
    console = _run.demo_console()
    out.mkdir(parents=True, exist_ok=True)
    data = _pinn_training.make_data(config)
    init_params = _pinn_training.init_network(config)
    widths = "-".join(str(width) for width in (1, *config.hidden, 1))
    console.print(
        "PINN: -u'' = f on [0, 1], u(0) = u(1) = 0, exact solution"
        f" {_solution_formula()}; tanh MLP {widths};"
        f" {config.collocation_points} collocation points, full batch;"
        f" {config.steps} updates, evaluated every {config.eval_every}.",
        markup=False,
    )
    # Compiled before any strategy starts, so no strategy's time includes it.
    _pinn_training.evaluate(init_params, data)
    strategies = [_pinn_training.PINN_STRATEGIES[name] for name in strategy_names]
    results = _run.train_with_progress(
        console,
        strategies,
        config.steps,
        lambda strategy, on_progress: _pinn_training.train_pinn_strategy(
            strategy, config, data, init_params, on_progress
        ),
    )
    for table in results_tables(results):
        console.print(table)
    # rejit is the plan without optaxswap: it compiles Adam's step and
    # L-BFGS's, and the latter twice (optax.lbfgs's init state holds
    # weak-typed scalars that its first update makes strong).
    _run.print_summaries(console, results, exempt=("rejit",))
    plot_pinn(out / PINN_PLOT_NAME, config, results)
    write_pinn_json(
        out / PINN_RESULTS_NAME, config, results, _run.describe_environment()
    )
    console.print(
        f"Wrote {out / PINN_PLOT_NAME} and {out / PINN_RESULTS_NAME}", markup=False
    )
    return results


def _solution_formula() -> str:
    """The exact solution as text, e.g. ``sin(2 pi x) + 0.2 sin(8 pi x)``.

    Examples:
      >>> _solution_formula()
      'sin(pi x) + 0.2 sin(4 pi x)'
    """
    terms = [
        f"{'' if a == 1 else f'{a:g} '}sin({'' if k == 1 else f'{k:g} '}pi x)"
        for a, k in _pinn_problem.SOLUTION_MODES
    ]
    return " + ".join(terms)


def results_tables(results: Sequence[_pinn_training.PinnResult]) -> tuple[Any, Any]:
    """Two ``rich`` tables, one row per strategy: the accuracy, then the cost."""
    from rich import box
    from rich.table import Table

    def table(title: str) -> Table:
        new = Table(title=title, box=box.SIMPLE_HEAD, header_style="bold")
        new.add_column("strategy", style="bold", no_wrap=True)
        return new

    accuracy = table("PINN: final residual and error against the exact solution")
    accuracy.add_column("train\nresidual", justify="right")
    accuracy.add_column("validation\nresidual", justify="right")
    accuracy.add_column("relative\nL2 error", justify="right")
    cost = table("PINN: switch, time and compilations")
    cost.add_column("L-BFGS from\nupdate")
    cost.add_column("wall\ns", justify="right")
    cost.add_column("compile\ns", justify="right")
    cost.add_column("compile s\nmid-run", justify="right")
    cost.add_column("train-step\ncompilations", justify="right")
    for result in results:
        final = result.final
        accuracy.add_row(
            result.name,
            *(
                f"{final[key]:.2e}"
                for key in ("train_residual", "validation_residual", "l2_error")
            ),
        )
        cost.add_row(
            result.name,
            _report.format_steps(
                result.switch_steps,
                "switches" if len(_phases(result)) > 1 else "none",
            ),
            f"{result.wall_seconds:.1f}",
            f"{result.compile_seconds:.1f}",
            f"{result.compile_seconds_mid_run:.1f}",
            str(result.compilations),
        )
    return accuracy, cost


def _phases(result: _pinn_training.PinnResult) -> tuple[str, ...]:
    return _pinn_training.PINN_STRATEGIES[result.name].phases


def write_pinn_json(
    path: pathlib.Path,
    config: _pinn_training.PinnConfig,
    results: Sequence[_pinn_training.PinnResult],
    environment: dict[str, str],
) -> None:
    """Writes the config, every table entry, curve and solution to ``path``."""
    document = {
        "problem": {
            "equation": "-u'' = f on [0, 1], u(0) = u(1) = 0",
            "exact_solution": _solution_formula(),
            "residual": "mean((-u'' - f)^2) / mean(f^2) over the points",
            "l2_error": "||u - u_exact|| / ||u_exact|| on the grid",
        },
        "config": {**dataclasses.asdict(config), "switch_step": config.switch_step},
        "environment": environment,
        "solution_x": [
            float(x)
            for x in _pinn_training.make_data(config).grid[
                :: _pinn_training.SOLUTION_STRIDE
            ]
        ],
        "strategies": [dataclasses.asdict(result) for result in results],
    }
    path.write_text(json.dumps(document, indent=1) + "\n")


def plot_pinn(
    path: pathlib.Path,
    config: _pinn_training.PinnConfig,
    results: Sequence[_pinn_training.PinnResult],
) -> None:
    """Writes the loss and error curves, and each solution against the exact one."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    figure = Figure(figsize=(12, 8.5), dpi=110, layout="constrained")
    (loss_axis, error_axis), (solution_axis, pointwise_axis) = figure.subplots(2, 2)
    x = np.asarray(_pinn_training.make_data(config).grid)[
        :: _pinn_training.SOLUTION_STRIDE
    ]
    exact = np.asarray(_pinn_problem.exact_solution(x))
    solution_axis.plot(x, exact, color="black", lw=4, alpha=0.25)
    for result in results:
        color = _COLORS[result.name]
        # rejit runs switch_at's plan: dashed, so both stay visible on top of
        # each other.
        style = "--" if result.name == "rejit" else "-"
        update_loss = np.asarray(result.curves["update_loss"])
        loss_axis.plot(np.arange(len(update_loss)), update_loss, style, color=color)
        steps = np.asarray(result.curves["step"])
        error_axis.plot(steps, result.curves["l2_error"], style, color=color)
        if result.switch_steps:
            switches = np.asarray(result.switch_steps)
            for axis, values in (
                (loss_axis, update_loss[switches]),
                (error_axis, np.interp(switches, steps, result.curves["l2_error"])),
            ):
                axis.plot(
                    switches,
                    values,
                    "D",
                    color=color,
                    # Smaller for rejit, which switches where switch_at does.
                    markersize=5 if result.name == "rejit" else 9,
                    markeredgecolor="black",
                )
        solution = np.asarray(result.solution)
        solution_axis.plot(x, solution, style, color=color, lw=1.2)
        pointwise_axis.plot(x, np.abs(solution - exact), style, color=color, lw=1.2)
    loss_axis.set_title("training residual loss, every update")
    loss_axis.set_ylabel("mean (-u'' - f)^2 / mean f^2")
    error_axis.set_title("relative L2 error against the exact solution")
    error_axis.set_ylabel("||u - u_exact|| / ||u_exact||")
    for axis in (loss_axis, error_axis):
        axis.set_xlabel("update")
        axis.set_yscale("log")
    solution_axis.set_title("final solutions, on top of the exact one (thick grey)")
    solution_axis.set_ylabel("u(x)")
    pointwise_axis.set_title("final pointwise error")
    pointwise_axis.set_ylabel("|u(x) - u_exact(x)|")
    pointwise_axis.set_yscale("log")
    for axis in (solution_axis, pointwise_axis):
        axis.set_xlabel("x")
    for axis in (loss_axis, error_axis, solution_axis, pointwise_axis):
        axis.grid(True, which="major", alpha=0.3)

    handles = [
        Line2D(
            [],
            [],
            color=_COLORS[result.name],
            lw=2,
            ls="--" if result.name == "rejit" else "-",
        )
        for result in results
    ]
    labels = [result.name for result in results]
    if any(result.switch_steps for result in results):
        handles.append(
            Line2D([], [], ls="", marker="D", color="gray", markeredgecolor="black")
        )
        labels.append("switch to L-BFGS")
    figure.legend(handles, labels, loc="outside lower center", ncols=len(labels))
    figure.suptitle(
        f"PINN for -u'' = f, u = {_solution_formula()}: {config.steps} updates,"
        f" seed {config.seed}, same initial network for every strategy"
    )
    figure.savefig(path)

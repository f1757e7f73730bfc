"""What the demo writes: the table, ``results.json`` and the loss-curve PNG."""

from collections.abc import Sequence
import dataclasses
import json
import pathlib
from typing import Any

import numpy as np

from optaxswap._demo import _strategies
from optaxswap._demo import _training

_EVENT_MARKERS = {"switches": "D", "resets": "v"}


def format_steps(steps: Sequence[int], kind: str) -> str:
    """The switch or reset steps as one short table cell.

    Examples:
      >>> format_steps([1000], "switches")
      '1000'
      >>> format_steps([750, 1500, 2250], "resets")
      '750, 1500, 2250'
      >>> format_steps(list(range(100, 800, 100)), "resets")
      '100, 200, 300, ... (7)'
      >>> format_steps([], "switches")
      'none'
      >>> format_steps([], "none")
      '-'
    """
    if kind == "none":
        return "-"
    if not steps:
        return "none"
    if len(steps) > 4:
        return f"{', '.join(str(step) for step in steps[:3])}, ... ({len(steps)})"
    return ", ".join(str(step) for step in steps)


def results_tables(results: Sequence[_training.StrategyResult]) -> tuple[Any, Any]:
    """Two ``rich`` tables, one row per strategy: the metrics, then the run.

    Two narrow tables rather than one wide one, so that both fit an
    80-column terminal without cutting a number.
    """
    from rich import box
    from rich.table import Table

    def table(title: str) -> Table:
        new = Table(title=title, box=box.SIMPLE_HEAD, header_style="bold")
        new.add_column("strategy", style="bold", no_wrap=True)
        return new

    metrics = table("final loss and accuracy")
    for split in ("train", "val", "test"):
        metrics.add_column(f"{split}\nloss", justify="right")
        metrics.add_column(f"{split}\nacc", justify="right")
    run = table("switches, resets and compilations")
    run.add_column("switch / reset\nat update")
    run.add_column("wall\ns", justify="right")
    run.add_column("train-step\ncompilations", justify="right")
    for result in results:
        final = result.final
        metrics.add_row(
            result.name,
            *(
                cell
                for split in ("train", "validation", "test")
                for cell in (
                    f"{final[f'{split}_loss']:.4f}",
                    f"{final[f'{split}_accuracy']:.1%}",
                )
            ),
        )
        run.add_row(
            result.name,
            format_steps(result.event_steps, result.event_kind),
            f"{result.wall_seconds:.1f}",
            str(result.compilations),
        )
    return metrics, run


def write_json(
    path: pathlib.Path,
    config: _strategies.DemoConfig,
    results: Sequence[_training.StrategyResult],
    environment: dict[str, str],
) -> None:
    """Writes the config, every table entry and every curve to ``path``."""
    document = {
        "config": {
            **dataclasses.asdict(config),
            "switch_step": config.switch_step,
            "reset_every": config.reset_every,
        },
        "environment": environment,
        "strategies": [dataclasses.asdict(result) for result in results],
    }
    path.write_text(json.dumps(document, indent=1) + "\n")


def plot_curves(
    path: pathlib.Path,
    config: _strategies.DemoConfig,
    results: Sequence[_training.StrategyResult],
) -> None:
    """Writes the train and validation loss curves, with switch/reset markers."""
    # The object-oriented API needs no GUI backend and no pyplot global state.
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    figure = Figure(figsize=(12, 5), dpi=110, layout="constrained")
    train_axis, validation_axis = figure.subplots(1, 2, sharex=True)
    colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
    for axis, key in ((train_axis, "train_loss"), (validation_axis, "validation_loss")):
        for index, result in enumerate(results):
            color = colors[index % len(colors)]
            steps = np.asarray(result.curves["step"])
            values = np.asarray(result.curves[key])
            axis.plot(steps, values, color=color, lw=1.6)
            if result.event_steps:
                axis.plot(
                    result.event_steps,
                    np.interp(result.event_steps, steps, values),
                    _EVENT_MARKERS[result.event_kind],
                    color=color,
                    markersize=8,
                    markeredgecolor="black",
                )
        axis.set_xlabel("step")
        axis.grid(True, which="both", alpha=0.3)
    # The training loss spans decades; the zoomed validation loss does not.
    train_axis.set_yscale("log")
    train_axis.set_title("training loss (whole train split)")
    train_axis.set_ylabel("cross-entropy")
    # Every run starts near log(10); zooming past the first tenth of the run
    # shows where the strategies differ.
    late_values = [
        value
        for result in results
        for step, value in zip(result.curves["step"], result.curves["validation_loss"])
        if step >= config.steps // 10
    ]
    spread = max(late_values) - min(late_values)
    if spread > 0:
        validation_axis.set_ylim(
            min(late_values) - 0.1 * spread, max(late_values) + 0.1 * spread
        )
    validation_axis.set_title(
        "validation loss (zoomed past the first tenth of the run)"
    )
    validation_axis.set_ylabel("cross-entropy")

    handles = [
        Line2D([], [], color=colors[i % len(colors)], lw=2) for i in range(len(results))
    ]
    labels = [result.name for result in results]
    for kind, label in (("switches", "switch"), ("resets", "reset")):
        if any(result.event_steps and result.event_kind == kind for result in results):
            handles.append(
                Line2D(
                    [],
                    [],
                    ls="",
                    marker=_EVENT_MARKERS[kind],
                    color="gray",
                    markeredgecolor="black",
                )
            )
            labels.append(label)
    figure.legend(handles, labels, loc="outside lower center", ncols=len(labels))
    figure.suptitle(
        f"MLP on scikit-learn digits, {config.steps} steps, seed {config.seed}:"
        " same data order and initial model for every strategy"
    )
    figure.savefig(path)

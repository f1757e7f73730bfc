"""The whole demo run: train every strategy, then print, plot and save."""

from collections.abc import Callable, Sequence
import pathlib
import platform
from typing import Any

import jax
import optax

import optaxswap
from optaxswap._demo import _data
from optaxswap._demo import _model
from optaxswap._demo import _report
from optaxswap._demo import _strategies
from optaxswap._demo import _training

PLOT_NAME = "loss_curves.png"
RESULTS_NAME = "results.json"


def describe_environment() -> dict[str, str]:
    """The versions and machine a run's numbers come from, for its JSON."""
    return {
        "optaxswap": optaxswap.__version__,
        "jax": jax.__version__,
        "optax": optax.__version__,
        "backend": jax.default_backend(),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def run_demo(
    config: _strategies.DemoConfig,
    strategy_names: Sequence[str],
    out: pathlib.Path,
) -> list[_training.StrategyResult]:
    """Trains each strategy in turn, shows progress, then reports.

    Args:
      config: the settings every strategy shares.
      strategy_names: keys of :data:`STRATEGIES`, in the order to run them.
      out: the folder that receives the PNG and ``results.json`` (created if
        missing).

    Returns:
      One result per strategy, in order.
    """
    console = demo_console()
    out.mkdir(parents=True, exist_ok=True)
    digits = _data.load_digits_splits(config.seed)
    order = _data.batch_order(
        len(digits.train.y), config.batch_size, config.steps, config.seed
    )
    init_params = _model.init_mlp(
        jax.random.key(config.seed), (digits.train.x.shape[1], config.hidden, 10)
    )
    console.print(
        f"Digits: {len(digits.train.y)} train / {len(digits.validation.y)}"
        f" validation / {len(digits.test.y)} test examples; MLP 64-{config.hidden}-10;"
        f" {config.steps} steps of batch {config.batch_size}, evaluated every"
        f" {config.eval_every} steps."
    )
    # The evaluation is shared: compiling it before any strategy starts keeps
    # it out of the first strategy's wall time.
    for split in digits:
        _training.evaluate(init_params, split.x, split.y)
    strategies = [_strategies.STRATEGIES[name] for name in strategy_names]
    results = train_with_progress(
        console,
        strategies,
        config.steps,
        lambda strategy, on_progress: _training.train_strategy(
            strategy, config, digits, order, init_params, on_progress
        ),
    )
    for table in _report.results_tables(results):
        console.print(table)
    print_summaries(console, results)
    _report.plot_curves(out / PLOT_NAME, config, results)
    _report.write_json(out / RESULTS_NAME, config, results, describe_environment())
    console.print(f"Wrote {out / PLOT_NAME} and {out / RESULTS_NAME}", markup=False)
    return results


def print_summaries(
    console: Any, results: Sequence[Any], exempt: Sequence[str] = ()
) -> None:
    """Each strategy's summary line, then a warning for any that recompiled.

    ``exempt`` names the strategies not expected to compile exactly once.
    """
    for result in results:
        console.print(f"  {result.name}: {result.summary}", markup=False)
    recompiled = [
        result.name
        for result in results
        if result.name not in exempt and result.compilations != 1
    ]
    if recompiled:
        console.print(
            f"The train step of {', '.join(recompiled)} did not compile exactly"
            " once: optaxswap promises one compilation, please report this.",
            style="bold red",
            markup=False,
        )


def demo_console() -> Any:
    """The console the demo prints to.

    Piped into a file or a log, rich would break sentences and paths at 80
    columns; the tables are laid out for 80 columns either way.
    """
    from rich.console import Console

    console = Console()
    console.soft_wrap = not console.is_terminal
    return console


def train_with_progress(
    console: Any,
    strategies: Sequence[Any],
    steps: int,
    train: Callable[[Any, Callable[[int, str], None]], Any],
) -> list[Any]:
    """Trains each strategy in turn, with a progress bar each.

    Args:
      console: the rich console to draw on.
      strategies: the strategies, each with a ``name``.
      steps: the updates each strategy runs.
      train: ``train(strategy, on_progress) -> result``; it calls
        ``on_progress(step, phase_label)`` as it goes.

    Returns:
      One result per strategy, in order.
    """
    from rich.progress import BarColumn
    from rich.progress import MofNCompleteColumn
    from rich.progress import Progress
    from rich.progress import TextColumn
    from rich.progress import TimeElapsedColumn

    results = []
    with Progress(
        TextColumn("{task.description:<18}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[phase]:<16}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        tasks = {
            strategy.name: progress.add_task(
                strategy.name, total=steps, phase="waiting", start=False
            )
            for strategy in strategies
        }
        for strategy in strategies:
            task = tasks[strategy.name]
            progress.start_task(task)

            def on_progress(step: int, label: str, task: Any = task) -> None:
                progress.update(task, completed=step, phase=label)

            results.append(train(strategy, on_progress))
            progress.stop_task(task)
    return results

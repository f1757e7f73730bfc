"""The ``optaxswap`` command line: ``optaxswap demo [options]``.

Bad options end with a one-line message and a non-zero exit status, never a
traceback.
"""

import argparse
from collections.abc import Callable, Sequence
import importlib.util
import pathlib
import sys

import optaxswap
from optaxswap._demo import _pinn_training
from optaxswap._demo import _strategies

_DEMO_EXTRAS = ("sklearn", "matplotlib", "rich")
_MAX_STEPS = 1_000_000
_MAX_SEED = 2**31 - 1
_PROBLEM_STRATEGIES = {
    "digits": tuple(_strategies.STRATEGIES),
    "pinn": tuple(_pinn_training.PINN_STRATEGIES),
}
_PROBLEMS = {
    "all": tuple(_PROBLEM_STRATEGIES),
    **{p: (p,) for p in _PROBLEM_STRATEGIES},
}


def _bounded_int(minimum: int, maximum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected an integer, got {text!r}"
            ) from None
        if not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(
                f"must be between {minimum} and {maximum}, got {value}"
            )
        return value

    return parse


def _strategy_names(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    known = tuple(dict.fromkeys(sum(_PROBLEM_STRATEGIES.values(), ())))
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown strategy {', '.join(map(repr, unknown)) or repr(text)};"
            f" choose from {', '.join(known)} (comma-separated)"
        )
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"a strategy is named twice in {text!r}")
    return names


def _strategies_by_problem(
    problem: str, names: tuple[str, ...] | None
) -> dict[str, tuple[str, ...]]:
    """The strategies each problem of ``--problem`` runs, given ``--strategies``.

    Raises:
      ValueError: if a name belongs to none of the problems, or a problem
        gets no strategy.

    Examples:
      >>> _strategies_by_problem("all", ("adam", "sgd"))
      {'digits': ('adam', 'sgd'), 'pinn': ('adam',)}
      >>> _strategies_by_problem("pinn", ("sgd",))
      Traceback (most recent call last):
      ...
      ValueError: --strategies: 'sgd' is not a strategy of --problem pinn ...
    """
    problems = _PROBLEMS[problem]
    if names is None:
        return {name: _PROBLEM_STRATEGIES[name] for name in problems}
    by_problem = {
        name: tuple(s for s in names if s in _PROBLEM_STRATEGIES[name])
        for name in problems
    }
    known = "; ".join(
        f"{name}: {', '.join(_PROBLEM_STRATEGIES[name])}" for name in problems
    )
    unused = [s for s in names if not any(s in run for run in by_problem.values())]
    if unused:
        raise ValueError(
            f"--strategies: {', '.join(map(repr, unused))} is not a strategy of"
            f" --problem {problem} ({known})"
        )
    empty = [name for name, run in by_problem.items() if not run]
    if empty:
        raise ValueError(
            f"--strategies names no {' or '.join(empty)} strategy ({known});"
            " add one, or choose another --problem"
        )
    return by_problem


def build_parser() -> argparse.ArgumentParser:
    """The parser of the ``optaxswap`` command.

    Returns:
      An ``argparse.ArgumentParser`` with the ``demo`` sub-command.

    Examples:
      >>> args = build_parser().parse_args(
      ...     ["demo", "--quick", "--strategies", "adam,switch_on_plateau"])
      >>> args.quick, args.strategies, args.steps, args.problem
      (True, ('adam', 'switch_on_plateau'), None, 'all')
    """
    parser = argparse.ArgumentParser(
        prog="optaxswap",
        description="Reset or switch optax optimizers mid-run without recompiling.",
    )
    parser.add_argument(
        "--version", action="version", version=f"optaxswap {optaxswap.__version__}"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    demo = commands.add_parser(
        "demo",
        help="compare optimizer strategies on digits and on a PINN",
        description=(
            "Train a small MLP on scikit-learn's bundled handwritten digits, and"
            " a physics-informed network (PINN) on a 1D Poisson problem, with"
            " each strategy (same seed, data and initial model), print tables,"
            " and write loss-curve PNGs and JSON results into --out."
            " Needs the demo extra: pip install 'optaxswap[demo]'."
        ),
    )
    demo.add_argument(
        "--problem",
        choices=tuple(_PROBLEMS),
        default="all",
        help="digits (Adam, SGD and switches between them), pinn (Adam, then"
        " L-BFGS) or all (default)",
    )
    demo.add_argument(
        "--steps",
        type=_bounded_int(1, _MAX_STEPS),
        default=None,
        help="train steps per strategy, for each problem (default"
        f" {_strategies.DEFAULT_STEPS} for digits and"
        f" {_pinn_training.PINN_DEFAULT_STEPS} for pinn; with --quick"
        f" {_strategies.QUICK_STEPS} and {_pinn_training.PINN_QUICK_STEPS})",
    )
    demo.add_argument(
        "--seed",
        type=_bounded_int(0, _MAX_SEED),
        default=0,
        help="fixes the split, data order and initial model (default 0)",
    )
    demo.add_argument(
        "--out",
        type=pathlib.Path,
        default=pathlib.Path("optaxswap-demo"),
        help="folder for the PNG and results.json (default ./optaxswap-demo/)",
    )
    demo.add_argument(
        "--strategies",
        type=_strategy_names,
        default=None,
        help="comma-separated subset; each problem runs those it has (digits:"
        f" {', '.join(_PROBLEM_STRATEGIES['digits'])}; pinn:"
        f" {', '.join(_PROBLEM_STRATEGIES['pinn'])}; default all)",
    )
    demo.add_argument(
        "--quick",
        action="store_true",
        help="a short run for a smoke test; --steps still wins",
    )
    return parser


def _fail(message: str, status: int = 1) -> int:
    print(f"optaxswap: error: {message}", file=sys.stderr)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the ``optaxswap`` command.

    Args:
      argv: the arguments after the program name; ``sys.argv[1:]`` if None.

    Returns:
      The exit status: 0 on success, 1 if the demo could not run, 2 for bad
      options (``argparse``'s convention).

    Examples:
      >>> main(["demo", "--steps", "0"])  # the message goes to stderr
      2
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_request:
        return int(exit_request.code or 0)
    try:
        strategies = _strategies_by_problem(args.problem, args.strategies)
    except ValueError as error:
        return _fail(str(error), 2)
    missing = [name for name in _DEMO_EXTRAS if importlib.util.find_spec(name) is None]
    if missing:
        return _fail(
            f"the demo needs {', '.join(missing)}: pip install 'optaxswap[demo]'"
        )
    if args.out.exists() and not args.out.is_dir():
        return _fail(f"--out {str(args.out)!r} exists and is not a folder", 2)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        return _fail(f"cannot create --out folder {str(args.out)!r}: {error}")

    from optaxswap._demo import run_demo
    from optaxswap._demo import run_pinn_demo

    try:
        if "digits" in strategies:
            steps = args.steps or (
                _strategies.QUICK_STEPS if args.quick else _strategies.DEFAULT_STEPS
            )
            config = _strategies.DemoConfig(steps=steps, seed=args.seed)
            run_demo(config, strategies["digits"], args.out)
        if "pinn" in strategies:
            steps = args.steps or (
                _pinn_training.PINN_QUICK_STEPS
                if args.quick
                else _pinn_training.PINN_DEFAULT_STEPS
            )
            pinn_config = _pinn_training.PinnConfig(steps=steps, seed=args.seed)
            run_pinn_demo(pinn_config, strategies["pinn"], args.out)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except OSError as error:
        return _fail(f"cannot write the results into {str(args.out)!r}: {error}")
    return 0

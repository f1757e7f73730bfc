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
from optaxswap._demo import _strategies

_DEMO_EXTRAS = ("sklearn", "matplotlib", "rich")
_MAX_STEPS = 1_000_000
_MAX_SEED = 2**31 - 1


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
    known = tuple(_strategies.STRATEGIES)
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown strategy {', '.join(map(repr, unknown)) or repr(text)};"
            f" choose from {', '.join(known)} (comma-separated)"
        )
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"a strategy is named twice in {text!r}")
    return names


def build_parser() -> argparse.ArgumentParser:
    """The parser of the ``optaxswap`` command.

    Returns:
      An ``argparse.ArgumentParser`` with the ``demo`` sub-command.

    Examples:
      >>> args = build_parser().parse_args(
      ...     ["demo", "--quick", "--strategies", "adam,switch_on_plateau"])
      >>> args.quick, args.strategies, args.steps
      (True, ('adam', 'switch_on_plateau'), None)
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
        help="compare optimizer strategies on scikit-learn's digits",
        description=(
            "Train a small MLP on scikit-learn's bundled handwritten digits with"
            " each strategy (same seed, data order and initial model), print a"
            " table, and write a loss-curve PNG and results.json into --out."
            " Needs the demo extra: pip install 'optaxswap[demo]'."
        ),
    )
    demo.add_argument(
        "--steps",
        type=_bounded_int(1, _MAX_STEPS),
        default=None,
        help=f"train steps per strategy (default {_strategies.DEFAULT_STEPS},"
        f" or {_strategies.QUICK_STEPS} with --quick)",
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
        default=tuple(_strategies.STRATEGIES),
        help=f"comma-separated subset of: {', '.join(_strategies.STRATEGIES)}"
        " (default all)",
    )
    demo.add_argument(
        "--quick",
        action="store_true",
        help=f"a short run ({_strategies.QUICK_STEPS} steps) for a smoke test;"
        " --steps still wins",
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
    steps = args.steps
    if steps is None:
        steps = _strategies.QUICK_STEPS if args.quick else _strategies.DEFAULT_STEPS
    config = _strategies.DemoConfig(steps=steps, seed=args.seed)

    from optaxswap._demo import run_demo

    try:
        run_demo(config, args.strategies, args.out)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except OSError as error:
        return _fail(f"cannot write the results into {str(args.out)!r}: {error}")
    return 0

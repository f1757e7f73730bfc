"""Switch layouts tried for issue 12 and not kept, timed side by side.

The shipped engine runs a switch as one conditional per phase (run or skip)
plus one per phase that can be left (re-initialize it): ``2N - 1`` for N
phases. ``layouts.patch`` adds private knobs to ``optaxswap/_engine.py`` for
three alternatives, and this script times them next to the shipped layout and
the bare optimizer, in one process, the way ``python -m benchmarks`` does
(interleaved rounds, median of per-round ratios, 95% interval):

- ``leave=select``: leaving is a select outside any conditional,
  ``where(left == i, init, state)``, on every step (``N`` conditionals);
- ``leave=branch``: leaving is a third branch of the phase's run
  conditional, which writes every cell it carries, the updates included
  (``N`` conditionals). As written it is wrong for ``cycle=True`` with
  ``share_memory=True``: the last phase's leaving runs after the first
  phase's entering and overwrites the slots they share. The switches timed
  here do not cycle;
- ``first=operands``: the first phase's conditional takes the updates as an
  operand and returns them or its own, instead of carrying them (aimed at the
  gradients' copy in the separate-jit view);
- ``run=switch``: one ``lax.switch`` on the active phase runs it, each branch
  forwarding the other phases' cells, instead of one run-or-skip conditional
  per phase (``N`` conditionals: the switch and the ``N - 1`` leaving ones).
  With ``share_memory=True`` every branch carries the same slots.

Run from the repository root: apply the patch, run, and revert it
(``tests/test_benchmarks_smoke.py`` checks that the patch still applies)::

    git apply benchmarks/experiments/layouts.patch
    python -m benchmarks.experiments.layouts
    git apply -R benchmarks/experiments/layouts.patch

It checks each layout against the shipped one, prints one table per group,
and writes ``benchmarks/results/layouts-<backend>.json`` (about 4 minutes on
2 CPU cores). ``--layouts`` times only the layouts named (the shipped one
always), e.g. ``--layouts run=switch --out
benchmarks/results/layouts-run-switch-cpu.json``, how that file was made.
The committed ``layouts-cpu.json`` was measured before
``execution="leafwise"`` and ``run=switch`` existed; the default, branched
path it patches is unchanged since.
"""

import argparse
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks import _variants
from benchmarks import experiments
from benchmarks import run as bench
import optaxswap as osw
from optaxswap import _engine

LAYOUTS = {
    "shipped": {},
    "leave=select": {"_LEAVE": "select"},
    "leave=branch": {"_LEAVE": "branch"},
    "first=operands": {"_FIRST_FROM_OPERANDS": True},
    "run=switch": {"_RUN": "switch"},
}
SWITCHES = ("switch_at_2", "switch_at_8", "switch_at_8_shared")
GROUPS = (
    ("train", 1_000),
    ("train", 20_000),
    ("train", 200_000),
    ("separate-jit", 2_000_000),
)


def _with_knobs(knobs: dict, fn, *args):
    """``fn(*args)`` with the engine's knobs set (they act at trace time)."""
    saved = {name: getattr(_engine, name) for name in knobs}
    for name, value in knobs.items():
        setattr(_engine, name, value)
    try:
        return fn(*args)
    finally:
        for name, value in saved.items():
            setattr(_engine, name, value)


def check_equal(layouts: dict[str, dict]) -> list[str]:
    """Each layout against the shipped one: bitwise equal params and state?

    A 3-phase ``switch_at`` and a cycling 2-phase ``switch``, shared or not,
    trained 9 steps on a small quadratic.
    """
    params = {"w": jnp.linspace(-1.0, 1.0, 12).reshape(3, 4), "b": jnp.ones(4)}

    def loss(p):
        return jnp.sum((p["w"] @ p["b"]) ** 2) + jnp.sum(p["b"] ** 4)

    def train(tx):
        @jax.jit
        def step(p, state):
            updates, state = tx.update(jax.grad(loss)(p), state, p)
            return optax.apply_updates(p, updates), state

        p, state = params, tx.init(params)
        for _ in range(9):
            p, state = step(p, state)
        return jax.tree.leaves((p, state))

    cases = {
        "switch_at, 3 phases": lambda shared: osw.switch_at(
            [optax.adam(0.1), optax.sgd(0.05, momentum=0.9), optax.adam(0.02)],
            [3, 6],
            share_memory=shared,
        ),
        "switch, cycle": lambda shared: osw.switch(
            [optax.adam(0.1), optax.sgd(0.05, momentum=0.9)],
            osw.every(2),
            cycle=True,
            share_memory=shared,
        ),
    }
    lines = []
    for case, make in cases.items():
        for shared in (False, True):
            reference = train(make(shared))
            for layout, knobs in layouts.items():
                got = _with_knobs(knobs, train, make(shared))
                same = all(map(np.array_equal, reference, got))
                lines.append(
                    f"{case}, share_memory={shared}, {layout}:"
                    f" {'equal' if same else 'DIFFERENT'}"
                )
    return lines


def _runner(view: str, make, params, data, knobs: dict) -> bench.Runner:
    """A runner compiled with the engine's knobs set."""
    return _with_knobs(knobs, bench.Runner, view, make, params, data)


def measure(
    view: str, size: int, inner: str, rounds: int, layouts: dict[str, dict]
) -> list[dict]:
    params, data = bench._views.problem(view, size)
    makers = _variants.makers(inner)
    runners = {
        name: bench.Runner(view, makers[name], params, data)
        for name in ("bare", "bare_control")
    }
    for switch in SWITCHES:
        for layout, knobs in layouts.items():
            runners[f"{switch} [{layout}]"] = _runner(
                view, makers[switch], params, data, knobs
            )
    return bench.ratio_rows(runners, rounds, view=view, size=size, inner=inner)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--out", type=pathlib.Path, default=None)
    parser.add_argument(
        "--layouts",
        default=",".join(LAYOUTS),
        help="comma-separated layouts to time next to the shipped one",
    )
    args = parser.parse_args(argv)
    names = ["shipped", *(n for n in args.layouts.split(",") if n != "shipped")]
    unknown = sorted(set(names) - set(LAYOUTS))
    if unknown:
        parser.error(f"--layouts: unknown {unknown}; choose from {list(LAYOUTS)}")
    layouts = {name: LAYOUTS[name] for name in names}
    if not hasattr(_engine, "_LEAVE"):
        sys.exit(
            "optaxswap/_engine.py has no layout knobs: run `git apply"
            " benchmarks/experiments/layouts.patch` first (and `git apply -R`"
            " after)."
        )
    equal = check_equal(layouts)
    print("\n".join(equal))
    rows = []
    for view, size in GROUPS:
        for inner in _variants.INNERS:
            group = measure(view, size, inner, args.rounds, layouts)
            rows += group
            print(f"\n{view}, {size:,} parameters, {inner}")
            print(f"{'variant':36s} {'ratio [95%]':>20s} conds  param copies (entry)")
            for row in group:
                print(
                    f"{bench.ratio_text(row, 36)}   {row['conditionals']:3d}"
                    f"   {row['param_copies']} ({row['entry_param_copies']})",
                    flush=True,
                )
    experiments.write_results("layouts", args.out, rows, equal=equal)
    return rows


if __name__ == "__main__":
    main()

"""How a switch's compile time and step time grow with the parameter leaves.

``python -m benchmarks`` measures MLPs of 6 leaves. A real model has tens to
hundreds, and a switch's step holds every phase's update (and, leafwise, a
conditional per phase and leaf). This script builds params of ``N`` leaves of
64 x 64 float32 each and, for each ``N``, compiles the separate-jit view's
step (``apply_updates(params, tx.update(grads, state, params))``, params and
state donated, the gradients a plain argument) of:

- ``bare`` and ``bare_control``: the bare optimizer, twice;
- ``resettable``, ``switch_at_2`` (the default execution, branched on CPU) and
  ``switch_at_2_leafwise``, as ``python -m benchmarks`` builds them, each in
  the phase that runs the group's optimizer.

For each it records the fastest of ``--compile-repeats`` samples of tracing
(``jax.jit(f).trace``), lowering and XLA's compilation, and, for the
switches, the part of the trace that the engine spends tracing every phase
once more before building its conditionals (``_engine._traced_runs``: the
phases' output dtypes, and on a GPU whether they can run fused). Then it
times the steps side by side (interleaved rounds, median of the per-round
ratios to ``bare`` and its 95% interval).

Usage, from the repository root::

    python -m benchmarks.experiments.leaf_count
    python -m benchmarks.experiments.leaf_count --leaves 8,32 --rounds 5
"""

import argparse
from collections.abc import Iterator
import contextlib
import os
import pathlib
import time

import jax
import jax.numpy as jnp

from benchmarks import _variants
from benchmarks import _views
from benchmarks import experiments
from benchmarks import run as bench
from optaxswap import _engine

VARIANTS = ("bare_control", "resettable", "switch_at_2", "switch_at_2_leafwise")
LEAF_SHAPE = (64, 64)


def leaf_params(count: int) -> dict[str, jax.Array]:
    """``count`` leaves of ``LEAF_SHAPE``, named so that they sort in order."""
    return {f"leaf{index:04d}": jnp.full(LEAF_SHAPE, 0.5) for index in range(count)}


@contextlib.contextmanager
def pre_trace_timer() -> Iterator[list[float]]:
    """Seconds spent in ``_engine._traced_runs`` while the block runs."""
    spent = [0.0]
    original = _engine._traced_runs

    def timed(phases):
        start = time.perf_counter()
        try:
            return original(phases)
        finally:
            spent[0] += time.perf_counter() - start

    _engine._traced_runs = timed
    try:
        yield spent
    finally:
        _engine._traced_runs = original


def compile_times(make, params, grads, repeats: int) -> dict[str, float]:
    """The fastest trace, lower and compile of a fresh optimizer's step."""
    samples = []
    for _ in range(repeats):
        variant = make()
        step, donate = _views.step_function("separate-jit", variant.tx, False)
        state = variant.tx.init(params)
        value = jnp.float32(1.0)
        with pre_trace_timer() as pre_trace:
            start = time.perf_counter()
            traced = jax.jit(step, donate_argnums=donate).trace(
                grads, params, state, value
            )
            traced_at = time.perf_counter()
        lowered = traced.lower()
        lowered_at = time.perf_counter()
        lowered.compile()
        compiled_at = time.perf_counter()
        samples.append(
            dict(
                trace_s=traced_at - start,
                pre_trace_s=pre_trace[0],
                lower_s=lowered_at - traced_at,
                compile_s=compiled_at - lowered_at,
                total_s=compiled_at - start,
            )
        )
    return min(samples, key=lambda sample: sample["total_s"])


def measure(count: int, inner: str, rounds: int, repeats: int) -> list[dict]:
    params = leaf_params(count)
    grads = jax.tree.map(lambda leaf: leaf * 1e-3, params)
    makers = _variants.makers(inner)
    names = ("bare", *VARIANTS)
    times = {
        name: compile_times(makers[name], params, grads, repeats) for name in names
    }
    runners = {
        name: bench.Runner("separate-jit", makers[name], params, grads)
        for name in names
    }
    rows = bench.ratio_rows(
        runners, rounds, leaves=count, params=count * LEAF_SHAPE[0] * LEAF_SHAPE[1]
    )
    bare_total = min(times[name]["total_s"] for name in ("bare", "bare_control"))
    for row in rows:
        row.update(times[row["variant"]], inner=inner)
        row["total_over_bare"] = row["total_s"] / bare_total
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leaves", default="8,32,128")
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--compile-repeats", type=int, default=3)
    parser.add_argument("--out", type=pathlib.Path, default=None)
    args = parser.parse_args(argv)
    rows = []
    for count in (int(count) for count in args.leaves.split(",")):
        for inner in _variants.INNERS:
            group = measure(count, inner, args.rounds, args.compile_repeats)
            rows += group
            print(f"\nseparate-jit, {count} leaves of {LEAF_SHAPE}, {inner}")
            print(
                f"  {'variant':22s} {'step ratio':>18s} {'ms':>8s}  conds"
                "  trace (pre)    lower  compile  total / bare"
            )
            for row in group:
                print(
                    f"  {bench.ratio_text(row, 22)} {row['ms']:8.3f}"
                    f"  {row['conditionals']:5d}"
                    f"  {row['trace_s']:5.2f} ({row['pre_trace_s']:4.2f})"
                    f"  {row['lower_s']:6.2f}  {row['compile_s']:7.2f}"
                    f"  {row['total_s']:5.2f} {row['total_over_bare']:5.2f}",
                    flush=True,
                )
    machine = dict(bench.machine(), cores_used=len(os.sched_getaffinity(0)))
    experiments.write_results("leaf-count", args.out, rows, machine)
    return rows


if __name__ == "__main__":
    main()

"""What small kernels that are ready together cost XLA:CPU, timed.

XLA:CPU's runtime runs a computation's kernels one after another on the
calling thread when it has at most 8 kernels, or when every buffer they touch
is at most 512 bytes; otherwise as a dataflow graph, handing half of the
ready kernels to its thread pool whenever more are ready than one thread takes
(``xla/backends/cpu/runtime/thunk_executor.cc``; the thresholds are fixed in
``CpuExecutable::Create``, no flag sets them). A combinator's bookkeeping is a
handful of scalar kernels, so how they depend on each other matters more than
what they compute.

This script times ``tx.update`` of Adam at 20K parameters (the update view of
``python -m benchmarks``: state and gradients donated) carrying ``k`` extra
int32 scalars in its state, each incremented on every step in one of three
ways, side by side with the bare Adam step (interleaved rounds, median of the
per-round ratios and its 95% interval):

- ``independent``: ``k`` scalar kernels that are all ready at once;
- ``chained``: each scalar adds the one before it, so one is ready at a time;
- ``vector``: one int32 array of ``k`` elements, one kernel;
- ``passed``: the ``k`` scalars passed through untouched (their buffers only);
- ``in_cond``: the ``independent`` increments inside a ``lax.cond`` (both
  branches do them). A branch is a computation of its own, whose kernels run
  one after another since its buffers are all small; but XLA then copies
  each of the conditional's outputs into its donated buffer in the entry
  computation (``k`` scalar copies), small kernels that are again ready
  together.

Run from the repository root: ``python -m benchmarks.experiments.ready_kernels``
(under a minute on 2 CPU cores). It prints a table and writes
``benchmarks/results/ready-kernels-<backend>.json``.
"""

import argparse
from collections.abc import Callable
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks import _stats
from benchmarks import _variants
from benchmarks import _views
from benchmarks import experiments
from benchmarks import run as bench

SIZE = 20_000
MODES = ("independent", "chained", "vector", "passed", "in_cond")


def with_scalars(count: int, mode: str) -> optax.GradientTransformation:
    """Adam, with ``count`` extra int32 scalars in its state updated by ``mode``."""
    adam = _variants.INNERS["adam"]()

    def init_fn(params):
        if mode == "vector":
            extra = jnp.zeros((count,), jnp.int32)
        else:
            extra = tuple(jnp.zeros((), jnp.int32) for _ in range(count))
        return adam.init(params), extra

    def update_fn(updates, state, params=None):
        inner, extra = state
        updates, inner = adam.update(updates, inner, params)
        if mode in ("independent", "vector"):
            extra = jax.tree.map(lambda x: x + 1, extra)
        elif mode == "in_cond":

            def increment(extra):
                return jax.tree.map(lambda x: x + 1, extra)

            extra = jax.lax.cond(extra[0] >= 0, increment, increment, extra)
        elif mode == "chained":
            chain = [extra[0] + 1]
            for scalar in extra[1:]:
                chain.append(scalar + chain[-1])
            extra = tuple(chain)
        return updates, (inner, extra)

    return optax.GradientTransformation(init_fn, update_fn)


def makers(counts: tuple[int, ...]) -> dict[str, Callable[[], _variants.Variant]]:
    made = {
        "bare": lambda: _variants.Variant(_variants.INNERS["adam"]()),
        "bare_control": lambda: _variants.Variant(_variants.INNERS["adam"]()),
    }
    for count in counts:
        for mode in MODES:
            made[f"{count} {mode}"] = lambda count=count, mode=mode: _variants.Variant(
                with_scalars(count, mode)
            )
    return made


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--counts", default="2,4,12", help="comma-separated k")
    parser.add_argument("--out", type=pathlib.Path, default=None)
    args = parser.parse_args(argv)
    counts = tuple(int(count) for count in args.counts.split(","))
    params, data = _views.problem("update", SIZE)
    runners = {
        name: bench.Runner("update", make, params, data)
        for name, make in makers(counts).items()
    }
    runs, _ = bench.timed_rounds(runners, args.rounds, bench.MAX_ITERS)
    bare = np.array([run.seconds for run in runs["bare"]])
    rows = []
    print(f"Adam, {SIZE:,} parameters, update view; {jax.default_backend()}")
    print(f"{'extra scalars':22s} {'us/step':>8s} {'over bare':>9s}  ratio [95%]")
    for name in runners:
        seconds = np.array([run.seconds for run in runs[name]])
        summary = _stats.ratio_summary(seconds / bare)
        low, high = summary["ratio_ci95"]
        step_us = 1e6 * float(np.median(seconds))
        extra_us = 1e6 * float(np.median(seconds - bare))
        print(
            f"{name:22s} {step_us:8.1f} {extra_us:+9.1f}"
            f"  {summary['ratio']:.2f} [{low:.2f}, {high:.2f}]"
        )
        rows.append(dict(variant=name, us=step_us, extra_us=extra_us, **summary))
    experiments.write_results("ready-kernels", args.out, rows)
    return rows


if __name__ == "__main__":
    main()

"""What a switch adds to a train step beyond one bare conditional, timed.

``benchmarks.cond_cost`` prices a conditional in a 27K-parameter step. This
script does it in the train view of ``python -m benchmarks`` (the same MLP,
batch and donation), at the sizes given, next to the bare optimizer
(interleaved rounds, median of the per-round ratios and its 95% interval):

- ``one_cond``: the bare optimizer's update inside one ``lax.cond`` whose
  predicate is always true (read from the state, so that XLA cannot fold it),
  with no trigger and no bookkeeping: the floor of any design that runs a
  phase under a conditional;
- ``switch_at_2`` and ``switch_at_2_leafwise``: the switch, measured in the
  phase that runs the group's optimizer, as in ``python -m benchmarks``.

Run it on two cores and pinned to one (``taskset -c 0``): on one core there is
no overlap with the backward pass to lose, so what ``one_cond`` still costs is
the work the conditional adds, the updates written out by the branch and read
back by ``optax.apply_updates`` in kernels of their own (the bare step fuses
the addition into the update's loops).

Usage, from the repository root::

    python -m benchmarks.experiments.one_cond
    taskset -c 0 python -m benchmarks.experiments.one_cond --out \\
        benchmarks/results/one-cond-cpu-pinned.json
"""

import argparse
import os
import pathlib

import jax
from jax import lax
import optax

from benchmarks import _variants
from benchmarks import _views
from benchmarks import experiments
from benchmarks import run as bench


def one_cond(inner: str) -> optax.GradientTransformation:
    """``inner``'s update inside one conditional that always runs it."""
    tx = _variants.INNERS[inner]()

    def update_fn(updates, state, params=None):
        first = jax.tree.leaves(state)[0].ravel()[0]
        return lax.cond(
            first < 1e30,
            lambda u, s: tx.update(u, s, params),
            lambda u, s: (u, s),
            updates,
            state,
        )

    return optax.GradientTransformation(tx.init, update_fn)


def measure(size: int, inner: str, rounds: int) -> list[dict]:
    params, data = _views.problem("train", size)
    makers = _variants.makers(inner)
    made = {
        "bare": makers["bare"],
        "bare_control": makers["bare_control"],
        "one_cond": lambda: _variants.Variant(one_cond(inner)),
        "switch_at_2": makers["switch_at_2"],
        "switch_at_2_leafwise": makers["switch_at_2_leafwise"],
    }
    runners = {
        name: bench.Runner("train", make, params, data) for name, make in made.items()
    }
    return bench.ratio_rows(runners, rounds, size=size, inner=inner)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="20000,200000,2000000")
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--out", type=pathlib.Path, default=None)
    args = parser.parse_args(argv)
    cores = len(os.sched_getaffinity(0))
    rows = []
    for size in (int(size) for size in args.sizes.split(",")):
        for inner in _variants.INNERS:
            group = measure(size, inner, args.rounds)
            rows += group
            print(f"\ntrain, {size:,} parameters, {inner}, {cores} core(s)")
            for row in group:
                print(
                    f"  {bench.ratio_text(row, 22)}  {row['ms']:7.3f} ms"
                    f"  conditionals {row['conditionals']}",
                    flush=True,
                )
    machine = dict(bench.machine(), cores_used=cores)
    experiments.write_results("one-cond", args.out, rows, machine)
    return rows


if __name__ == "__main__":
    main()

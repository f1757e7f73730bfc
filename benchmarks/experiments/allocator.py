"""Page faults at 20M parameters: the same steps with glibc's malloc tuned.

At 20M parameters, the separate-jit step of a switch page-faults on every
call (about 19,500 minor faults, one per 4 KiB page of an 80 MB temporary):
XLA:CPU allocates the step's temporaries with ``malloc`` off the main thread,
and glibc serves an allocation that large there with a fresh ``mmap``, whose
pages fault when first written, on every call (``MALLOC_MMAP_MAX_=0`` alone
leaves the faults; with one arena they go). This script runs the
separate-jit and no-donation groups of ``python -m benchmarks`` at 20M twice,
each in a process of its own:

- ``default``: the environment as it is;
- ``tuned``: ``MALLOC_ARENA_MAX=1 MALLOC_MMAP_MAX_=0
  MALLOC_TRIM_THRESHOLD_=100000000000``: one arena (the main one, which grows
  with ``brk``), no ``mmap`` for large blocks, and freed memory kept rather
  than returned to the system, so that the next call reuses the same pages.

Each process measures its variants against its own bare optimizer
(interleaved rounds, median of the per-round ratios and its 95% interval),
with the minor page faults per step. The tuning is the user's choice, not the
library's: a process then never gives memory back to the system.

Usage, from the repository root::

    python -m benchmarks.experiments.allocator
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile

from benchmarks import experiments
from benchmarks import run as bench

SIZE = 20_000_000
VARIANTS = ("bare_control", "switch_at_2", "switch_at_2_shared")
VIEWS = ("separate-jit", "no-donation")
TUNED = {
    "MALLOC_ARENA_MAX": "1",
    "MALLOC_MMAP_MAX_": "0",
    "MALLOC_TRIM_THRESHOLD_": "100000000000",
}
SETTINGS = {"default": {}, "tuned": TUNED}


def measure(size: int, rounds: int) -> list[dict]:
    """This process's rows: every view, inner and variant at ``size``."""
    rows = []
    for view in VIEWS:
        for inner in ("adam", "sgdm"):
            group = bench.Group(view, size, VARIANTS, rounds=rounds)
            rows += bench.measure_group(group, inner, bench.MAX_ITERS)
    return rows


def run_setting(name: str, size: int, rounds: int) -> list[dict]:
    """The rows of a child process run with setting ``name``'s environment."""
    environment = {key: value for key, value in os.environ.items() if key not in TUNED}
    environment.update(SETTINGS[name])
    with tempfile.TemporaryDirectory() as directory:
        out = pathlib.Path(directory) / "rows.json"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "benchmarks.experiments.allocator",
                "--child",
                "--size",
                str(size),
                "--rounds",
                str(rounds),
                "--out",
                str(out),
            ],
            env=environment,
            check=True,
        )
        rows = json.loads(out.read_text())
    return [dict(row, allocator=name) for row in rows]


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=SIZE)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", type=pathlib.Path, default=None)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        rows = measure(args.size, args.rounds)
        args.out.write_text(json.dumps(rows))
        return rows
    rows = []
    for name in SETTINGS:
        rows += run_setting(name, args.size, args.rounds)
    print(f"\n{args.size:,} parameters: ratio to bare [95% interval], faults per step")
    for row in rows:
        print(
            f"  {row['allocator']:8s} {row['view']:13s} {row['inner']:5s}"
            f" {bench.ratio_text(row, 20)}  {row['ms']:8.3f} ms"
            f"  {row['minor_faults_per_step']:7.0f} faults",
            flush=True,
        )
    machine = dict(bench.machine(), settings=SETTINGS)
    experiments.write_results("allocator", args.out, rows, machine)
    return rows


if __name__ == "__main__":
    main()

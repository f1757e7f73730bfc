"""Experiments behind docs/performance.md, each a script of its own."""

import json
import pathlib
from typing import Any

import jax

from benchmarks import run as bench


def write_results(
    name: str,
    out: pathlib.Path | None,
    rows: list[dict],
    machine: dict[str, Any] | None = None,
    **fields: Any,
) -> pathlib.Path:
    """Writes an experiment's rows, with the machine that measured them.

    Args:
      name: the experiment's name: by default the rows go to
        ``benchmarks/results/<name>-<backend>.json``.
      out: where to write them instead, if not ``None``.
      rows: the rows.
      machine: the machine's description, if not ``bench.machine()`` (with
        what the experiment adds to it).
      fields: more top-level fields of the JSON.

    Returns:
      The path written.
    """
    if out is None:
        out = pathlib.Path(f"benchmarks/results/{name}-{jax.default_backend()}.json")
    machine = bench.machine() if machine is None else machine
    out.write_text(
        json.dumps(dict(machine=machine, **fields, rows=rows), indent=1) + "\n"
    )
    print(f"\nwrote {out}")
    return out

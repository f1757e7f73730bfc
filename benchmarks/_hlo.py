"""What a compiled step does, read from its optimized HLO text.

``jax.jit(f).lower(...).compile().as_text()`` is the program XLA runs. Two
counts in it explain most of what a combinator costs next to the bare
optimizer:

- ``conditional`` instructions: each one is a branch the device (on CPU, the
  host thread running the step) takes at run time; on GPU each is, unless
  XLA records it into a command buffer, a copy of its predicate to the host
  and a wait, so the count is the CPU-visible proxy for GPU host syncs.
- ``copy`` instructions outside fusions: each one moves a whole buffer. One
  as large as a parameter is an extra read and write of that parameter's
  bytes; those in the entry computation run on every step, those in a
  conditional's branch on every step that branch runs.
"""

from collections.abc import Collection
import dataclasses
import re

import numpy as np

# A computation's header: `%name (params...) -> shape {` or `ENTRY %name ...`.
_HEADER = re.compile(r"^(ENTRY\s+)?%?([\w.\-]+)\s.*\{\s*$")
# An instruction: `[ROOT] %name = shape opcode(operands), attributes`. The
# opcode follows the shape after a space; names of operands follow `(` or `,`.
_CONDITIONAL = re.compile(r"^\s*(?:ROOT\s+)?%?[\w.\-]+\s*=\s*.*?\sconditional\(")
_COPY = re.compile(
    r"^\s*(?:ROOT\s+)?%?[\w.\-]+\s*=\s*(\w+)\[([\d,]*)\](?:\{[^}]*\})?\s+copy\("
)
# Fusion bodies are referenced by `calls=`; a `copy` inside one is part of a
# loop that XLA emits anyway, not a buffer copied on its own.
_CALLS = re.compile(r"calls=(\{[^}]*\}|%?[\w.\-]+)")
_NAME = re.compile(r"%?([\w.\-]+)")


@dataclasses.dataclass(frozen=True)
class Copy:
    """One ``copy`` instruction: its size and where it sits."""

    elements: int
    bytes: int
    computation: str
    in_entry: bool


def _computations(hlo_text: str) -> tuple[dict[str, list[str]], str | None]:
    """The lines of each computation of a module, and the entry's name."""
    computations: dict[str, list[str]] = {}
    entry, current = None, None
    for line in hlo_text.splitlines():
        header = _HEADER.match(line) if not line.startswith(" ") else None
        if header:
            current = header.group(2)
            computations[current] = []
            if header.group(1):
                entry = current
        elif line.startswith("}"):
            current = None
        elif current is not None:
            computations[current].append(line)
    return computations, entry


def _fusion_bodies(computations: dict[str, list[str]]) -> set[str]:
    bodies = set()
    for lines in computations.values():
        for line in lines:
            for called in _CALLS.findall(line):
                bodies.update(_NAME.findall(called))
    return bodies


def conditional_count(hlo_text: str) -> int:
    """The ``conditional`` instructions of an HLO module, nested ones included.

    Examples:
        >>> conditional_count("ENTRY %main (p: pred[]) -> f32[] {\\n"
        ...     "  ROOT %c = f32[] conditional(%p, %a, %b), true_computation=%t\\n"
        ...     "}")
        1
    """
    computations, _ = _computations(hlo_text)
    return sum(
        bool(_CONDITIONAL.match(line))
        for lines in computations.values()
        for line in lines
    )


def copies(hlo_text: str) -> list[Copy]:
    """The ``copy`` instructions of an HLO module, outside fusion bodies.

    Examples:
        >>> [copy.bytes for copy in copies("ENTRY %main (x: f32[4]) -> f32[4] {\\n"
        ...     "  ROOT %copy = f32[4]{0} copy(%x)\\n"
        ...     "}")]
        [16]
    """
    computations, entry = _computations(hlo_text)
    fused = _fusion_bodies(computations)
    found = []
    for name, lines in computations.items():
        if name in fused:
            continue
        for line in lines:
            match = _COPY.match(line)
            if not match:
                continue
            dims = [int(d) for d in match.group(2).split(",") if d]
            elements = int(np.prod(dims, dtype=np.int64))
            bits = re.sub(r"\D", "", match.group(1)) or "8"  # pred: one byte
            found.append(Copy(elements, elements * int(bits) // 8, name, name == entry))
    return found


def parameter_sized(found: list[Copy], leaf_sizes: Collection[int]) -> list[Copy]:
    """The copies as large as one of the parameters' leaves (of 2+ elements)."""
    sizes = {size for size in leaf_sizes if size > 1}
    return [copy for copy in found if copy.elements in sizes]

"""Markdown tables from a benchmark JSON, for ``docs/performance.md``.

``python -m benchmarks.report benchmarks/results/cpu.json``
"""

import json
import pathlib
import sys

VARIANTS = [
    "switch_at",
    "switch_on_plateau",
    "switch_shared",
    "resettable",
    "resettable_fields",
    "carrying_others",
    "naive_switch",
    "branchfree_shared",
    "unforwarded_switch",
]
INNERS = ["adam", "sgdm", "clip_adamw"]


def _rows(results, **match):
    return [
        row
        for row in results["steps"]
        if all(row[key] == value for key, value in match.items())
    ]


def _mib(num_bytes):
    return f"{num_bytes / 2**20:.2f}"


# Below this size a step measures the fixed cost of a call, not the targets'.
TARGET_SIZE = 1_000_000


def _measured_size(results, view):
    """The smallest size of ``view`` the targets are read at (1M and up)."""
    sizes = [row["size"] for row in results["steps"] if row["view"] == view]
    large = [size for size in sizes if size >= TARGET_SIZE]
    return min(large or sizes, default=None)


def _target_rows(results):
    """The rows at the targets' sizes (all rows of a ``--quick`` run)."""
    steps = results["steps"]
    return [row for row in steps if row["size"] >= TARGET_SIZE] or steps


def _variant_table(results, caption, size, view, cell) -> list[str]:
    """A variants-by-inners table: ``cell(row, bare_row)`` formats a cell."""
    lines = [
        caption,
        "",
        "| variant | " + " | ".join(INNERS) + " |",
        "| --- |" + " --- |" * len(INNERS),
    ]
    for variant in ["bare", *VARIANTS]:
        cells = []
        for inner in INNERS:
            found = _rows(results, size=size, view=view, inner=inner)
            bare = [row for row in found if row["variant"] == "bare"]
            row = [row for row in found if row["variant"] == variant]
            cells.append(cell(row[0], bare[0]) if row and bare else "")
        if any(cells):
            lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    lines.append("")
    return lines


def _ratio_cell(row, bare) -> str:
    if row is bare:
        return f"{row['ms']:.2f} ms"
    low, high = row["ratio_ci95"]
    return f"{row['ratio']:.2f} [{low:.2f}, {high:.2f}]"


def step_tables(results) -> list[str]:
    lines = []
    groups = dict.fromkeys((row["size"], row["view"]) for row in _target_rows(results))
    for size, view in groups:
        caption = (
            f"**{view}**, {size / 1e6:.1f}M parameters: median step-time ratio"
            " to the bare inner [95% bootstrap interval of the median]; bare"
            " step time"
        )
        lines += _variant_table(results, caption, size, view, _ratio_cell)
    return lines


def memory_table(results) -> list[str]:
    lines = [
        "Memory and compilation, Adam phase, 1M parameters: optimizer-state MiB,"
        " temporary MiB of the compiled step (`memory_analysis()`), MiB copied by"
        " `copy` instructions of the step's entry computation (the ones that run"
        " on every step), and train-step compile time over the bare inner's",
        "",
        "| variant | state | temp (update) | temp (apply) | temp (train)"
        " | copied (update) | copied (apply) | copied (train) | compile ratio |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    views = ("update", "apply", "train")
    size = {view: _measured_size(results, view) for view in views}
    for variant in ["bare", *VARIANTS]:
        by_view = {
            view: _rows(
                results, size=size[view], view=view, inner="adam", variant=variant
            )
            for view in views
        }
        if not any(by_view.values()):
            continue
        any_row = next(rows[0] for rows in by_view.values() if rows)

        def cell(view, key, by_view=by_view):
            rows = by_view[view]
            return _mib(rows[0][key]) if rows else ""

        train = by_view["train"]
        compile_ratio = f"{train[0]['compile_ratio']:.2f}" if train else ""
        lines.append(
            f"| {variant} | {_mib(any_row['state_bytes'])} | "
            + " | ".join(cell(view, "temp_bytes") for view in by_view)
            + " | "
            + " | ".join(cell(view, "entry_copy_bytes") for view in by_view)
            + f" | {compile_ratio} |"
        )
    lines.append("")
    return lines


def two_phase_memory_table(results) -> list[str]:
    """Temporary MiB of a two-phase switch's step next to its bare phases'."""
    rows = results.get("memory", [])
    if not rows:
        return []
    cases = list(dict.fromkeys(row["case"] for row in rows))
    views = list(dict.fromkeys(row["view"] for row in rows))
    size = rows[0]["size"]
    lines = [
        f"Temporary MiB of the compiled step, {size / 1e6:.1f}M parameters: a"
        " two-phase switch whose phases have no temporaries of their own, next"
        " to its bare phases",
        "",
        "| view | " + " | ".join(f"`{case}`" for case in cases) + " |",
        "| --- |" + " --- |" * len(cases),
    ]
    for view in views:
        cells = []
        for case in cases:
            found = [r for r in rows if r["view"] == view and r["case"] == case]
            cells.append(_mib(found[0]["temp_bytes"]) if found else "")
        lines.append(f"| {view} | " + " | ".join(cells) + " |")
    lines.append("")
    return lines


def _two_phase_temp_over_bare(results) -> str:
    rows = results.get("memory", [])
    cells = []
    for view in dict.fromkeys(row["view"] for row in rows):
        temp = {row["case"]: row["temp_bytes"] for row in rows if row["view"] == view}
        bare = max(temp["adam"], temp["sgdm"])
        extra = temp["switch_at(adam, sgdm)"] - bare
        if bare >= 2**20:
            cells.append(f"{view}: {extra / bare:+.1%}")
        else:  # A percentage of (almost) nothing says nothing.
            cells.append(f"{view}: {extra:+,} B over {bare:,} B")
    return ", ".join(cells) or "not measured"


def faults_table(results) -> list[str]:
    """Minor page faults per step: fresh temporary pages from the OS."""
    lines = [
        "Minor page faults per step (median), SGD-with-momentum phase",
        "",
        "| view | params | bare | switch_at | switch_shared |",
        "| --- | --- | --- | --- | --- |",
    ]
    groups = dict.fromkeys((row["view"], row["size"]) for row in _target_rows(results))
    for view, size in groups:
        cells = []
        for variant in ("bare", "switch_at", "switch_shared"):
            rows = _rows(results, view=view, size=size, inner="sgdm", variant=variant)
            cells.append(f"{rows[0]['minor_faults_per_step']:.0f}" if rows else "")
        lines.append(f"| {view} | {size / 1e6:.1f}M | " + " | ".join(cells) + " |")
    lines.append("")
    return lines


def _extra_cell(row, bare) -> str:
    if row is bare:
        return f"{1e3 * row['ms']:.0f} us"
    return f"{1e3 * (row['ms'] - bare['ms']):+.0f} us"


def fixed_cost_table(results) -> list[str]:
    """What a variant adds to every step, in microseconds, at a tiny size."""
    sizes = [
        row["size"]
        for row in results["steps"]
        if row["view"] == "update" and row["size"] < TARGET_SIZE
    ]
    if not sizes:
        return []
    size = min(sizes)
    caption = (
        f"Fixed cost per step: update view, {size / 1e3:.0f}K parameters, where"
        " a step is mostly the cost of the call; microseconds per step of the"
        " bare inner, and what each variant adds to it (median over rounds)"
    )
    return _variant_table(results, caption, size, "update", _extra_cell)


def firing_table(results) -> list[str]:
    lines = [
        "The step that fires (update view), next to a normal step of the same"
        " combinator, and the bare step and jitted `init` of the optimizer it"
        " enters (medians; the last column is the median of per-step ratios)",
        "",
        "| case | params | firing step | normal step | bare step | init"
        " | firing / (bare + init) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in results["firing"]:
        lines.append(
            f"| {row['case']} | {row['size'] / 1e6:.1f}M | {row['fire_ms']:.2f} ms"
            f" | {row['normal_ms']:.2f} ms | {row['bare_ms']:.2f} ms"
            f" | {row['init_ms']:.2f} ms | {row['fire_over_bare_plus_init']:.2f} |"
        )
    rejit = results["rejit"]
    lines += [
        "",
        f"Re-creating the optimizer and re-jitting the train step at the switch"
        f" ({rejit['size'] / 1e6:.1f}M-parameter MLP): first step"
        f" {rejit['rejit_first_step_ms']:.0f} ms, against"
        f" {rejit['switch_firing_step_ms']:.2f} ms for the switch's firing step"
        f" ({rejit['rejit_over_switch']:.0f}x).",
        "",
    ]
    return lines


def targets_table(results) -> list[str]:
    """The issue's targets next to the measured figures (never asserted)."""
    steps = [row for row in results["steps"] if row["size"] >= TARGET_SIZE]
    switches = ["switch_at", "switch_on_plateau", "switch_shared"]
    resets = ["resettable", "resettable_fields"]

    def worst(view, variants, goal=None):
        rows = [r for r in steps if r["view"] == view and r["variant"] in variants]
        if not rows:
            return "not measured"
        cells = []
        for size in sorted({r["size"] for r in rows}):
            ratio = max(r["ratio"] for r in rows if r["size"] == size)
            cells.append(f"{size / 1e6:.0f}M: {ratio:.2f}")
        summary = ", ".join(cells)
        if goal is not None:
            # A cell is missed only when its whole interval is above the goal.
            above = sum(r["ratio_ci95"][0] > goal for r in rows)
            summary += f"; interval above {goal}: {above} of {len(rows)} cells"
        return summary

    def temp_over_bare(view):
        cells = []
        for size in sorted({r["size"] for r in steps if r["view"] == view}):
            rows = [r for r in steps if r["view"] == view and r["size"] == size]
            bare = max(r["temp_bytes"] for r in rows if r["variant"] == "bare")
            switch = max(
                (r["temp_bytes"] for r in rows if r["variant"] in switches),
                default=None,
            )
            if switch is not None and bare:
                cells.append(f"{size / 1e6:.0f}M: {switch / bare - 1:+.1%}")
        return ", ".join(cells) or "not measured"

    firing = ", ".join(
        f"{row['case']}: {row['fire_over_bare_plus_init']:.2f}"
        for row in results["firing"]
    )
    return [
        "Targets: the worst median ratio over phases (inners) and variants",
        "",
        "| target | goal | measured |",
        "| --- | --- | --- |",
        f"| update view, switches | <= 1.03 | {worst('update', switches, 1.03)} |",
        f"| update view, resettable | <= 1.03 | {worst('update', resets, 1.03)} |",
        "| apply view, switches | the floor: 1.2 (Adam), 1.33 (SGD-m)"
        f" | {worst('apply', switches)} |",
        f"| train view, switches | <= 1.02 | {worst('train', switches, 1.02)} |",
        f"| firing step / (bare step + init) | <= 1 | {firing} |",
        "| temp bytes of `switch_at(adam, sgdm)`'s step over its bare"
        f" phases' | <= +1% | {_two_phase_temp_over_bare(results)} |",
        "| temp bytes of a switch's step over the largest bare phase's"
        f" (train view) | <= +1% | {temp_over_bare('train')} |",
        "| temp bytes of a switch's step over the largest bare phase's"
        f" (apply view) | <= +1% | {temp_over_bare('apply')} |",
        "",
    ]


def main(argv=None) -> None:
    path = pathlib.Path((argv or sys.argv[1:])[0])
    results = json.loads(path.read_text())
    machine = results["machine"]
    flags = machine.get("xla_flags")
    print(
        f"Machine: {machine['backend']} ({machine['processor']},"
        f" {machine['cpu_count']} cores), jax {machine['jax']}, optax"
        f" {machine['optax']}, {machine['date']}"
        f"{f', XLA_FLAGS={flags}' if flags else ''}; load average"
        f" {machine['load_average'][0]:.1f} at start,"
        f" {machine['load_average_end'][0]:.1f} at the end; wall time"
        f" {results['wall_s']:.0f} s.\n"
    )
    tables = (
        targets_table(results)
        + step_tables(results)
        + fixed_cost_table(results)
        + memory_table(results)
        + two_phase_memory_table(results)
        + faults_table(results)
        + firing_table(results)
    )
    print("\n".join(tables))


if __name__ == "__main__":
    main()

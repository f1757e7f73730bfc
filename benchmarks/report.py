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
    "naive_switch",
    "branchfree_shared",
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


def step_tables(results) -> list[str]:
    lines = []
    groups = dict.fromkeys((row["size"], row["view"]) for row in results["steps"])
    for size, view in groups:
        lines += [
            f"**{view}**, {size / 1e6:.1f}M parameters: median step-time ratio"
            " to the bare inner [interquartile range over rounds]; bare step time",
            "",
            "| variant | " + " | ".join(INNERS) + " |",
            "| --- |" + " --- |" * len(INNERS),
        ]
        for variant in ["bare", *VARIANTS]:
            cells = []
            for inner in INNERS:
                found = _rows(
                    results, size=size, view=view, inner=inner, variant=variant
                )
                if not found:
                    cells.append("")
                elif variant == "bare":
                    cells.append(f"{found[0]['ms']:.2f} ms")
                else:
                    row = found[0]
                    spread = f"[{row['ratio_q1']:.2f}, {row['ratio_q3']:.2f}]"
                    cells.append(f"{row['ratio']:.2f} {spread}")
            if any(cells):
                lines.append(f"| {variant} | " + " | ".join(cells) + " |")
        lines.append("")
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
    smallest = {
        view: min(row["size"] for row in results["steps"] if row["view"] == view)
        for view in views
    }
    for variant in ["bare", *VARIANTS]:
        by_view = {
            view: _rows(
                results, size=smallest[view], view=view, inner="adam", variant=variant
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


def faults_table(results) -> list[str]:
    """Minor page faults per step: fresh temporary pages from the OS."""
    lines = [
        "Minor page faults per step (median), SGD-with-momentum phase",
        "",
        "| view | params | bare | switch_at | switch_shared |",
        "| --- | --- | --- | --- | --- |",
    ]
    groups = dict.fromkeys((row["view"], row["size"]) for row in results["steps"])
    for view, size in groups:
        cells = []
        for variant in ("bare", "switch_at", "switch_shared"):
            rows = _rows(results, view=view, size=size, inner="sgdm", variant=variant)
            cells.append(f"{rows[0]['minor_faults_per_step']:.0f}" if rows else "")
        lines.append(f"| {view} | {size / 1e6:.1f}M | " + " | ".join(cells) + " |")
    lines.append("")
    return lines


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
    steps = results["steps"]
    switches = ["switch_at", "switch_on_plateau", "switch_shared"]
    resets = ["resettable", "resettable_fields"]

    def worst(view, variants):
        rows = [r for r in steps if r["view"] == view and r["variant"] in variants]
        if not rows:
            return "not measured"
        cells = []
        for size in sorted({r["size"] for r in rows}):
            ratio = max(r["ratio"] for r in rows if r["size"] == size)
            cells.append(f"{size / 1e6:.0f}M: {ratio:.2f}")
        return ", ".join(cells)

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
        f"| update view, switches | <= 1.03 | {worst('update', switches)} |",
        f"| update view, resettable | <= 1.03 | {worst('update', resets)} |",
        f"| apply view, switches | floor ~1.3 (Adam) | {worst('apply', switches)} |",
        f"| train view, switches | <= 1.02 | {worst('train', switches)} |",
        f"| firing step / (bare step + init) | <= 1 | {firing} |",
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
    print(
        f"Machine: {machine['backend']} ({machine['processor']},"
        f" {machine['cpu_count']} cores), jax {machine['jax']}, optax"
        f" {machine['optax']}, {machine['date']}; load average"
        f" {machine['load_average'][0]:.1f} at start,"
        f" {machine['load_average_end'][0]:.1f} at the end; wall time"
        f" {results['wall_s']:.0f} s.\n"
    )
    tables = (
        targets_table(results)
        + step_tables(results)
        + memory_table(results)
        + faults_table(results)
        + firing_table(results)
    )
    print("\n".join(tables))


if __name__ == "__main__":
    main()

"""The benchmark suite runs from a clean checkout and writes valid JSON.

Only that: the figures themselves are never asserted (machines are noisy).
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import jax
import pytest

REPOSITORY = pathlib.Path(__file__).resolve().parent.parent


def test_quick_benchmark_runs_and_writes_json(tmp_path):
    out = tmp_path / "quick.json"
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--out", str(out)],
        cwd=REPOSITORY,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    results = json.loads(out.read_text())
    assert results["quick"] is True
    assert results["plan"] == "quick" and results["complete"] is True
    assert results["machine"]["backend"] == "cpu"
    assert "xla_flags" in results["machine"] and results["machine"]["device_kind"]
    variants = {row["variant"] for row in results["steps"]}
    assert {"bare", "bare_control", "switch_at_2", "naive_switch"} <= variants
    assert "switch_at_2_leafwise" in variants
    assert {"resettable", "switch_on_plateau", "switch_at_8_shared"} <= variants
    views = {row["view"] for row in results["steps"]}
    assert views == {
        "update",
        "train",
        "separate-jit",
        "no-donation",
        "scan",
        "eager",
    }
    assert "switch_at_2_op_by_op" in variants
    for row in results["steps"]:
        assert row["ratio"] > 0 and row["ms"] > 0 and row["compile_s"] > 0, row
        assert row["state_bytes"] > 0 and len(row["round_ms"]) == row["rounds"], row
        if row["view"] == "eager":
            # Not one compiled program: no HLO to count.
            assert row["conditionals"] is None and row["temp_bytes"] is None, row
            continue
        assert row["param_copies"] >= 0, row
        # Counted in the optimized HLO: a bare optax step has no conditional.
        if row["variant"].startswith("bare"):
            assert row["conditionals"] == 0, row
    assert {row["case"] for row in results["firing"]} == {
        "resettable(adam)",
        "switch(adam, sgdm, cycle)",
    }
    assert results["rejit"]["rejit_first_step_ms"] > 0

    report = subprocess.run(
        [sys.executable, "-m", "benchmarks.report", str(out)],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert report.returncode == 0, report.stderr[-4000:]
    headings = (
        "Issue 12's targets",
        "**train**",
        "**separate-jit**",
        "**no-donation**",
        "**scan**",
        "**eager**",
        "Phase count",
        "Fixed cost per step",
        "firing",
    )
    for heading in headings:
        assert heading in report.stdout, heading

    # A run stopped by a time limit leaves the groups it finished (written
    # after each one), marked incomplete; the report reads them as they are.
    sys.path.insert(0, str(REPOSITORY))
    from benchmarks import report as report_module

    partial = dict(results, steps=results["steps"][:3], complete=False)
    del partial["firing"], partial["rejit"]
    assert "stopped early" in report_module.render(partial).splitlines()[0]


def test_layout_experiment_patch_still_applies():
    """benchmarks/experiments/layouts.patch must still apply to the engine.

    It is the record of the switch layouts tried for issue 12, and its script
    measures them: a patch that no longer applies is a record no one can rerun.
    """
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed")
    completed = subprocess.run(
        [git, "apply", "--check", "benchmarks/experiments/layouts.patch"],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr


@pytest.mark.parametrize("backend", ["cpu", "gpu"])
def test_every_plan_names_variants_that_exist(monkeypatch, backend):
    """Each group of every plan (the device one too) can be built as named.

    On a GPU the plans add the branched executions ("auto" runs fused there).
    """
    sys.path.insert(0, str(REPOSITORY))
    from benchmarks import _variants
    from benchmarks import run

    monkeypatch.setattr(run.jax, "default_backend", lambda: backend)
    named = set()
    for name, plan in run.PLANS.items():
        for group in plan():
            assert group.view in run._views.VIEWS, (name, group)
            named.update(group.variants)
            for inner in group.inners:
                missing = set(group.variants) - set(_variants.makers(inner))
                assert not missing, (name, group.view, group.size, missing)
    assert (set(run.BRANCHED) <= named) == (backend == "gpu")


def test_quick_and_another_plan_are_refused(capsys):
    sys.path.insert(0, str(REPOSITORY))
    from benchmarks import run

    with pytest.raises(SystemExit):
        run.main(["--quick", "--plan", "full"])
    assert "--quick is --plan quick" in capsys.readouterr().err


def test_leaf_count_experiment_times_the_engines_extra_trace():
    """The experiment's split of a switch's trace still finds what it times.

    docs/performance.md reports how much of the trace is the engine tracing
    every phase once more (``_engine._traced_runs``); if the engine stops
    doing it, or renames it, this fails rather than report zero.
    """
    sys.path.insert(0, str(REPOSITORY))
    from benchmarks import _variants
    from benchmarks.experiments import leaf_count

    params = leaf_count.leaf_params(2)
    grads = jax.tree.map(lambda leaf: leaf * 1e-3, params)
    makers = _variants.makers("sgdm")
    switch = leaf_count.compile_times(makers["switch_at_2"], params, grads, 1)
    assert 0 < switch["pre_trace_s"] < switch["trace_s"] < switch["total_s"]
    bare = leaf_count.compile_times(makers["bare"], params, grads, 1)
    assert bare["pre_trace_s"] == 0


def test_device_session_script_is_valid_bash():
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    completed = subprocess.run(
        [bash, "-n", "benchmarks/device_session.sh"],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr

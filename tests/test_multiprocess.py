"""Real multi-process ``jax.distributed`` jobs: 2 processes x 2 CPU devices.

The scenarios (``multiprocess/distributed_training.py``) run as jobs of fresh processes
started by ``multiprocess/launcher.py``; each process reports what it saw,
and the tests compare the processes with each other, with the plateau rule's
reference model and with the uninterrupted run. Three jobs in all (train,
resume, the example), about a minute on two cores. Deselect them with
``-m "not multiprocess"``.
"""

import functools
import json
import os
import pathlib
import re
import signal
import subprocess
import sys

import numpy as np
import pytest
import reference

HERE = pathlib.Path(__file__).parent
sys.path.insert(0, str(HERE / "multiprocess"))
import distributed_training as training  # noqa: E402
import launcher  # noqa: E402

EXAMPLE = HERE.parent / "examples" / "multiprocess.py"
DOCS_PAGE = HERE.parent / "docs" / "integrations" / "distributed.md"
RESULT_PREFIX = "RESULT "
# The survivor learns of its dead peer from missed heartbeats (10 s here).
SURVIVOR_DEADLINE_S = 60

multiprocess = pytest.mark.multiprocess


@functools.cache
def job(directory: pathlib.Path, scenario: str) -> tuple[launcher.Finished, ...]:
    return tuple(
        launcher.run_job(
            HERE / "multiprocess" / "distributed_training.py",
            [scenario, str(directory / "checkpoints")],
            workdir=directory / scenario,
            timeout=240,
        )
    )


@pytest.fixture(scope="module")
def job_directory(tmp_path_factory) -> pathlib.Path:
    return tmp_path_factory.mktemp("multiprocess")


def results(finished: tuple[launcher.Finished, ...]) -> list[dict]:
    reports = []
    for process in finished:
        lines = process.lines(RESULT_PREFIX)
        assert lines, (
            f"process {process.process_id} exited with {process.returncode}"
            f" without a result:\n{process.stdout[-3000:]}\n{process.stderr[-5000:]}"
        )
        reports.append(json.loads(lines[-1]))
    return reports


@pytest.fixture(scope="module")
def trained(job_directory) -> tuple[tuple[launcher.Finished, ...], list[dict]]:
    finished = job(job_directory, "train")
    return finished, results(finished)


@pytest.fixture(scope="module")
def resumed(job_directory, trained) -> list[dict]:
    del trained  # Resumes from its checkpoints.
    finished = job(job_directory, "resume")
    for process in finished:
        assert process.returncode == 0, process.stderr[-5000:]
    return results(finished)


def by_update(history: dict[str, object]) -> list:
    return [history[key] for key in sorted(history, key=int)]


def plateau_phases(values) -> list[int]:
    """Each update's phase under the plateau rule, observing after each update."""
    model = reference.PlateauModel(patience=2, cooldown=1, rtol=0.02)
    fires = []
    for value in values:
        fires.append(model.update())
        model.observe(value)
    return reference.switch_phases(fires, num_phases=2)


@multiprocess
def test_processes_with_different_data_switch_and_reset_together(trained):
    _, reports = trained
    first, second = reports
    for field in ("phase", "resets", "checksum"):
        assert first["history"][field] == second["history"][field], field
    # Each process's own validation loss, averaged across processes by
    # observe(across_processes="mean"), decides: the reference rule on the
    # processes' mean gives every process's phase.
    values = np.array(
        [by_update(report["history"]["value"]) for report in reports], np.float32
    )
    mean = values.astype(np.float64).mean(axis=0).astype(np.float32)
    phases = by_update(first["history"]["phase"])
    assert phases == plateau_phases(mean)
    assert 0 < phases.index(1) < training.NUM_STEPS - 1, "it must switch mid-run"
    # Alone, each process would have switched at another update.
    alone = [plateau_phases(process_values) for process_values in values]
    assert alone[0].index(1) != alone[1].index(1), alone
    # every(3) resets on updates 3, 6, 9, ...
    expected_resets = [t // training.RESET_EVERY for t in range(training.NUM_STEPS)]
    assert by_update(first["history"]["resets"]) == expected_resets


@multiprocess
def test_train_step_compiles_once_without_set_mesh(trained):
    _, reports = trained
    for report in reports:
        assert report["compiles"] == {"plateau": 1, "periodic": 1}
        assert report["placements_kept"]


@multiprocess
def test_observe_refuses_a_different_host_value_on_each_process(trained):
    _, reports = trained
    messages = [report["differing_error"] for report in reports]
    assert messages[0] is not None and messages[0] == messages[1]
    found = re.findall(r"process (\d): ([-\d.e]+)", messages[0])
    assert [index for index, _ in found] == ["0", "1"]
    assert found[0][1] != found[1][1]
    for report in reports:
        assert "process 0: 0.0, process 1: 1.0" in report["differing_bfloat16_error"]


@multiprocess
def test_fresh_processes_restore_mid_plateau_and_continue_bit_identical(
    trained, resumed
):
    _, trained_reports = trained
    last_saved = max(training.SAVE_STEPS)
    # Saved with a switch pending, which only the restored state remembers.
    trigger = trained_reports[0][f"trigger_at_save_{last_saved}"]
    assert trigger["pending"] or trigger["bad_count"] > 0, trigger
    for report in resumed:
        assert report["restored_step"] == last_saved
        assert report["placements_exact"]
        assert report["compiles"] == {"plateau": 1, "periodic": 1}
        for field in ("phase", "resets", "checksum"):
            uninterrupted = trained_reports[0]["history"][field]
            assert report["history"][field] == {
                key: uninterrupted[key] for key in report["history"][field]
            }, field
        assert sorted(map(int, report["history"]["checksum"])) == list(
            range(last_saved, training.NUM_STEPS)
        )


@multiprocess
def test_survivor_of_a_dead_peer_ends_with_a_clear_error_in_bounded_time(
    trained, job_directory
):
    finished, _ = trained
    survivor, dead = finished
    assert dead.returncode == -signal.SIGKILL
    assert survivor.returncode != 0
    assert "SURVIVED" not in survivor.stdout
    assert "another task died" in survivor.stderr, survivor.stderr[-3000:]
    assert survivor.seconds - dead.seconds < SURVIVOR_DEADLINE_S
    # The save the survivor began alone never became a checkpoint.
    steps = sorted(
        int(path.name)
        for path in (job_directory / "checkpoints").iterdir()
        if path.name.isdigit()
    )
    assert steps == list(training.SAVE_STEPS)


def run_example() -> subprocess.CompletedProcess:
    environment = {**os.environ, "JAX_PLATFORMS": "cpu"}
    environment.pop("XLA_FLAGS", None)
    for _ in range(launcher.ATTEMPTS):
        completed = subprocess.run(
            [sys.executable, str(EXAMPLE), "--processes", "2", "--timeout", "200"],
            capture_output=True,
            text=True,
            env=environment,
            timeout=240,
            check=False,
        )
        if launcher.PORT_TAKEN not in completed.stderr:
            break
    return completed


@multiprocess
def test_multiprocess_example_switches_every_process_together():
    completed = run_example()
    assert completed.returncode == 0, completed.stdout + completed.stderr[-5000:]
    switches = re.findall(r"process (\d): update (\d+) switched", completed.stdout)
    finals = re.findall(r"process (\d): phase (\d), checksum (\w+)", completed.stdout)
    output = completed.stdout + completed.stderr[-3000:]
    assert sorted(index for index, _ in switches) == ["0", "1"], output
    assert len({update for _, update in switches}) == 1, switches
    assert sorted(index for index, _, _ in finals) == ["0", "1"], output
    assert len({(phase, digest) for _, phase, digest in finals}) == 1, finals
    assert finals[0][1] == "1"
    identical = completed.stdout.count("restored the checkpoint, identical: True")
    assert identical == 2, output
    # The launcher relays each worker's output whole, process 0 first.
    assert completed.stdout.index("process 0: phase") < completed.stdout.index(
        "process 1: update"
    ), output


def multiprocess_snippets() -> list[str]:
    """The Python blocks of the docs' multi-process recipe."""
    page = DOCS_PAGE.read_text()
    recipe = page[page.index("## Multi-process training") :]
    recipe = recipe[: recipe.index("\n## ", 1)] if "\n## " in recipe[1:] else recipe
    return re.findall(r"```python\n(.*?)```", recipe, flags=re.DOTALL)


@multiprocess
def test_set_mesh_breaks_host_evaluation_as_the_docs_say(trained):
    _, reports = trained
    for report in reports:
        assert "incompatible devices" in report["committed_error"]
        assert report["numpy_result_is_global"]
        assert report["numpy_result_is_own_value"]


def test_docs_multiprocess_snippets_are_excerpts_of_the_tested_example():
    """Every snippet of the recipe is code the example test runs."""
    example_lines = [line.strip() for line in EXAMPLE.read_text().splitlines()]
    # The >>> blocks run as doctests.
    snippets = [
        snippet for snippet in multiprocess_snippets() if not snippet.startswith(">>>")
    ]
    assert snippets
    for snippet in snippets:
        lines = [line.strip() for line in snippet.strip().splitlines()]
        assert any(
            example_lines[start : start + len(lines)] == lines
            for start in range(len(example_lines))
        ), f"not in examples/multiprocess.py:\n{snippet}"

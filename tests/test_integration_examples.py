"""The integration examples run as written (``python examples/X.py --fast``).

Each example runs in its own process, as a user would run it; the examples start
together on first use, so their start-up and compilation overlap.
"""

import functools
import os
import pathlib
import subprocess
import sys

import pytest

EXAMPLES_DIR = pathlib.Path(__file__).parent.parent / "examples"
EXAMPLES = ("flax_linen", "flax_nnx", "orbax_resume", "data_parallel", "log_summary")


@functools.cache
def started_examples() -> dict[str, subprocess.Popen]:
    environment = dict(os.environ)
    # data_parallel fakes its CPU devices only where XLA_FLAGS is unset.
    environment.pop("XLA_FLAGS", None)
    return {
        name: subprocess.Popen(
            [sys.executable, str(EXAMPLES_DIR / f"{name}.py"), "--fast"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment,
        )
        for name in EXAMPLES
    }


@pytest.fixture(scope="module", autouse=True)
def stop_unfinished_examples():
    """Kills the examples a failing or deselected test left running."""
    yield
    if started_examples.cache_info().currsize:
        for process in started_examples().values():
            if process.poll() is None:
                process.kill()
                process.communicate()


@functools.cache
def example_output(name: str) -> str:
    process = started_examples()[name]
    try:
        stdout, stderr = process.communicate(timeout=540)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        pytest.fail(f"examples/{name}.py timed out:\n{stdout}\n{stderr}")
    if process.returncode != 0:
        pytest.fail(
            f"examples/{name}.py exited with {process.returncode}:\n{stdout}\n{stderr}"
        )
    return stdout


def test_flax_linen_example_switches_on_the_training_loss_plateau():
    assert "switched from Adam to SGD" in example_output("flax_linen")


def test_flax_nnx_example_switches_on_the_training_loss_plateau():
    assert "switched from Adam to SGD" in example_output("flax_nnx")


def test_orbax_example_resumes_bit_for_bit_and_continues_adam():
    output = example_output("orbax_resume")
    assert "resumed run equals the uninterrupted run bit for bit: True" in output
    assert "switched from Adam to SGD" in output


def test_data_parallel_example_switches_every_replica_together():
    output = example_output("data_parallel")
    assert "replicas' phases [1, 1]" in output
    assert "SGD's momentum has its param's sharding: True" in output


def test_log_summary_example_logs_the_switch_and_the_plateau_count():
    lines = example_output("log_summary").splitlines()
    assert "'1/phase': 0" in lines[0] and "'1/phase': 1" in lines[-1]
    assert any("'1/trigger_state/bad_count': 1" in line for line in lines)

"""Multi-device: pmap, jit over a Mesh (data-parallel and FSDP), shard_map.

Each device count needs its own process (``XLA_FLAGS`` is read when jax
starts), so the scenarios in ``distributed/scenarios.py`` run in one
subprocess per device count and report one result each.
"""

import functools
import json
import os
import pathlib
import subprocess
import sys

import pytest

SCENARIOS_SCRIPT = pathlib.Path(__file__).parent / "distributed" / "scenarios.py"
RESULT_PREFIX = "SCENARIO RESULT "

SCENARIOS_BY_DEVICE_COUNT = {
    2: (
        "pmap_value_argument",
        "pmap_value_argument_fused",
        "pmap_observe",
        "shard_map_value_argument",
        "mesh_data_parallel",
        "mesh_fsdp_auto_axes",
        "mesh_fsdp_leafwise",
        "mesh_fsdp_fused",
        "explicit_axes_eager_updates",
    ),
    4: ("pmap_value_argument", "mesh_fsdp"),
}


@functools.cache
def scenario_results(num_devices: int) -> dict[str, dict]:
    """Runs every scenario for ``num_devices`` in one fresh process."""
    environment = dict(os.environ)
    # The script sets the device count itself, before importing jax.
    environment.pop("XLA_FLAGS", None)
    completed = subprocess.run(
        [
            sys.executable,
            str(SCENARIOS_SCRIPT),
            str(num_devices),
            *SCENARIOS_BY_DEVICE_COUNT[num_devices],
        ],
        capture_output=True,
        text=True,
        env=environment,
        timeout=540,
        check=False,
    )
    results = {}
    for line in completed.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            result = json.loads(line.removeprefix(RESULT_PREFIX))
            results[result["scenario"]] = result
    if not results:
        pytest.fail(
            f"the scenario process exited with {completed.returncode} and no"
            f" result:\n{completed.stdout}\n{completed.stderr}"
        )
    return results


def check(num_devices: int, scenario: str) -> None:
    result = scenario_results(num_devices).get(scenario)
    assert result is not None, f"{scenario} did not report (crashed?)"
    assert result["ok"], result["error"]


@pytest.mark.parametrize("num_devices", [2, 4])
def test_pmap_replicas_with_different_losses_switch_together(num_devices):
    check(num_devices, "pmap_value_argument")


def test_pmap_fused_replicas_switch_together():
    check(2, "pmap_value_argument_fused")


def test_pmap_observe_with_axis_name_switches_replicas_together():
    check(2, "pmap_observe")


def test_shard_map_shards_with_different_losses_switch_together():
    check(2, "shard_map_value_argument")


def test_mesh_data_parallel_keeps_shardings_and_adds_no_collectives():
    check(2, "mesh_data_parallel")


def test_mesh_fsdp_states_keep_their_params_sharding_through_switches():
    check(4, "mesh_fsdp")


def test_mesh_fsdp_leafwise_keeps_shardings_and_adds_no_collectives():
    check(2, "mesh_fsdp_leafwise")


def test_mesh_fsdp_fused_keeps_shardings_and_adds_no_collectives():
    check(2, "mesh_fsdp_fused")


def test_mesh_fsdp_with_automatic_axes_keeps_shardings():
    check(2, "mesh_fsdp_auto_axes")


def test_explicit_axes_updates_outside_jit_keep_every_leaf_type():
    check(2, "explicit_axes_eager_updates")

"""Checkpoint faults: a process killed mid-save, and checkpoints of other transforms.

The training process (``tests/faults/train_and_checkpoint.py``) runs as a
subprocess and is killed with SIGKILL once an asynchronous Orbax save has
started writing. The uninterrupted reference run is the same jitted step run
in this process, so "resumes exactly" is bitwise equality.
"""

import os
import pathlib
import signal
import subprocess
import sys
import time

import chex
import jax
import jax.numpy as jnp
import optax
import orbax.checkpoint as ocp
import pytest

import optaxswap as osw

sys.path.insert(0, str(pathlib.Path(__file__).parent / "faults"))
import train_and_checkpoint as training  # noqa: E402

SCRIPT = pathlib.Path(training.__file__)
SAVE_EVERY = 5
KILLED_SAVE = 15
NUM_STEPS = 20


def in_flight(directory: pathlib.Path, step: int) -> pathlib.Path:
    """Where Orbax writes a step's checkpoint before renaming it into place."""
    return directory / f"{step}.orbax-checkpoint-tmp"


def kill_during_save(directory: pathlib.Path) -> list[int]:
    """Runs the training subprocess and SIGKILLs it while save KILLED_SAVE writes.

    Returns the steps whose saves had started before the kill.
    """
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), str(directory), str(NUM_STEPS), str(SAVE_EVERY)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    started = []
    try:
        for line in process.stdout:
            if line.startswith("SAVING"):
                started.append(int(line.split()[1]))
            if started and started[-1] == KILLED_SAVE:
                break
        else:
            pytest.fail(f"the training process ended before save {KILLED_SAVE}")
        deadline = time.monotonic() + 120
        while not in_flight(directory, KILLED_SAVE).exists():
            assert time.monotonic() < deadline, "the save never started writing"
            time.sleep(0.001)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == -signal.SIGKILL
    return started


def reference_run(tx, num_steps):
    """The uninterrupted run: the state after each update, by update number."""
    step = training.make_step(tx)
    states = {0: training.initial_state(tx)}
    for t in range(1, num_steps + 1):
        states[t] = step(states[t - 1])
    return step, states


def test_sigkill_during_a_save_resumes_exactly_from_the_last_complete_one(tmp_path):
    directory = (tmp_path / "checkpoints").absolute()
    started = kill_during_save(directory)

    # The kill landed mid-save: the killed step's files are still under their
    # temporary name and the step was never published.
    assert in_flight(directory, KILLED_SAVE).exists()
    assert not (directory / str(KILLED_SAVE)).exists()
    complete = started[:-1]

    tx = training.build_transform()
    target = jax.eval_shape(lambda: training.initial_state(tx))
    step, reference = reference_run(tx, NUM_STEPS)
    with ocp.CheckpointManager(directory) as manager:
        # Only complete checkpoints are listed, so only they can be restored.
        assert manager.all_steps() == complete
        assert manager.latest_step() == complete[-1] == KILLED_SAVE - SAVE_EVERY
        restored = osw.restore_checkpoint(manager, target)
        with pytest.raises(Exception):  # noqa: B017 (Orbax's own error type)
            manager.restore(KILLED_SAVE, args=ocp.args.StandardRestore(target))
    resumed_from = complete[-1]
    chex.assert_trees_all_equal(restored, reference[resumed_from])
    chex.assert_trees_all_equal_shapes_and_dtypes(restored, reference[0])
    # Resumed mid-phase: phase 1, with the inner momentum's resets under way.
    assert int(osw.phase(restored["opt_state"])) == 1
    assert int(osw.reset_count(restored["opt_state"])) > 0

    # The resumed run saves the killed step again over the leftovers and
    # continues exactly as the uninterrupted run, compiling once. (Restored
    # arrays are committed to their device, fresh ones are not, so in this
    # process jit compiles once more for them; a resumed process compiles
    # once anyway.)
    options = ocp.CheckpointManagerOptions(
        save_interval_steps=SAVE_EVERY, max_to_keep=None
    )
    state = step(restored)
    compiled = step._cache_size()
    with ocp.CheckpointManager(directory, options=options) as manager:
        for t in range(resumed_from + 2, NUM_STEPS + 1):
            state = step(state)
            manager.save(t, args=ocp.args.StandardSave(state))
        manager.wait_until_finished()
        again = osw.restore_checkpoint(manager, target, step=KILLED_SAVE)
    chex.assert_trees_all_equal(state, reference[NUM_STEPS])
    chex.assert_trees_all_equal(again, reference[KILLED_SAVE])
    assert step._cache_size() == compiled <= 2


PARAMS = {"w": jnp.ones(3), "b": jnp.zeros(2)}


def saved_transform():
    return osw.switch_at(
        [optax.adam(0.1), optax.sgd(0.1, momentum=0.9)], boundaries=[5]
    )


@pytest.fixture(scope="module")
def saved_manager(tmp_path_factory):
    """A CheckpointManager holding one state of ``saved_transform``."""
    directory = (tmp_path_factory.mktemp("mismatch") / "checkpoints").absolute()
    tx = saved_transform()
    with ocp.CheckpointManager(directory) as manager:
        manager.save(3, args=ocp.args.StandardSave(tx.init(PARAMS)))
        manager.wait_until_finished()
    manager = ocp.CheckpointManager(directory)
    yield manager
    manager.close()


@pytest.mark.parametrize(
    ("other", "params", "differing"),
    [
        (
            osw.switch_at(
                [optax.adam(0.1), optax.sgd(0.1, momentum=0.9), optax.sgd(0.1)],
                boundaries=[5, 9],
            ),
            PARAMS,
            "inner_states.2",
        ),
        (osw.switch([optax.adam(0.1)], osw.never()), PARAMS, "inner_states.1"),
        (
            osw.switch_at([optax.adam(0.1), optax.adam(0.1)], boundaries=[5]),
            PARAMS,
            "inner_states.1.0.mu",
        ),
        (
            osw.switch_at([optax.sgd(0.1), optax.adam(0.1)], boundaries=[5]),
            PARAMS,
            "inner_states.0.0:",
        ),
        (saved_transform(), {"w": jnp.ones(4), "b": jnp.zeros(2)}, "mu.w"),
        (
            saved_transform(),
            {"w": jnp.ones(3, jnp.bfloat16), "b": jnp.zeros(2)},
            "bfloat16",
        ),
        (osw.resettable(optax.adam(0.1)), PARAMS, "inner_state"),
    ],
    ids=[
        "more-phases",
        "fewer-phases",
        "other-optimizer-in-phase-1",
        "other-optimizer-in-phase-0",
        "other-param-shape",
        "other-param-dtype",
        "other-combinator",
    ],
)
def test_checkpoint_of_another_transform_fails_naming_what_differs(
    saved_manager, other, params, differing
):
    target = jax.eval_shape(other.init, params)
    with pytest.raises(ValueError, match="does not match") as raised:
        osw.restore_checkpoint(saved_manager, target)
    assert differing in str(raised.value)


def test_checkpoint_of_the_same_transform_restores_identically(saved_manager):
    tx = saved_transform()
    restored = osw.restore_checkpoint(saved_manager, jax.eval_shape(tx.init, PARAMS))
    chex.assert_trees_all_equal(restored, tx.init(PARAMS))
    chex.assert_trees_all_equal_structs(restored, tx.init(PARAMS))

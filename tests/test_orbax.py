"""Orbax checkpoints: exact round trips, bit-for-bit resumption, continuing a run."""

import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
from jax.sharding import AxisType
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest
from training import count_compilations

import optaxswap as osw
from optaxswap._switch import phase_state

# A least-squares problem small enough to run a few steps in a blink.
INPUTS = jax.random.normal(jax.random.key(0), (16, 3))
TARGETS = INPUTS @ jnp.array([1.0, -2.0, 0.5]) + 0.3


def make_params(dtype: jnp.dtype = jnp.float32) -> dict[str, jax.Array]:
    return {"w": jnp.zeros(3, dtype), "b": jnp.zeros((), dtype)}


def loss_fn(params: dict[str, jax.Array]) -> jax.Array:
    predictions = INPUTS @ params["w"].astype(jnp.float32) + params["b"]
    return jnp.mean((predictions - TARGETS) ** 2)


def assert_identical_trees(actual, expected):
    assert jax.tree.structure(actual) == jax.tree.structure(expected)
    for got, want in zip(jax.tree.leaves(actual), jax.tree.leaves(expected)):
        assert got.dtype == want.dtype
        assert got.shape == want.shape
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def advanced_state(tx, params, values):
    """The state after one update per value, each given as ``value=``."""
    state = tx.init(params)
    for value in values:
        grads = jax.grad(loss_fn)(params)
        updates, state = tx.update(grads, state, params, value=jnp.float32(value))
        params = optax.apply_updates(params, updates)
    return state


TRANSFORMS = {
    "switch_on_plateau": lambda: osw.switch_on_plateau(
        [optax.adam(0.1), optax.sgd(0.1, momentum=0.9)], patience=1, cooldown=2
    ),
    "resettable_in_chain": lambda: optax.chain(
        optax.clip_by_global_norm(1.0), osw.resettable(optax.adam(0.1), osw.every(2))
    ),
    "resettable_inside_switch": lambda: osw.switch_at(
        [osw.resettable(optax.adam(0.1), osw.every(2)), optax.sgd(0.1)], [3]
    ),
}


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_standard_checkpointer_restores_identical_tree(tmp_path, name, dtype):
    tx = TRANSFORMS[name]()
    params = make_params(dtype)
    state = advanced_state(tx, params, [3.0, 2.0, 2.5, 2.4])
    path = tmp_path / "state"
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(path, state)
        checkpointer.wait_until_finished()
        restored = checkpointer.restore(path, jax.eval_shape(tx.init, params))
    assert_identical_trees(restored, state)


def test_checkpoint_manager_restores_plateau_state_with_its_config(tmp_path):
    tx = osw.switch_on_plateau(
        [optax.adam(0.1), optax.sgd(0.1)], patience=3, cooldown=2, mode="max"
    )
    params = make_params()
    state = advanced_state(tx, params, [1.0, 2.0, 1.5])
    with ocp.CheckpointManager(tmp_path / "run") as manager:
        manager.save(3, args=ocp.args.StandardSave(state))
        manager.wait_until_finished()
    with ocp.CheckpointManager(tmp_path / "run") as manager:
        restored = manager.restore(
            3, args=ocp.args.StandardRestore(jax.eval_shape(tx.init, params))
        )
    assert_identical_trees(restored, state)
    assert isinstance(restored.trigger_state, osw.PlateauState)
    assert restored.trigger_state.config == state.trigger_state.config
    assert float(restored.trigger_state.best) == 2.0


# patience=2, cooldown=3, fed with the value of each update: updates 0 and 1
# improve, 2 and 3 do not, so update 3 switches to phase 1 and starts a
# cooldown of 3 observations; after update 5 one is left. Updates 6 ends it,
# 7 and 8 are bad again, so update 8 switches to phase 2.
PLATEAU_VALUES = [5.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0]
CHECKPOINT_AFTER = 6


def test_run_restored_mid_phase_and_mid_cooldown_continues_bit_for_bit(tmp_path):
    tx = osw.switch_on_plateau(
        [optax.adam(0.05), optax.sgd(0.05, momentum=0.9), optax.adam(0.01)],
        patience=2,
        cooldown=3,
    )

    def train_step(params, opt_state, value):
        grads = jax.grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params, value=value)
        return optax.apply_updates(params, updates), opt_state

    train_step = jax.jit(train_step)
    values = [jnp.float32(value) for value in PLATEAU_VALUES]
    # A restore returns arrays committed to their devices, and jit keys its
    # cache on that too: the run starts from committed arrays, as a run whose
    # arrays are placed with a sharding does.
    device = jax.devices()[0]
    params = jax.device_put(make_params(), device)
    initial_state = jax.device_put(tx.init(params), device)

    with count_compilations() as compilations:
        uninterrupted = (params, initial_state)
        for value in values:
            uninterrupted = train_step(*uninterrupted, value)

        run = (params, initial_state)
        for value in values[:CHECKPOINT_AFTER]:
            run = train_step(*run, value)
        with ocp.CheckpointManager(tmp_path / "run") as manager:
            manager.save(
                CHECKPOINT_AFTER,
                args=ocp.args.StandardSave({"params": run[0], "opt_state": run[1]}),
            )
            manager.wait_until_finished()
        del run

        abstract = jax.eval_shape(
            lambda params: {"params": params, "opt_state": tx.init(params)}, params
        )
        with ocp.CheckpointManager(tmp_path / "run") as manager:
            restored = osw.restore_checkpoint(manager, abstract)
        assert int(osw.phase(restored["opt_state"])) == 1
        assert int(restored["opt_state"].trigger_state.cooldown_count) == 1
        resumed = (restored["params"], restored["opt_state"])
        for value in values[CHECKPOINT_AFTER:]:
            resumed = train_step(*resumed, value)

    assert int(osw.phase(uninterrupted[1])) == 2
    assert_identical_trees(resumed, uninterrupted)
    assert compilations["jit(train_step)"] == 1


def test_continuing_plain_adam_under_switch_keeps_its_moments():
    params = make_params()
    adam = optax.adam(0.05)
    adam_state = adam.init(params)
    grad_fn = jax.jit(jax.grad(loss_fn))
    for _ in range(5):
        updates, adam_state = adam.update(grad_fn(params), adam_state)
        params = optax.apply_updates(params, updates)

    sgd = optax.sgd(0.05, momentum=0.9)
    tx = osw.switch_on_plateau([adam, sgd], patience=100)
    state = osw.wrap_state(tx, params, adam_state)
    expected_params, expected_adam = params, adam_state
    for _ in range(3):
        grads = grad_fn(params)
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        expected_updates, expected_adam = adam.update(
            grad_fn(expected_params), expected_adam
        )
        expected_params = optax.apply_updates(expected_params, expected_updates)
    chex.assert_trees_all_close(params, expected_params, rtol=1e-6)
    chex.assert_trees_all_close(phase_state(state, 0), expected_adam, rtol=1e-6)
    assert int(phase_state(state, 0)[0].count) == 8

    # A requested switch enters SGD fresh from the current params, as
    # re-instantiating it would.
    state = osw.request_switch(state)
    updates, state = tx.update(grad_fn(params), state, params)
    expected_updates, _ = sgd.update(grad_fn(params), sgd.init(params), params)
    assert int(osw.phase(state)) == 1
    chex.assert_trees_all_close(updates, expected_updates, rtol=1e-6)


def test_continuing_plain_adam_under_resettable_keeps_its_moments(tmp_path):
    params = make_params()
    adam = optax.adam(0.05)
    adam_state = adam.init(params)
    for _ in range(4):
        updates, adam_state = adam.update(jax.grad(loss_fn)(params), adam_state)
        params = optax.apply_updates(params, updates)
    path = tmp_path / "adam_state"
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(path, adam_state)
        checkpointer.wait_until_finished()

    restored = osw.restore_checkpoint(path, jax.eval_shape(adam.init, params))
    tx = osw.resettable(adam, osw.every(10))
    state = osw.wrap_state(tx, params, restored)
    updates, state = tx.update(jax.grad(loss_fn)(params), state, params)
    expected_updates, expected_adam = adam.update(jax.grad(loss_fn)(params), adam_state)
    chex.assert_trees_all_close(updates, expected_updates, rtol=1e-6)
    chex.assert_trees_all_close(state.inner_state, expected_adam, rtol=1e-6)
    assert int(osw.reset_count(state)) == 0


def test_wrap_state_count_keeps_the_original_step_schedule():
    params = make_params()
    adam = optax.adam(0.05)
    tx = osw.switch_at([adam, optax.sgd(0.05)], [8])
    state = osw.wrap_state(tx, params, adam.init(params), count=5)
    phases = []
    for _ in range(4):
        _, state = tx.update(jax.grad(loss_fn)(params), state, params)
        phases.append(int(osw.phase(state)))
    # Updates 5, 6, 7 of the original numbering stay in Adam; 8 switches.
    assert phases == [0, 0, 0, 1]


def test_wrap_state_takes_a_state_restored_without_target(tmp_path):
    params = make_params()
    adam = optax.adam(0.05)
    adam_state = adam.init(params)
    _, adam_state = adam.update(jax.grad(loss_fn)(params), adam_state)
    path = tmp_path / "adam_state"
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(path, adam_state)
        checkpointer.wait_until_finished()
        untyped = checkpointer.restore(path)  # dicts and lists, no NamedTuples
    assert not isinstance(untyped[0], optax.ScaleByAdamState)

    tx = osw.switch_on_plateau([adam, optax.sgd(0.05)])
    state = osw.wrap_state(tx, params, untyped)
    assert jax.tree.structure(state) == jax.tree.structure(tx.init(params))
    chex.assert_trees_all_close(phase_state(state, 0), adam_state, rtol=1e-6)


def test_wrap_state_rejects_the_state_of_another_optimizer():
    params = make_params()
    tx = osw.switch_on_plateau([optax.adam(0.1), optax.sgd(0.1)])
    sgd_state = optax.sgd(0.1, momentum=0.9).init(params)
    with pytest.raises(ValueError, match=r"0\.trace: in inner_state, not in"):
        osw.wrap_state(tx, params, sgd_state)


def test_wrap_state_rejects_another_dtype():
    params = make_params()
    adam = optax.adam(0.1)
    with pytest.raises(ValueError, match=r"0\.mu\.w: bfloat16\[3\] in inner_state"):
        osw.wrap_state(
            osw.resettable(adam), params, adam.init(make_params(jnp.bfloat16))
        )


def test_wrap_state_rejects_a_transform_that_is_no_combinator():
    params = make_params()
    chained = optax.chain(optax.clip(1.0), osw.resettable(optax.adam(0.1)))
    with pytest.raises(TypeError, match="switch or resettable"):
        osw.wrap_state(chained, params, optax.adam(0.1).init(params))


def test_wrap_state_rejects_a_negative_count():
    params = make_params()
    adam = optax.adam(0.1)
    with pytest.raises(ValueError, match=r"count .* got -1"):
        osw.wrap_state(osw.resettable(adam), params, adam.init(params), count=-1)


@pytest.fixture(scope="module")
def two_phase_checkpoint(tmp_path_factory):
    """A saved ``switch_on_plateau([adam, sgd with momentum])`` state."""
    tx = osw.switch_on_plateau([optax.adam(0.1), optax.sgd(0.1, momentum=0.9)])
    path = tmp_path_factory.mktemp("mismatch") / "state"
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(path, tx.init(make_params()))
        checkpointer.wait_until_finished()
    return path


MISMATCHES = {
    "another_number_of_phases": (
        lambda: osw.switch_on_plateau(
            [optax.adam(0.1), optax.sgd(0.1, momentum=0.9), optax.adam(0.1)]
        ),
        make_params(),
        r"inner_states\.2: in the target, not in the checkpoint",
    ),
    "another_inner_optimizer": (
        lambda: osw.switch_on_plateau(
            [optax.sgd(0.1, momentum=0.9), optax.sgd(0.1, momentum=0.9)]
        ),
        make_params(),
        r"inner_states\.0\.0\.mu: in the checkpoint, not in the target",
    ),
    "another_shape": (
        lambda: osw.switch_on_plateau([optax.adam(0.1), optax.sgd(0.1, momentum=0.9)]),
        {"w": jnp.zeros(4), "b": jnp.zeros(())},
        r"inner_states\.0\.0\.mu\.w: float32\[3\] in the checkpoint,"
        r" float32\[4\] in the target",
    ),
    "another_dtype": (
        lambda: osw.switch_on_plateau([optax.adam(0.1), optax.sgd(0.1, momentum=0.9)]),
        make_params(jnp.bfloat16),
        r"inner_states\.1\.0\.trace\.b: float32\[\] in the checkpoint,"
        r" bfloat16\[\] in the target",
    ),
}


@pytest.mark.parametrize("name", sorted(MISMATCHES))
def test_restoring_a_mismatched_checkpoint_says_what_differs(
    two_phase_checkpoint, name
):
    make_tx, params, message = MISMATCHES[name]
    target = jax.eval_shape(make_tx().init, params)
    with pytest.raises(ValueError, match=message):
        osw.restore_checkpoint(two_phase_checkpoint, target)


def test_check_structure_reads_one_item_of_a_composite_checkpoint(tmp_path):
    tx = osw.switch_on_plateau([optax.adam(0.1), optax.sgd(0.1, momentum=0.9)])
    params = make_params()
    with ocp.CheckpointManager(tmp_path / "run") as manager:
        manager.save(
            1,
            args=ocp.args.Composite(
                params=ocp.args.StandardSave(params),
                opt_state=ocp.args.StandardSave(tx.init(params)),
            ),
        )
        manager.wait_until_finished()
    handlers = {
        "params": ocp.StandardCheckpointHandler(),
        "opt_state": ocp.StandardCheckpointHandler(),
    }
    with ocp.CheckpointManager(tmp_path / "run", item_handlers=handlers) as manager:
        saved = manager.item_metadata(1)["opt_state"]
    osw.check_structure(jax.eval_shape(tx.init, params), saved)
    one_phase = osw.switch_on_plateau([optax.adam(0.1)])
    with pytest.raises(ValueError, match=r"inner_states\.1: in the checkpoint"):
        osw.check_structure(jax.eval_shape(one_phase.init, params), saved)


def test_check_structure_accepts_the_same_structure_built_from_arrays():
    tx = osw.switch_on_plateau([optax.adam(0.1), optax.sgd(0.1)])
    params = make_params()
    osw.check_structure(jax.eval_shape(tx.init, params), tx.init(params))


def test_check_structure_lists_each_difference_once_per_missing_subtree():
    params = make_params()
    saved = jax.eval_shape(osw.switch_at([optax.adam(0.1)] * 2, [5]).init, params)
    target = jax.eval_shape(
        osw.switch_at([optax.adam(0.1)] * 4, [5, 6, 7]).init, params
    )
    with pytest.raises(ValueError, match=r"\(2 differences\)") as error:
        osw.check_structure(target, saved)
    assert "inner_states.2: in the target, not in the checkpoint" in str(error.value)
    assert "inner_states.3: in the target, not in the checkpoint" in str(error.value)


def test_restore_checkpoint_rejects_a_relative_path():
    with pytest.raises(ValueError, match="must be absolute.*'relative/state'"):
        osw.restore_checkpoint("relative/state", make_params())


def test_restore_checkpoint_rejects_step_with_a_path(two_phase_checkpoint):
    with pytest.raises(ValueError, match="step=3"):
        osw.restore_checkpoint(two_phase_checkpoint, make_params(), step=3)


def test_restore_checkpoint_from_an_empty_manager_is_file_not_found(tmp_path):
    with ocp.CheckpointManager(tmp_path / "empty") as manager:
        with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'empty'}.*no"):
            osw.restore_checkpoint(manager, make_params())


def test_restore_checkpoint_of_a_missing_step_is_file_not_found(tmp_path):
    with ocp.CheckpointManager(tmp_path / "run") as manager:
        manager.save(3, args=ocp.args.StandardSave(make_params()))
        manager.wait_until_finished()
        with pytest.raises(FileNotFoundError, match=r"no step 4; its steps: \[3\]"):
            osw.restore_checkpoint(manager, make_params(), step=4)


@pytest.mark.parametrize("kind", ["missing", "empty directory"])
def test_restore_checkpoint_of_a_missing_path_is_file_not_found(tmp_path, kind):
    path = tmp_path / "state"
    if kind == "empty directory":
        path.mkdir()
    with pytest.raises(FileNotFoundError, match=f"no checkpoint at '{path}'"):
        osw.restore_checkpoint(path, make_params())


def test_check_structure_without_saved_metadata_is_file_not_found():
    with pytest.raises(FileNotFoundError, match="saved is None"):
        osw.check_structure(make_params(), None)


@pytest.mark.parametrize("axis_type", [AxisType.Auto, AxisType.Explicit])
def test_restore_on_a_mesh_places_every_leaf_as_saved_and_compiles_once(
    tmp_path, axis_type
):
    """The documented target, ``jax.eval_shape(tx.init, params)``, on a mesh.

    Under explicit axes its leaves are on an abstract mesh (Orbax cannot
    restore onto those); under automatic axes they have no sharding (Orbax
    would restore them onto one device, and the step would compile again).
    """
    mesh = jax.make_mesh((1,), ("data",), axis_types=(axis_type,))
    tx = TRANSFORMS["switch_on_plateau"]()

    @jax.jit
    def train_step(params, opt_state):
        grads = jax.grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params, value=loss_fn(params))
        return optax.apply_updates(params, updates), opt_state

    params = jax.device_put(make_params(), NamedSharding(mesh, P()))
    with count_compilations() as compilations:
        saved = train_step(params, tx.init(params))
        with ocp.CheckpointManager(tmp_path / "run") as manager:
            manager.save(1, args=ocp.args.StandardSave(saved))
            manager.wait_until_finished()
        target = jax.eval_shape(lambda params: (params, tx.init(params)), make_params())
        with ocp.CheckpointManager(tmp_path / "run") as manager:
            restored = osw.restore_checkpoint(manager, target)
        assert_identical_trees(restored, saved)
        for got, want in zip(jax.tree.leaves(restored), jax.tree.leaves(saved)):
            assert got.sharding == want.sharding
        uninterrupted = train_step(*saved)
        resumed = train_step(*restored)
    assert_identical_trees(resumed, uninterrupted)
    assert compilations["jit(train_step)"] == 1


def test_restore_checkpoint_from_a_manager_with_custom_step_names(tmp_path):
    state = {"w": jnp.arange(3.0)}
    options = ocp.CheckpointManagerOptions(step_prefix="ckpt")
    with ocp.CheckpointManager(tmp_path / "run", options=options) as manager:
        manager.save(3, args=ocp.args.StandardSave(state))
        manager.wait_until_finished()
    with ocp.CheckpointManager(tmp_path / "run", options=options) as manager:
        with pytest.raises(ValueError, match="item_handlers="):
            osw.restore_checkpoint(manager, jax.eval_shape(lambda: state))
    with ocp.CheckpointManager(
        tmp_path / "run", options=options, item_handlers=ocp.StandardCheckpointHandler()
    ) as manager:
        restored = osw.restore_checkpoint(manager, jax.eval_shape(lambda: state))
    assert_identical_trees(restored, state)


def test_restore_checkpoint_from_a_fresh_manager_logs_no_orbax_warning(
    tmp_path, caplog
):
    tx = osw.switch_on_plateau([optax.adam(0.1), optax.sgd(0.1)])
    params = make_params()
    state = advanced_state(tx, params, [1.0, 0.5])
    with ocp.CheckpointManager(tmp_path / "run") as manager:
        manager.save(2, args=ocp.args.StandardSave(state))
        manager.wait_until_finished()
    # A manager opened afresh, as a resumed job opens it, knows no handler.
    with ocp.CheckpointManager(tmp_path / "run") as manager:
        with caplog.at_level("WARNING"):
            restored = osw.restore_checkpoint(manager, jax.eval_shape(tx.init, params))
    assert_identical_trees(restored, state)
    assert [record.getMessage() for record in caplog.records] == []


def test_importing_optaxswap_imports_neither_orbax_nor_flax():
    code = (
        "import sys, optaxswap;"
        " print(sorted(m for m in ('orbax', 'flax') if m in sys.modules))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert completed.stdout.strip() == "[]"

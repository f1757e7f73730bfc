"""Multi-device scenarios, each run in its own process by ``test_distributed.py``.

Usage: ``python scenarios.py NUM_DEVICES SCENARIO...``. The device count must
be fixed before jax is imported, hence a separate process. Each scenario
asserts its own expectations; the process prints one JSON result line per
scenario. Every step is blocked on, since the host has fewer cores than fake
devices.
"""

import json
import os
import re
import sys
import time
import traceback

if __name__ == "__main__":
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "")
        + f" --xla_force_host_platform_device_count={int(sys.argv[1])}"
    )
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from jax.sharding import AxisType  # noqa: E402
from jax.sharding import NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import optaxswap as osw  # noqa: E402

COLLECTIVES = ("all-gather", "all-reduce", "reduce-scatter", "all-to-all")
COLLECTIVE_PATTERN = re.compile(
    r"\b(" + "|".join(COLLECTIVES) + r"|collective-permute)(-start)?\("
)
RESULT_PREFIX = "SCENARIO RESULT "
NUM_FEATURES, NUM_HIDDEN = 8, 4


def make_params() -> dict[str, jax.Array]:
    keys = jax.random.split(jax.random.key(0), 2)
    return {
        "w1": jax.random.normal(keys[0], (NUM_FEATURES, NUM_HIDDEN)) * 0.3,
        "w2": jax.random.normal(keys[1], (NUM_HIDDEN,)) * 0.3,
        "b": jnp.zeros(()),
    }


def make_batch(num_examples: int) -> tuple[jax.Array, jax.Array]:
    inputs = jax.random.normal(jax.random.key(1), (num_examples, NUM_FEATURES))
    return inputs, jnp.sin(inputs.sum(axis=1))


def loss_fn(params, inputs, targets) -> jax.Array:
    hidden = jnp.tanh(inputs @ params["w1"])
    return jnp.mean((hidden @ params["w2"] + params["b"] - targets) ** 2)


def collective_counts(compiled_text: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for match in COLLECTIVE_PATTERN.finditer(compiled_text):
        counts[match.group(1)] = counts.get(match.group(1), 0) + 1
    return counts


def plateau_phases(values, *, patience: int, num_phases: int) -> list[int]:
    # Imported here: the reference model lives beside the tests.
    import reference  # noqa: PLC0415

    model = reference.PlateauModel(patience=patience)
    return reference.switch_phases(
        [model.update(value) for value in values], num_phases=num_phases
    )


def replica_values(num_replicas: int) -> np.ndarray:
    """``values[r, t]``: the metric replica ``r`` sees on update ``t``.

    Even replicas' metric worsens, odd replicas' improves; their mean stays
    flat. Alone, an even replica would switch on update 2 and an odd one
    never; on the mean every replica switches on update 2.
    """
    worsening = [1.0, 2.0, 3.0, 4.0, 5.0]
    improving = [1.0, 0.0, -1.0, -2.0, -3.0]
    return np.array([worsening, improving] * (num_replicas // 2), np.float32)


def check_replicas_agree(values: np.ndarray, phases: np.ndarray) -> None:
    """``phases[t, r]``: replica r's phase after update t."""
    num_updates = values.shape[1]
    assert (phases == phases[:, :1]).all(), f"replicas disagree: {phases.tolist()}"
    expected = plateau_phases(values.mean(axis=0), patience=2, num_phases=2)
    assert phases[:, 0].tolist() == expected, (phases[:, 0].tolist(), expected)
    alone = [
        plateau_phases(values[replica], patience=2, num_phases=2)
        for replica in range(values.shape[0])
    ]
    assert alone[0] != alone[1], "the replicas' own metrics must disagree"
    assert len(expected) == num_updates


def run_replicated(train_step, tx, values):
    """Runs ``train_step`` under pmap, replica ``r`` fed ``values[r, t]``.

    Checks after every update that all replicas hold the phase the plateau
    rule gives for the replicas' mean metric; returns the final params and
    state.
    """
    num_devices = values.shape[0]
    inputs, targets = make_batch(8 * num_devices)
    inputs = inputs.reshape(num_devices, 8, NUM_FEATURES)
    targets = targets.reshape(num_devices, 8)
    train_step = jax.pmap(train_step, axis_name="batch")
    replicated = jax.tree.map(lambda x: jnp.stack([x] * num_devices), make_params())
    opt_state = jax.pmap(tx.init)(replicated)
    phases = []
    for t in range(values.shape[1]):
        replicated, opt_state = jax.block_until_ready(
            train_step(replicated, opt_state, inputs, targets, values[:, t])
        )
        phases.append(np.asarray(osw.phase(opt_state)))
    check_replicas_agree(values, np.stack(phases))
    return replicated, opt_state


def pmap_value_argument(execution: str = "branched") -> None:
    """``value=`` under pmap: pmean-ed by the trigger's axis_name."""
    num_devices = jax.device_count()
    values = replica_values(num_devices)
    tx = osw.switch_on_plateau(
        [optax.adam(0.02), optax.sgd(0.02, momentum=0.9)],
        patience=2,
        axis_name="batch",
        execution=execution,
    )

    def train_step(params, opt_state, inputs, targets, value):
        grads = jax.grad(loss_fn)(params, inputs, targets)
        grads = jax.lax.pmean(grads, "batch")
        updates, opt_state = tx.update(grads, opt_state, params, value=value)
        return optax.apply_updates(params, updates), opt_state

    replicated, opt_state = run_replicated(train_step, tx, values)
    for leaf in jax.tree.leaves((replicated, opt_state)):
        leaf = np.asarray(leaf)
        np.testing.assert_array_equal(leaf, np.broadcast_to(leaf[:1], leaf.shape))


def pmap_value_argument_fused() -> None:
    """The same with every phase run and selected: what "auto" runs on a GPU."""
    pmap_value_argument(execution="fused")


def pmap_observe() -> None:
    """``osw.observe(..., axis_name=)`` under pmap, between updates."""
    num_devices = jax.device_count()
    values = replica_values(num_devices)
    tx = osw.switch_on_plateau([optax.adam(0.02), optax.sgd(0.02)], patience=2)

    def train_step(params, opt_state, inputs, targets, val_loss):
        opt_state = osw.observe(opt_state, val_loss, axis_name="batch")
        grads = jax.lax.pmean(jax.grad(loss_fn)(params, inputs, targets), "batch")
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    run_replicated(train_step, tx, values)


def shard_map_value_argument() -> None:
    """``value=`` inside ``jax.shard_map``, each shard with its own metric."""
    num_devices = jax.device_count()
    values = replica_values(num_devices)
    mesh = jax.make_mesh((num_devices,), ("batch",))
    tx = osw.switch_on_plateau(
        [optax.adam(0.02), optax.sgd(0.02, momentum=0.9)],
        patience=2,
        axis_name="batch",
    )
    inputs, targets = make_batch(8 * num_devices)

    def local_step(params, opt_state, inputs, targets, local_value):
        grads = jax.lax.pmean(jax.grad(loss_fn)(params, inputs, targets), "batch")
        updates, opt_state = tx.update(grads, opt_state, params, value=local_value[0])
        return optax.apply_updates(params, updates), opt_state

    train_step = jax.jit(
        jax.shard_map(
            local_step,
            mesh=mesh,
            in_specs=(P(), P(), P("batch"), P("batch"), P("batch")),
            out_specs=(P(), P()),
        )
    )
    split = NamedSharding(mesh, P("batch"))
    inputs, targets = jax.device_put((inputs, targets), split)
    params = jax.device_put(make_params(), NamedSharding(mesh, P()))
    opt_state = jax.device_put(tx.init(params), NamedSharding(mesh, P()))
    phases = []
    for t in range(values.shape[1]):
        local_values = jax.device_put(values[:, t], split)
        params, opt_state = jax.block_until_ready(
            train_step(params, opt_state, inputs, targets, local_values)
        )
        phases.append([int(osw.phase(opt_state))] * num_devices)
    check_replicas_agree(values, np.array(phases))
    for leaf in jax.tree.leaves((params, opt_state)):
        # out_specs P() would be wrong if replicas differed; check the shards.
        shards = [np.asarray(shard.data) for shard in leaf.addressable_shards]
        for shard in shards[1:]:
            np.testing.assert_array_equal(shard, shards[0])


def _check_state_shardings(opt_state, param_shardings, mesh) -> None:
    """State leaves under a param's name share its sharding; others replicate."""
    replicated = NamedSharding(mesh, P())
    for path, leaf in jax.tree_util.tree_flatten_with_path(opt_state)[0]:
        names = [getattr(key, "key", None) for key in path]
        expected = param_shardings.get(names[-1], replicated)
        assert leaf.sharding.is_equivalent_to(expected, leaf.ndim), (
            jax.tree_util.keystr(path),
            leaf.sharding,
            expected,
        )


def _mesh_run(
    param_specs: dict[str, P], axis_type: AxisType, execution: str = "branched"
) -> None:
    """Runs resets and switches under jit over a mesh; checks every sharding."""
    num_devices = jax.device_count()
    mesh = jax.make_mesh((num_devices,), ("data",), axis_types=(axis_type,))
    param_shardings = {
        name: NamedSharding(mesh, spec) for name, spec in param_specs.items()
    }
    data_sharding = NamedSharding(mesh, P("data"))
    tx = osw.switch_at(
        [
            osw.resettable(optax.adam(0.02), osw.every(2)),
            optax.sgd(0.02, momentum=0.9),
            optax.adam(0.01),
        ],
        [3, 5],
        execution=execution,
    )

    def train_step(params, opt_state, inputs, targets):
        loss, grads = jax.value_and_grad(loss_fn)(params, inputs, targets)
        updates, opt_state = tx.update(grads, opt_state, params, value=loss)
        return optax.apply_updates(params, updates), opt_state

    def optimizer_step(grads, opt_state, params):
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    def plain_train_step(params, opt_state, inputs, targets):
        grads = jax.grad(loss_fn)(params, inputs, targets)
        updates, opt_state = plain.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    plain = optax.adam(0.02)
    inputs, targets = make_batch(8 * num_devices)
    with jax.set_mesh(mesh):
        params = jax.device_put(make_params(), param_shardings)
        inputs = jax.device_put(inputs, data_sharding)
        targets = jax.device_put(targets, data_sharding)
        # Eager zeros_like keeps each param's sharding; under jit with
        # automatic axes, zeros that depend on no input would be replicated.
        opt_state = tx.init(params)
        state_shardings = jax.tree.map(lambda leaf: leaf.sharding, opt_state)
        _check_state_shardings(opt_state, param_shardings, mesh)

        # The loop below calls this executable itself: it runs only on inputs
        # of exactly these types and shardings, and can never recompile.
        compiled = (
            jax.jit(train_step, donate_argnums=(0, 1))
            .lower(params, opt_state, inputs, targets)
            .compile()
        )
        # Params and state leave the step sharded as they entered it, so the
        # next step (and a donation) takes them as they are.
        in_shardings = compiled.input_shardings[0][:2]
        for leaf, got, want in zip(
            jax.tree.leaves((params, opt_state)),
            jax.tree.leaves(compiled.output_shardings),
            jax.tree.leaves(in_shardings),
        ):
            assert got.is_equivalent_to(want, leaf.ndim), (got, want)

        # The combinator adds no collective to the step: the same step with
        # plain Adam has exactly the same ones (the gradient's reductions).
        plain_compiled = (
            jax.jit(plain_train_step)
            .lower(params, jax.jit(plain.init)(params), inputs, targets)
            .compile()
        )
        assert collective_counts(compiled.as_text()) == collective_counts(
            plain_compiled.as_text()
        ), (
            collective_counts(compiled.as_text()),
            collective_counts(plain_compiled.as_text()),
        )
        # The optimizer alone, on grads sharded like the params, communicates
        # nothing at all: no resharding, no gathering.
        grads = jax.tree.map(jnp.ones_like, params)
        optimizer_text = (
            jax.jit(optimizer_step).lower(grads, opt_state, params).compile().as_text()
        )
        assert collective_counts(optimizer_text) == {}, collective_counts(
            optimizer_text
        )

        resets = []
        for t in range(7):
            if t == 1:
                opt_state = osw.request_reset(opt_state)
            params, opt_state = jax.block_until_ready(
                compiled(params, opt_state, inputs, targets)
            )
            resets.append(int(osw.reset_count(opt_state)))
            _check_state_shardings(opt_state, param_shardings, mesh)
            for got, want in zip(
                jax.tree.leaves(opt_state), jax.tree.leaves(state_shardings)
            ):
                assert got.sharding.is_equivalent_to(want, got.ndim)
    assert int(osw.phase(opt_state)) == 2
    # Requested on update 1, then every(2) on update 2; leaving phase 0 on
    # update 3 re-initializes it, the resettable's counter included.
    assert resets == [0, 1, 2, 0, 0, 0, 0], resets

    # The same run on one device, without any sharding.
    reference_step = jax.jit(train_step)
    reference_params = make_params()
    reference_state = tx.init(reference_params)
    inputs, targets = jax.device_get((inputs, targets))
    for t in range(7):
        if t == 1:
            reference_state = osw.request_reset(reference_state)
        reference_params, reference_state = reference_step(
            reference_params, reference_state, inputs, targets
        )
    for got, want in zip(
        jax.tree.leaves((params, opt_state)),
        jax.tree.leaves((reference_params, reference_state)),
    ):
        np.testing.assert_allclose(
            np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-6
        )


def mesh_data_parallel() -> None:
    """Replicated params, batch split over the mesh (explicit sharding)."""
    _mesh_run({"w1": P(), "w2": P(), "b": P()}, AxisType.Explicit)


def mesh_fsdp() -> None:
    """Params split over the mesh as FSDP does, batch split too."""
    _mesh_run({"w1": P("data", None), "w2": P("data"), "b": P()}, AxisType.Explicit)


def mesh_fsdp_leafwise() -> None:
    """FSDP with one conditional per phase and parameter leaf."""
    _mesh_run(
        {"w1": P("data", None), "w2": P("data"), "b": P()},
        AxisType.Explicit,
        execution="leafwise",
    )


def mesh_fsdp_fused() -> None:
    """FSDP with every phase run and selected: what "auto" runs on a GPU."""
    _mesh_run(
        {"w1": P("data", None), "w2": P("data"), "b": P()},
        AxisType.Explicit,
        execution="fused",
    )


def mesh_fsdp_auto_axes() -> None:
    """FSDP under automatic (GSPMD) sharding propagation."""
    _mesh_run({"w1": P("data", None), "w2": P("data"), "b": P()}, AxisType.Auto)


def explicit_axes_eager_updates() -> None:
    """Outside jit, under set_mesh with Explicit axes, every combinator keeps
    each state leaf's type (sharding included) through resets and switches,
    as optax's own sharding tests check for bare optimizers."""
    mesh = jax.make_mesh((2,), ("x",), axis_types=(AxisType.Explicit,))
    with jax.set_mesh(mesh):
        params = {
            "w": jax.device_put(
                jnp.arange(16.0).reshape(2, 8), NamedSharding(mesh, P(None, "x"))
            ),
            "b": jax.device_put(jnp.ones(4), NamedSharding(mesh, P())),
        }
        adam, sgd = optax.adam(0.1), optax.sgd(0.1, momentum=0.9)
        for tx in (
            osw.resettable(adam, osw.every(2)),
            osw.resettable(adam, osw.every(2), fields=("mu",)),
            osw.switch_at([adam, sgd], [2]),
            osw.switch_at([adam, sgd], [2], share_memory=True),
            osw.switch_at([adam, sgd], [2], execution="fused"),
            osw.switch_at([adam, sgd], [2], execution="leafwise"),
            osw.switch([adam, sgd], osw.every(2), cycle=True),
        ):
            state = tx.init(params)
            types = [jax.typeof(leaf) for leaf in jax.tree.leaves(state)]
            for _ in range(5):
                updates, state = tx.update(params, state, params)
                assert [jax.typeof(leaf) for leaf in jax.tree.leaves(state)] == types
                assert jax.tree.map(jax.typeof, updates) == jax.tree.map(
                    jax.typeof, params
                )


SCENARIOS = {
    scenario.__name__: scenario
    for scenario in (
        pmap_value_argument,
        pmap_value_argument_fused,
        pmap_observe,
        shard_map_value_argument,
        mesh_data_parallel,
        mesh_fsdp,
        mesh_fsdp_leafwise,
        mesh_fsdp_fused,
        mesh_fsdp_auto_axes,
        explicit_axes_eager_updates,
    )
}

if __name__ == "__main__":
    expected_devices, names = int(sys.argv[1]), sys.argv[2:]
    assert jax.device_count() == expected_devices, jax.devices()
    for name in names:
        started = time.perf_counter()
        try:
            SCENARIOS[name]()
            result = {"scenario": name, "ok": True}
        except Exception:  # noqa: BLE001 - reported to the test, which fails.
            result = {"scenario": name, "ok": False, "error": traceback.format_exc()}
        result["seconds"] = round(time.perf_counter() - started, 1)
        print(RESULT_PREFIX + json.dumps(result), flush=True)

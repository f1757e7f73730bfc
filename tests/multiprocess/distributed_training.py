"""Data-parallel training in a real multi-process job, for ``test_multiprocess.py``.

``python distributed_training.py train|resume DIRECTORY``, started once per
process by :func:`launcher.run_job`. Each process holds different local
data (its share of every global batch, its own validation set) and trains
two models on 2 processes x 2 CPU devices:

- ``plateau``: ``switch_on_plateau([adam, sgd])`` on a mesh with explicit
  axes (``jax.make_mesh``'s default), fed each process's own host-side
  validation loss through ``osw.observe(..., across_processes="mean")``;
- ``periodic``: ``resettable(adam, every(3))`` on a mesh with automatic axes.

``train`` runs ``NUM_STEPS`` updates, checkpointing both models with one
Orbax ``CheckpointManager`` from every process at ``SAVE_STEPS``, then process
1 dies (SIGKILL) and process 0 saves once more: it must end with an error. ``resume``
starts fresh processes that restore the last complete checkpoint and run to
``NUM_STEPS``. Neither trains under ``jax.set_mesh``. Each process reports, per
update, its phase, reset count, local validation loss and a checksum of every
param and state byte on its devices, and the compiles of each train step.
"""

import hashlib
import os
import pathlib
import signal
import sys

import jax
import jax.numpy as jnp
from jax.sharding import AxisType
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import numpy as np
import optax
import orbax.checkpoint as ocp
import worker  # The launcher's worker side, beside this file.

import optaxswap as osw

NUM_STEPS = 18
SAVE_STEPS = (12, 13)
RESET_EVERY = 3
NUM_FEATURES = 4
EXAMPLES_PER_PROCESS = 16
TRUE_WEIGHTS = np.array([1.0, -2.0, 0.5, 3.0], np.float32)
MODELS = ("plateau", "periodic")


def make_transform(model: str) -> optax.GradientTransformationExtraArgs:
    if model == "plateau":
        return osw.switch_on_plateau(
            [optax.adam(0.3), optax.sgd(0.05, momentum=0.9)],
            patience=2,
            cooldown=1,
            rtol=0.02,
        )
    return osw.resettable(optax.adam(0.3), osw.every(RESET_EVERY))


def make_mesh(model: str) -> jax.sharding.Mesh:
    axis_type = AxisType.Explicit if model == "plateau" else AxisType.Auto
    return jax.make_mesh((jax.device_count(),), ("data",), axis_types=(axis_type,))


def local_examples(split: int) -> tuple[np.ndarray, np.ndarray]:
    """This process's own examples: training (split 0) or validation (1).

    Each process's validation targets are offset differently, so that each
    process's own validation loss stops improving at another update.
    """
    process = jax.process_index()
    rng = np.random.default_rng([process, split])
    inputs = rng.normal(size=(EXAMPLES_PER_PROCESS, NUM_FEATURES)).astype(np.float32)
    targets = inputs @ TRUE_WEIGHTS + 0.1 * rng.normal(size=EXAMPLES_PER_PROCESS)
    if split == 1:
        targets += 1.5 * process
    return inputs, targets.astype(np.float32)


def loss_fn(params, inputs, targets) -> jax.Array:
    return jnp.mean((inputs @ params["w"] + params["b"] - targets) ** 2)


def initial_params(mesh: jax.sharding.Mesh) -> dict[str, jax.Array]:
    params = {"w": np.zeros(NUM_FEATURES, np.float32), "b": np.zeros((), np.float32)}
    return jax.device_put(params, NamedSharding(mesh, P()))


def global_batch(mesh: jax.sharding.Mesh) -> tuple[jax.Array, jax.Array]:
    """One global batch, of which each process holds its own examples."""
    split = NamedSharding(mesh, P("data"))
    inputs, targets = local_examples(split=0)
    return (
        jax.make_array_from_process_local_data(split, inputs),
        jax.make_array_from_process_local_data(split, targets),
    )


def make_train_step(model: str, tx: optax.GradientTransformation):
    def train_step(params, opt_state, inputs, targets):
        grads = jax.grad(loss_fn)(params, inputs, targets)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    train_step.__name__ = f"{model}_step"
    return jax.jit(train_step)


@jax.jit
def evaluate(params, inputs, targets) -> jax.Array:
    return loss_fn(params, inputs, targets)


def local_validation_loss(params) -> float:
    """The naive per-process metric: this process's validation set, on the host."""
    return float(evaluate(jax.device_get(params), *local_examples(split=1)))


def checksum(tree) -> str:
    """A hash of every byte of every leaf on this process's devices."""
    digest = hashlib.sha256()
    for leaf in jax.tree.leaves(tree):
        for shard in leaf.addressable_shards:
            digest.update(np.asarray(shard.data).tobytes())
    return digest.hexdigest()[:16]


class Run:
    """Both models' params and states, trained and reported together."""

    def __init__(self):
        self.transforms = {model: make_transform(model) for model in MODELS}
        self.meshes = {model: make_mesh(model) for model in MODELS}
        self.batches = {model: global_batch(self.meshes[model]) for model in MODELS}
        self.steps = {
            model: make_train_step(model, self.transforms[model]) for model in MODELS
        }
        self.tree = {
            model: {
                "params": initial_params(self.meshes[model]),
                "opt_state": None,
            }
            for model in MODELS
        }
        for model in MODELS:
            params = self.tree[model]["params"]
            self.tree[model]["opt_state"] = self.transforms[model].init(params)
        self.history = {"phase": {}, "resets": {}, "value": {}, "checksum": {}}

    def abstract_tree(self):
        """The restore target: ``jax.eval_shape`` of the params and ``init``."""

        def build(params):
            return {
                model: {
                    "params": params[model],
                    "opt_state": self.transforms[model].init(params[model]),
                }
                for model in MODELS
            }

        return jax.eval_shape(
            build, {model: self.tree[model]["params"] for model in MODELS}
        )

    def update(self, t: int) -> None:
        """Update ``t`` (0-based) of both models; then the plateau's metric."""
        for model in MODELS:
            params, opt_state = self.steps[model](
                self.tree[model]["params"],
                self.tree[model]["opt_state"],
                *self.batches[model],
            )
            self.tree[model] = jax.block_until_ready(
                {"params": params, "opt_state": opt_state}
            )
        plateau = self.tree["plateau"]
        value = local_validation_loss(plateau["params"])
        plateau["opt_state"] = jax.block_until_ready(
            osw.observe(plateau["opt_state"], value, across_processes="mean")
        )
        self.history["phase"][t] = int(osw.phase(plateau["opt_state"]))
        self.history["resets"][t] = int(
            osw.reset_count(self.tree["periodic"]["opt_state"])
        )
        self.history["value"][t] = value
        self.history["checksum"][t] = checksum(self.tree)

    def placed_as(self, tree) -> bool:
        """Whether every leaf is placed as the same leaf of ``tree``."""
        return all(
            leaf.sharding.is_equivalent_to(other.sharding, leaf.ndim)
            for leaf, other in zip(jax.tree.leaves(self.tree), jax.tree.leaves(tree))
        )


def naive_metric_checks(run: Run) -> dict[str, object]:
    """``observe`` given per-process values, equal values and a global array."""
    opt_state = run.tree["plateau"]["opt_state"]
    params = run.tree["plateau"]["params"]
    try:
        osw.observe(opt_state, local_validation_loss(params))
        differing = None
    except ValueError as error:
        differing = str(error)
    try:
        osw.observe(opt_state, np.asarray(jax.process_index(), jnp.bfloat16))
        differing_bfloat16 = None
    except ValueError as error:
        differing_bfloat16 = str(error)
    # The same value everywhere passes the check, as does a global array (the
    # loss over the global batch, from a jitted function).
    osw.observe(opt_state, 1.0)
    global_loss = evaluate(params, *run.batches["plateau"])
    assert not global_loss.is_fully_addressable
    osw.observe(opt_state, global_loss)
    return {
        "differing_error": differing,
        "differing_bfloat16_error": differing_bfloat16,
    }


def host_evaluation_under_set_mesh(run: Run) -> dict[str, object]:
    """What a jitted function of process-local arrays does under ``set_mesh``."""
    mesh = run.meshes["plateau"]
    local_params = jax.device_get(run.tree["plateau"]["params"])
    local_data = local_examples(split=1)
    outside = float(evaluate(local_params, *local_data))
    params, inputs, targets = jax.device_put(
        (local_params, *local_data), jax.local_devices()[0]
    )
    with jax.set_mesh(mesh):
        try:
            evaluate(params, inputs, targets)
            committed_error = None
        except ValueError as error:
            committed_error = str(error)
        from_numpy = evaluate(local_params, *local_data)
    return {
        "committed_error": committed_error,
        "numpy_result_is_global": not from_numpy.is_fully_addressable,
        "numpy_result_is_own_value": float(from_numpy) == outside,
    }


def train(directory: pathlib.Path) -> None:
    compiles = worker.count_compiles()
    run = Run()
    checks = naive_metric_checks(run) | host_evaluation_under_set_mesh(run)
    initial_tree = run.tree
    options = ocp.CheckpointManagerOptions(max_to_keep=None)
    with ocp.CheckpointManager(directory, options=options) as manager:
        for t in range(NUM_STEPS):
            run.update(t)
            if t + 1 in SAVE_STEPS:
                manager.save(t + 1, args=ocp.args.StandardSave(run.tree))
                manager.wait_until_finished()
                trigger = run.tree["plateau"]["opt_state"].trigger_state
                checks[f"trigger_at_save_{t + 1}"] = {
                    "bad_count": int(trigger.bad_count),
                    "cooldown_count": int(trigger.cooldown_count),
                    "pending": bool(trigger.pending),
                }
        worker.report(
            process=jax.process_index(),
            history=run.history,
            compiles={model: compiles[f"jit({model}_step)"] for model in MODELS},
            placements_kept=run.placed_as(initial_tree),
            **checks,
        )
        # A peer dies; the survivor's save waits for it in vain.
        if jax.process_index() == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        manager.save(NUM_STEPS, args=ocp.args.StandardSave(run.tree))
        manager.wait_until_finished()
        run.update(NUM_STEPS)
    print("SURVIVED", flush=True)


def resume(directory: pathlib.Path) -> None:
    compiles = worker.count_compiles()
    run = Run()
    fresh_tree = run.tree
    with ocp.CheckpointManager(directory) as manager:
        restored_step = manager.latest_step()
        run.tree = osw.restore_checkpoint(manager, run.abstract_tree())
    placements_exact = run.placed_as(fresh_tree)
    for t in range(restored_step, NUM_STEPS):
        run.update(t)
    worker.report(
        process=jax.process_index(),
        restored_step=restored_step,
        placements_exact=placements_exact,
        history=run.history,
        compiles={model: compiles[f"jit({model}_step)"] for model in MODELS},
    )


if __name__ == "__main__":
    worker.initialize()
    {"train": train, "resume": resume}[sys.argv[1]](pathlib.Path(sys.argv[2]))

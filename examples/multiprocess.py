"""Multi-process training on one machine: every process switches optimizer together.

``python examples/multiprocess.py --processes 2`` starts two processes on this
machine that form one ``jax.distributed`` job, with 2 CPU devices each, as
one process per host (or per GPU) forms one on a cluster. They train a small
regression model, data-parallel over a mesh of all 4 devices, with
``osw.switch_on_plateau([adam, sgd with momentum])``:

- each process holds its own share of every global batch
  (``jax.make_array_from_process_local_data``) and its own validation set;
- each process computes the loss of its own validation set on the host, and
  ``osw.observe(..., across_processes="mean")`` averages it over the
  processes, so all of them switch at the same step (by default ``observe``
  refuses values that differ between processes);
- at the end every process saves its part of one Orbax checkpoint, restores
  it into ``jax.eval_shape(tx.init, params)`` and checks it is identical.

Each process prints the step at which it switched, then its phase and a
checksum of every byte of its params and optimizer state: all equal.
"""

import argparse
from collections.abc import Sequence
import hashlib
import os
import socket
import subprocess
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import numpy as np
import optax
import orbax.checkpoint as ocp

import optaxswap as osw

NUM_FEATURES = 4
EXAMPLES_PER_PROCESS = 32
TRUE_WEIGHTS = np.array([1.0, -2.0, 0.5, 3.0], np.float32)


def local_examples(split: int) -> tuple[np.ndarray, np.ndarray]:
    """This process's own examples: training (split 0) or validation (1)."""
    rng = np.random.default_rng([jax.process_index(), split])
    inputs = rng.normal(size=(EXAMPLES_PER_PROCESS, NUM_FEATURES)).astype(np.float32)
    noise = rng.normal(size=EXAMPLES_PER_PROCESS).astype(np.float32)
    # Each process's validation set is noisier than the last: alone, each
    # process's validation loss would stop improving at another step.
    scale = 0.1 + split * jax.process_index()
    return inputs, inputs @ TRUE_WEIGHTS + scale * noise


def loss_fn(params, inputs, targets) -> jax.Array:
    return jnp.mean((inputs @ params["w"] + params["b"] - targets) ** 2)


@jax.jit
def evaluate(params, inputs, targets) -> jax.Array:
    return loss_fn(params, inputs, targets)


def checksum(tree) -> str:
    """A hash of every byte of every leaf on this process's devices."""
    digest = hashlib.sha256()
    for leaf in jax.tree.leaves(tree):
        for shard in leaf.addressable_shards:
            digest.update(np.asarray(shard.data).tobytes())
    return digest.hexdigest()[:16]


def train(args: argparse.Namespace) -> None:
    # A CPU-only machine gets 2 devices per process; on GPUs, drop this line.
    jax.config.update("jax_num_cpu_devices", 2)
    jax.distributed.initialize(
        coordinator_address=args.coordinator,
        num_processes=args.processes,
        process_id=args.process_id,
        coordinator_bind_address=args.coordinator,
    )
    name = f"process {jax.process_index()}"

    mesh = jax.make_mesh((jax.device_count(),), ("data",))
    replicated = NamedSharding(mesh, P())
    split = NamedSharding(mesh, P("data"))
    # The same initial params on every process, placed on the global mesh.
    params = jax.device_put(
        {"w": np.zeros(NUM_FEATURES, np.float32), "b": np.zeros((), np.float32)},
        replicated,
    )
    # One global batch, of which each process holds its own examples.
    train_inputs, train_targets = local_examples(split=0)
    inputs = jax.make_array_from_process_local_data(split, train_inputs)
    targets = jax.make_array_from_process_local_data(split, train_targets)
    validation = local_examples(split=1)

    tx = osw.switch_on_plateau(
        [optax.adam(0.3), optax.sgd(0.05, momentum=0.9)], patience=2, rtol=0.02
    )
    opt_state = tx.init(params)

    @jax.jit
    def train_step(params, opt_state, inputs, targets):
        grads = jax.grad(loss_fn)(params, inputs, targets)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    switched_on = None
    for step in range(args.steps):
        # jax.set_mesh only around the step on global arrays: under it, a
        # jitted function of this process's own arrays fails (arrays committed
        # to one device) or returns an array typed as global (NumPy inputs).
        with jax.set_mesh(mesh):
            params, opt_state = jax.block_until_ready(
                train_step(params, opt_state, inputs, targets)
            )
        if switched_on is None and osw.phase(opt_state) == 1:
            switched_on = step
            print(f"{name}: update {step} switched to SGD", flush=True)
        # This process's own validation loss, computed on the host from a
        # NumPy copy of the (replicated) params.
        local_loss = float(evaluate(jax.device_get(params), *validation))
        opt_state = osw.observe(opt_state, local_loss, across_processes="mean")

    print(
        f"{name}: phase {int(osw.phase(opt_state))},"
        f" checksum {checksum((params, opt_state))}",
        flush=True,
    )
    check_checkpoint_round_trip(args.checkpoint_dir, tx, params, opt_state, name)


def check_checkpoint_round_trip(directory, tx, params, opt_state, name) -> None:
    with ocp.CheckpointManager(directory) as manager:
        # Every process saves (its shards of) the same checkpoint.
        manager.save(1, args=ocp.args.StandardSave(opt_state))
        manager.wait_until_finished()
    with ocp.CheckpointManager(directory) as manager:
        restored = osw.restore_checkpoint(manager, jax.eval_shape(tx.init, params))
    same = checksum(restored) == checksum(opt_state)
    print(f"{name}: restored the checkpoint, identical: {same}", flush=True)


def launch(args: argparse.Namespace) -> int:
    """Starts ``args.processes`` copies of this script as one job; their status.

    Each worker writes to files of its own, relayed here once every worker
    has ended, process 0 first: output of several processes sharing one
    terminal (or pipe) interleaves, and Gloo's connection messages are
    written in pieces.
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    directory = tempfile.mkdtemp()
    checkpoint_dir = os.path.join(directory, "checkpoints")
    logs = [
        tuple(
            open(os.path.join(directory, f"process-{process_id}.{stream}"), "w+")
            for stream in ("out", "err")
        )
        for process_id in range(args.processes)
    ]
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                f"--processes={args.processes}",
                f"--steps={args.steps}",
                f"--process-id={process_id}",
                f"--coordinator=127.0.0.1:{port}",
                f"--checkpoint-dir={checkpoint_dir}",
            ],
            stdout=out,
            stderr=err,
        )
        for process_id, (out, err) in enumerate(logs)
    ]
    deadline = time.monotonic() + args.timeout
    while any(worker.poll() is None for worker in workers):
        failed = any(worker.poll() not in (None, 0) for worker in workers)
        if failed or time.monotonic() > deadline:
            break  # The others would wait for the failed one in vain.
        time.sleep(0.1)
    for worker in workers:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    for out, err in logs:
        for log, stream in ((out, sys.stdout), (err, sys.stderr)):
            log.seek(0)
            stream.write(log.read())
            stream.flush()
            log.close()
    return 0 if all(worker.returncode == 0 for worker in workers) else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds")
    # Set by launch() for each worker process.
    parser.add_argument("--process-id", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--coordinator", help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint-dir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.process_id is None:
        return launch(args)
    train(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

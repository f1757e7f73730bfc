"""A training process for the checkpoint fault tests, run as a subprocess.

``python train_and_checkpoint.py DIRECTORY NUM_STEPS SAVE_EVERY`` trains and
saves ``{"params", "opt_state"}`` with an Orbax ``CheckpointManager`` every
``SAVE_EVERY`` updates, printing ``SAVING <step>`` as each (asynchronous)
save starts, so the test can kill it with SIGKILL while a save is in flight.
The test imports the same functions to build the uninterrupted reference run.
"""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp

import optaxswap as osw

# Large enough that writing one checkpoint takes a while (several arrays of
# 8 MiB of incompressible floats), so a kill lands mid-save.
SIZE = 2**21
BOUNDARY = 3


def build_transform() -> optax.GradientTransformationExtraArgs:
    """Adam, then SGD with momentum whose momentum is reset every 3 updates."""
    return osw.switch_at(
        [
            optax.adam(1e-3),
            osw.resettable(optax.sgd(1e-2, momentum=0.9), osw.every(3)),
        ],
        boundaries=[BOUNDARY],
    )


def initial_state(tx: optax.GradientTransformation) -> dict:
    rng = np.random.default_rng(0)
    params = {"w": jnp.asarray(rng.normal(size=SIZE).astype(np.float32))}
    return {"params": params, "opt_state": tx.init(params)}


def make_step(tx: optax.GradientTransformation):
    @jax.jit
    def step(state: dict) -> dict:
        params = state["params"]
        grads = jax.grad(lambda p: jnp.sum(jnp.cos(p["w"]) + 0.1 * p["w"] ** 2))(params)
        updates, opt_state = tx.update(grads, state["opt_state"], params)
        return {"params": optax.apply_updates(params, updates), "opt_state": opt_state}

    return step


def train(directory: str, num_steps: int, save_every: int) -> None:
    tx = build_transform()
    step = make_step(tx)
    state = initial_state(tx)
    options = ocp.CheckpointManagerOptions(
        save_interval_steps=save_every, max_to_keep=None
    )
    with ocp.CheckpointManager(directory, options=options) as manager:
        for t in range(1, num_steps + 1):
            state = step(state)
            if manager.save(t, args=ocp.args.StandardSave(state)):
                print(f"SAVING {t}", flush=True)
        manager.wait_until_finished()
    print("DONE", flush=True)


if __name__ == "__main__":
    train(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))

"""Orbax: resume a switching run bit for bit; continue a plain Adam checkpoint.

Part 1. A run under ``osw.switch_on_plateau([adam, sgd, adam])`` saves a
checkpoint every ``--save-every`` steps with ``ocp.CheckpointManager`` and is
interrupted between two saves, half-way through: with the default 400 steps,
in the middle of phase 1 and of the plateau cooldown that began with it (the
output shows the cooldown left). A fresh manager restores the latest
checkpoint with ``osw.restore_checkpoint`` against ``jax.eval_shape`` of the
initial state, and the run continues exactly as the uninterrupted run, bit
for bit, through the switch to phase 2 that comes after the restore.

Part 2. A run that trained with plain ``optax.adam`` and saved its state goes
on under ``osw.switch_on_plateau([adam, sgd])``: ``osw.wrap_state`` puts the
restored Adam state (moments and step count) into phase 0.

Run ``python examples/orbax_resume.py`` (about 10 s on 2 CPU cores), or
``--fast`` for a smoke run of 400 steps whatever ``--steps`` says.
Checkpoints go to a temporary directory unless ``--directory`` is given.
"""

import argparse
from collections.abc import Sequence
import os
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp

import optaxswap as osw

ADAM = optax.adam(5e-2)
SWITCHING = osw.switch_on_plateau(
    [ADAM, optax.sgd(5e-2, momentum=0.9), optax.adam(1e-3)],
    patience=2,
    cooldown=5,
    rtol=2e-2,
    accumulation_size=10,
)


def make_data(key: jax.Array, num_examples: int = 256):
    input_key, noise_key = jax.random.split(key)
    inputs = jax.random.uniform(input_key, (num_examples, 1), minval=-2, maxval=2)
    targets = jnp.sin(2 * inputs[:, 0]) + 0.1 * jax.random.normal(
        noise_key, (num_examples,)
    )
    return inputs, targets


def init_params(key: jax.Array) -> dict[str, jax.Array]:
    hidden_key, out_key = jax.random.split(key)
    return {
        "hidden": jax.random.normal(hidden_key, (1, 32)),
        "hidden_bias": jnp.zeros(32),
        "out": jax.random.normal(out_key, (32,)) / jnp.sqrt(32.0),
        "out_bias": jnp.zeros(()),
    }


def loss_fn(params, inputs, targets) -> jax.Array:
    hidden = jnp.tanh(inputs @ params["hidden"] + params["hidden_bias"])
    predictions = hidden @ params["out"] + params["out_bias"]
    return jnp.mean((predictions - targets) ** 2)


def make_train_step(tx: optax.GradientTransformationExtraArgs):
    @jax.jit
    def train_step(params, opt_state, inputs, targets):
        loss, grads = jax.value_and_grad(loss_fn)(params, inputs, targets)
        updates, opt_state = tx.update(grads, opt_state, params, value=loss)
        return optax.apply_updates(params, updates), opt_state

    return train_step


def train(train_step, params, opt_state, data, steps, manager=None, save_every=1):
    """Runs ``steps`` (a range); prints each switch; saves if given a manager."""
    for step in steps:
        phase_before = int(osw.phase(opt_state))
        params, opt_state = train_step(params, opt_state, *data)
        if int(osw.phase(opt_state)) != phase_before:
            print(f"  step {step}: switched to phase {int(osw.phase(opt_state))}")
        if manager is not None and (step + 1) % save_every == 0:
            state = {"params": params, "opt_state": opt_state}
            manager.save(step + 1, args=ocp.args.StandardSave(state))
    return params, opt_state


def resume_mid_phase(directory: str, num_steps: int, save_every: int) -> bool:
    data = make_data(jax.random.key(0))
    # A restore returns arrays committed to a device, and jit caches on that:
    # placing the initial arrays the same way lets the restored run reuse the
    # compiled step.
    device = jax.devices()[0]
    params = jax.device_put(init_params(jax.random.key(1)), device)
    initial_state = jax.device_put(SWITCHING.init(params), device)
    train_step = make_train_step(SWITCHING)

    print("uninterrupted run:")
    expected = train(train_step, params, initial_state, data, range(num_steps))

    interrupted_at = num_steps // 2 + save_every // 2
    print(f"interrupted run (stops at step {interrupted_at}):")
    options = ocp.CheckpointManagerOptions(max_to_keep=2)
    with ocp.CheckpointManager(directory, options=options) as manager:
        train(
            train_step,
            params,
            initial_state,
            data,
            range(interrupted_at),
            manager=manager,
            save_every=save_every,
        )
        manager.wait_until_finished()

    abstract = jax.eval_shape(
        lambda params: {"params": params, "opt_state": SWITCHING.init(params)},
        params,
    )
    with ocp.CheckpointManager(directory, options=options) as manager:
        step = manager.latest_step()
        restored = osw.restore_checkpoint(manager, abstract)
    plateau = restored["opt_state"].trigger_state
    print(
        f"restored step {step}: phase {int(osw.phase(restored['opt_state']))},"
        f" cooldown left {int(plateau.cooldown_count)}, continuing:"
    )
    resumed = train(
        train_step,
        restored["params"],
        restored["opt_state"],
        data,
        range(step, num_steps),
    )
    identical = all(
        np.array_equal(got, want)
        for got, want in zip(jax.tree.leaves(resumed), jax.tree.leaves(expected))
    )
    print(f"resumed run equals the uninterrupted run bit for bit: {identical}")
    return identical


def continue_adam_run(directory: str, num_steps: int) -> int | None:
    data = make_data(jax.random.key(0))
    params = init_params(jax.random.key(1))
    adam_state = ADAM.init(params)
    adam_steps = num_steps // 4

    @jax.jit
    def adam_step(params, adam_state):
        grads = jax.grad(loss_fn)(params, *data)
        updates, adam_state = ADAM.update(grads, adam_state)
        return optax.apply_updates(params, updates), adam_state

    for _ in range(adam_steps):
        params, adam_state = adam_step(params, adam_state)
    path = os.path.join(directory, "plain_adam")
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(path, {"params": params, "opt_state": adam_state})
        checkpointer.wait_until_finished()

    abstract = jax.eval_shape(
        lambda params: {"params": params, "opt_state": ADAM.init(params)}, params
    )
    restored = osw.restore_checkpoint(path, abstract)
    tx = osw.switch_on_plateau(
        [ADAM, optax.sgd(5e-2, momentum=0.9)],
        patience=2,
        rtol=2e-2,
        accumulation_size=10,
    )
    params = restored["params"]
    opt_state = osw.wrap_state(tx, params, restored["opt_state"], count=adam_steps)
    print(
        f"plain Adam checkpoint after {adam_steps} steps, continued under"
        f" switch_on_plateau (Adam's count carries on:"
        f" {int(optax.tree.get(opt_state, 'ScaleByAdamState').count)}):"
    )
    train_step = make_train_step(tx)
    switched_at = None
    for step in range(adam_steps, num_steps):
        params, opt_state = train_step(params, opt_state, *data)
        if switched_at is None and int(osw.phase(opt_state)) == 1:
            switched_at = step
            print(f"  step {step}: switched from Adam to SGD")
    return switched_at


def main(argv: Sequence[str] | None = None) -> dict[str, bool | int | None]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="a short smoke run")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--save-every", type=int, default=50)
    parser.add_argument("--directory", help="where checkpoints go (absolute)")
    args = parser.parse_args(argv)
    num_steps = 400 if args.fast else args.steps

    with tempfile.TemporaryDirectory() as scratch:
        # Orbax needs absolute paths.
        directory = os.path.abspath(args.directory or scratch)
        identical = resume_mid_phase(
            os.path.join(directory, "run"), num_steps, args.save_every
        )
        switched_at = continue_adam_run(directory, num_steps)
    return {"bit_for_bit": identical, "adam_run_switched_at": switched_at}


if __name__ == "__main__":
    main()

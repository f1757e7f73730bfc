"""Logging ``osw.summary``: why hasn't it switched yet?

A linear regression trains with Adam, then SGD with momentum once the
validation loss stops improving. After each epoch the validation loss goes to
``osw.observe`` and the whole optimizer state is logged with
``osw.summary``: a flat dict of scalars (the phase, the update count, the
plateau's best value, bad-observation count and cooldown left...), keyed by
its path in the state, the shape that TensorBoard, Weights & Biases and CLU
metric writers take. Here it is printed; with CLU, for one, it would be
``writer.write_scalars(step, osw.summary(opt_state))``.

``summary`` is jittable: computed inside the train step, it costs no host
transfer until it is read.

Run ``python examples/log_summary.py``, or ``--fast`` for a smoke run.
"""

import argparse
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import optax

import optaxswap as osw


def make_data(key: jax.Array, num_examples: int):
    input_key, noise_key = jax.random.split(key)
    inputs = jax.random.normal(input_key, (num_examples, 8))
    weights = jnp.linspace(-1.0, 1.0, 8)
    targets = inputs @ weights + 0.3 * jax.random.normal(noise_key, (num_examples,))
    return inputs, targets


def loss_fn(params, inputs, targets):
    return jnp.mean((inputs @ params["w"] + params["b"] - targets) ** 2)


def main(argv: Sequence[str] | None = None) -> dict[str, float | int | bool]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="a short smoke run")
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args(argv)
    num_epochs = 12 if args.fast else args.epochs

    train_x, train_y = make_data(jax.random.key(0), 512)
    val_x, val_y = make_data(jax.random.key(1), 256)
    tx = optax.chain(
        optax.clip_by_global_norm(1.0),
        osw.switch_on_plateau(
            [optax.adam(0.05), optax.sgd(0.01, momentum=0.9)], patience=2, rtol=1e-3
        ),
    )
    params = {"w": jnp.zeros(8), "b": jnp.zeros(())}
    opt_state = tx.init(params)

    @jax.jit
    def train_epoch(params, opt_state):
        def step(carry, batch):
            params, opt_state = carry
            grads = jax.grad(loss_fn)(params, *batch)
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), None

        batches = (train_x.reshape(16, 32, 8), train_y.reshape(16, 32))
        (params, opt_state), _ = jax.lax.scan(step, (params, opt_state), batches)
        val_loss = loss_fn(params, val_x, val_y)
        opt_state = osw.observe(opt_state, val_loss)
        # Inside the step: the dict is read on the host only when logged.
        return params, opt_state, val_loss, osw.summary(opt_state)

    for epoch in range(num_epochs):
        params, opt_state, val_loss, summary = train_epoch(params, opt_state)
        logged = {key: value.item() for key, value in jax.device_get(summary).items()}
        print(f"epoch {epoch}: val_loss {float(val_loss):.4f} {logged}")
    return logged


if __name__ == "__main__":
    main()

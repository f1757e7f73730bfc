"""Flax linen: a ``TrainState`` whose optimizer switches to SGD on a plateau.

A small MLP fits a noisy regression with ``flax.training.train_state``. The
optimizer is ``osw.switch_on_plateau([adam, sgd with momentum])``, watching
the training loss of every step (averaged over ``accumulation_size`` steps).

``TrainState.apply_gradients`` cannot pass ``value=`` to the optimizer, so the
step feeds the loss with ``osw.observe`` on ``state.opt_state`` right before
``apply_gradients``: exactly what ``value=`` on that update would do. The
switch is decided inside the compiled step, which compiles once.

Run ``python examples/flax_linen.py``, or ``--fast`` for a smoke run. It
prints the step at which the optimizer switched and the loss along the way.
"""

import argparse
from collections.abc import Sequence

from flax import linen as nn
from flax.training import train_state
import jax
import jax.numpy as jnp
import optax

import optaxswap as osw


class MLP(nn.Module):
    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = nn.tanh(nn.Dense(32)(x))
        return nn.Dense(1)(x)[:, 0]


def make_data(key: jax.Array, num_examples: int = 256):
    input_key, noise_key = jax.random.split(key)
    inputs = jax.random.uniform(input_key, (num_examples, 1), minval=-2, maxval=2)
    targets = jnp.sin(2 * inputs[:, 0]) + 0.1 * jax.random.normal(
        noise_key, (num_examples,)
    )
    return inputs, targets


@jax.jit
def train_step(state: train_state.TrainState, inputs, targets):
    def loss_fn(params):
        predictions = state.apply_fn(params, inputs)
        return jnp.mean((predictions - targets) ** 2)

    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    # TrainState.apply_gradients cannot forward value= to tx.update; observing
    # the loss first is the same thing, decided inside this compiled step.
    state = state.replace(opt_state=osw.observe(state.opt_state, loss))
    return state.apply_gradients(grads=grads), loss


def main(argv: Sequence[str] | None = None) -> dict[str, float | int | None]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="a short smoke run")
    parser.add_argument("--steps", type=int, default=2000)
    args = parser.parse_args(argv)
    num_steps = 300 if args.fast else args.steps

    inputs, targets = make_data(jax.random.key(0))
    model = MLP()
    tx = osw.switch_on_plateau(
        [optax.adam(5e-2), optax.sgd(5e-2, momentum=0.9)],
        patience=2,
        rtol=2e-2,
        accumulation_size=10,
    )
    state = train_state.TrainState.create(
        apply_fn=model.apply, params=model.init(jax.random.key(1), inputs), tx=tx
    )

    switched_at = None
    for step in range(num_steps):
        state, loss = train_step(state, inputs, targets)
        if switched_at is None and int(osw.phase(state.opt_state)) == 1:
            switched_at = step
            print(f"step {step}: loss plateaued, switched from Adam to SGD")
        if step % (num_steps // 5) == 0:
            print(f"step {step}: loss {float(loss):.4f}")
    print(f"final loss {float(loss):.4f}; switched at step {switched_at}")
    return {"switched_at": switched_at, "final_loss": float(loss)}


if __name__ == "__main__":
    main()

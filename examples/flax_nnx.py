"""Flax NNX: an ``nnx.Optimizer`` that switches from Adam to SGD on a plateau.

A small MLP fits a noisy regression. ``nnx.Optimizer`` forwards extra keyword
arguments to the optimizer, so the step passes the training loss as
``optimizer.update(model, grads, value=loss)`` and
``osw.switch_on_plateau`` decides inside the ``nnx.jit``-compiled step, which
compiles once. The host-side helpers (``osw.phase``, ``osw.request_switch``,
``osw.observe``) work on ``optimizer.opt_state``, whose leaves are NNX
variables.

Run ``python examples/flax_nnx.py``, or ``--fast`` for a smoke run. It prints
the step at which the optimizer switched and the loss along the way.
"""

import argparse
from collections.abc import Sequence

from flax import nnx
import jax
import jax.numpy as jnp
import optax

import optaxswap as osw


class MLP(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.hidden = nnx.Linear(1, 32, rngs=rngs)
        self.out = nnx.Linear(32, 1, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.out(jnp.tanh(self.hidden(x)))[:, 0]


def make_data(key: jax.Array, num_examples: int = 256):
    input_key, noise_key = jax.random.split(key)
    inputs = jax.random.uniform(input_key, (num_examples, 1), minval=-2, maxval=2)
    targets = jnp.sin(2 * inputs[:, 0]) + 0.1 * jax.random.normal(
        noise_key, (num_examples,)
    )
    return inputs, targets


@nnx.jit
def train_step(model: MLP, optimizer: nnx.Optimizer, inputs, targets):
    def loss_fn(model):
        return jnp.mean((model(inputs) - targets) ** 2)

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads, value=loss)
    return loss


def main(argv: Sequence[str] | None = None) -> dict[str, float | int | None]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="a short smoke run")
    parser.add_argument("--steps", type=int, default=2000)
    args = parser.parse_args(argv)
    num_steps = 300 if args.fast else args.steps

    inputs, targets = make_data(jax.random.key(0))
    model = MLP(nnx.Rngs(1))
    tx = osw.switch_on_plateau(
        [optax.adam(5e-2), optax.sgd(5e-2, momentum=0.9)],
        patience=2,
        rtol=2e-2,
        accumulation_size=10,
    )
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)

    switched_at = None
    for step in range(num_steps):
        loss = train_step(model, optimizer, inputs, targets)
        # Leaves of optimizer.opt_state are NNX variables; [...] reads one.
        if switched_at is None and int(osw.phase(optimizer.opt_state)[...]) == 1:
            switched_at = step
            print(f"step {step}: loss plateaued, switched from Adam to SGD")
        if step % (num_steps // 5) == 0:
            print(f"step {step}: loss {float(loss):.4f}")
    print(f"final loss {float(loss):.4f}; switched at step {switched_at}")
    return {"switched_at": switched_at, "final_loss": float(loss)}


if __name__ == "__main__":
    main()

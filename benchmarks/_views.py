"""The ways a user calls an optimizer, each a jitted step to measure.

- ``train``: a whole train step of an MLP (forward, backward, update,
  apply), params and state donated; the gradients are an intermediate.
- ``separate-jit``: the optimizer step in its own jit,
  ``params, state = f(grads, params, state)`` with
  ``apply_updates(params, tx.update(grads, state, params))``: params and
  state donated, the gradients a plain (read-only) argument, as a training
  loop that computes them in another jitted function passes them.
- ``no-donation``: the same function under a plain ``jax.jit``, nothing
  donated, as most tutorials write it.
- ``update``: ``tx.update`` alone, state and gradients donated, at a size so
  small that a step is the fixed cost of a call: what a wrapper adds per
  step, in microseconds.
- ``scan``: the whole training loop in one jit, ``SCAN_STEPS`` train steps
  under ``lax.scan`` per call (as JAX-native RL and PINN loops write it):
  what a step costs once no call is made per step.
- ``eager``: the separate-jit view's function called without any ``jit``,
  as in a notebook, a debugging session or ``nnx.Optimizer.update`` outside
  ``nnx.jit``: bare optax runs operation by operation, a combinator's update
  as one compiled step (``optaxswap/_eager.py``).
"""

from typing import Any

import jax
import jax.numpy as jnp
import optax

VIEWS = ("train", "separate-jit", "no-donation", "update", "scan", "eager")
# Views whose step is not one compiled program: no HLO to read.
UNCOMPILED = ("eager",)
# The train step's batch: the model's share of the step grows with it, the
# combinator's does not.
TRAIN_BATCH = 64
# Train steps per call of the scan view.
SCAN_STEPS = 16


def steps_per_call(view: str) -> int:
    """How many train (or optimizer) steps one call of ``view`` runs."""
    return SCAN_STEPS if view == "scan" else 1


def flat_params(size: int) -> dict[str, jax.Array]:
    width = 1000
    return {
        "w": jnp.full((max(size // width, 1), width), 0.5, jnp.float32),
        "b": jnp.full((width,), 0.5, jnp.float32),
    }


def mlp_params(size: int) -> dict[str, jax.Array]:
    """A 3-layer MLP of about ``size`` parameters (two square hidden layers)."""
    width = max(int((size / 2) ** 0.5), 16)
    keys = jax.random.split(jax.random.key(0), 3)
    scale = width**-0.5
    return {
        "w1": jax.random.normal(keys[0], (width, width)) * scale,
        "b1": jnp.zeros((width,)),
        "w2": jax.random.normal(keys[1], (width, width)) * scale,
        "b2": jnp.zeros((width,)),
        "w3": jax.random.normal(keys[2], (width, 10)) * scale,
        "b3": jnp.zeros((10,)),
    }


def mlp_loss(params: dict[str, jax.Array], batch: tuple[jax.Array, jax.Array]):
    inputs, labels = batch
    hidden = jax.nn.relu(inputs @ params["w1"] + params["b1"])
    hidden = jax.nn.relu(hidden @ params["w2"] + params["b2"])
    logits = hidden @ params["w3"] + params["b3"]
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def problem(view: str, size: int) -> tuple[Any, Any]:
    """The params of a view's problem, and its data (a batch, or gradients)."""
    if view not in ("train", "scan"):
        params = flat_params(size)
        return params, jax.tree.map(lambda p: p * 1e-3, params)
    params = mlp_params(size)
    width = params["w1"].shape[0]
    keys = jax.random.split(jax.random.key(1))
    batch = (
        jax.random.normal(keys[0], (TRAIN_BATCH, width)),
        jax.random.randint(keys[1], (TRAIN_BATCH,), 0, 10),
    )
    return params, batch


def step_function(view: str, tx: optax.GradientTransformation, wants_value: bool):
    """The function of a view, and the positions of its donated arguments.

    ``None`` for the positions: the function is called as it is, not jitted.

    Every view takes a scalar ``value`` last, for every variant alike; only a
    variant that ``wants_value`` (a plateau trigger) reads it (the train step
    passes its loss instead).
    """

    def extra(value):
        return {"value": value} if wants_value else {}

    if view == "update":

        def update(state, grads, params, value):
            updates, state = tx.update(grads, state, params, **extra(value))
            # State first: JAX pairs donated inputs with outputs in order, so
            # every state leaf reuses its own buffer and the updates the grads'.
            return state, updates

        return update, (0, 1)
    if view in ("separate-jit", "no-donation", "eager"):

        def optimizer_step(grads, params, state, value):
            updates, state = tx.update(grads, state, params, **extra(value))
            return optax.apply_updates(params, updates), state

        donated = {"separate-jit": (1, 2), "no-donation": (), "eager": None}
        return optimizer_step, donated[view]
    if view in ("train", "scan"):

        def train(params, state, batch, value):
            del value
            loss, grads = jax.value_and_grad(mlp_loss)(params, batch)
            updates, state = tx.update(grads, state, params, **extra(loss))
            return optax.apply_updates(params, updates), state, loss

        def train_loop(params, state, batch, value):
            def body(carry, _):
                params, state, _ = carry
                return train(params, state, batch, value), None

            carry, _ = jax.lax.scan(body, (params, state, value), length=SCAN_STEPS)
            return carry

        return train if view == "train" else train_loop, (0, 1)
    raise ValueError(f"view must be one of {VIEWS}, got {view!r}")

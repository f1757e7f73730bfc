"""What one conditional costs a small train step on CPU, and why.

Times a 27K-parameter MLP train step with bare Adam, with Adam's update
wrapped in one ``lax.cond`` (whose predicate is always true), and with a
reset written as a select (``where(fire, init(params), state)``), side by
side in one process. Run it twice, once on every core and once pinned to one
(``taskset -c 0 python -m benchmarks.cond_cost``): if the conditional's cost
shrinks on one core, it is the parallelism lost by running the branch's
kernels one after the other, not the conditional's own bookkeeping.

Usage: ``python -m benchmarks.cond_cost``.
"""

import time

import jax
from jax import lax
import jax.numpy as jnp
import numpy as np
import optax

SIZES = (64, 128, 128, 16)
BATCH, ROUNDS, STEPS = 64, 15, 100


def _loss(params, inputs, targets):
    hidden = inputs
    for layer in params[:-1]:
        hidden = jnp.tanh(hidden @ layer["w"] + layer["b"])
    return jnp.mean((hidden @ params[-1]["w"] + params[-1]["b"] - targets) ** 2)


def _in_cond(tx):
    def update(updates, state, params=None):
        return lax.cond(
            state[0].count < 2**30,
            lambda u, s: tx.update(u, s, params),
            lambda u, s: (u, s),
            updates,
            state,
        )

    return optax.GradientTransformation(tx.init, update)


def _select_reset(tx):
    def update(updates, state, params=None):
        fire = state[0].count == 2**30
        state = jax.tree.map(lambda a, b: jnp.where(fire, a, b), tx.init(params), state)
        return tx.update(updates, state, params)

    return optax.GradientTransformation(tx.init, update)


def main() -> None:
    keys = jax.random.split(jax.random.key(0), len(SIZES) - 1)
    params = [
        {"w": jax.random.normal(k, (a, b)) * 0.1, "b": jnp.zeros(b)}
        for k, a, b in zip(keys, SIZES[:-1], SIZES[1:])
    ]
    inputs, targets = jnp.ones((BATCH, SIZES[0])), jnp.ones((BATCH, SIZES[-1]))
    variants = {
        "bare": optax.adam(1e-3),
        "bare_control": optax.adam(1e-3),
        "adam_in_one_cond": _in_cond(optax.adam(1e-3)),
        "reset_as_select": _select_reset(optax.adam(1e-3)),
    }
    steps, states = {}, {}
    for name, tx in variants.items():

        def step(params, state, tx=tx):
            grads = jax.grad(_loss)(params, inputs, targets)
            updates, state = tx.update(grads, state, params)
            return optax.apply_updates(params, updates), state

        steps[name] = jax.jit(step, donate_argnums=(0, 1))
        states[name] = (jax.tree.map(jnp.array, params), tx.init(params))
        for _ in range(20):
            states[name] = steps[name](*states[name])
        jax.block_until_ready(states[name])
    times = {name: [] for name in variants}
    for _ in range(ROUNDS):
        for name in variants:
            state = states[name]
            started = time.perf_counter()
            for _ in range(STEPS):
                state = steps[name](*state)
            jax.block_until_ready(state)
            times[name].append((time.perf_counter() - started) / STEPS)
            states[name] = state
    bare = np.median(times["bare"])
    count = sum(leaf.size for leaf in jax.tree.leaves(params))
    print(f"{count} parameters, {len(jax.devices())} device, median of {ROUNDS}")
    for name, samples in times.items():
        median = np.median(samples)
        print(f"{name:18s} {median * 1e6:8.1f} us  {median / bare:.3f}x bare")


if __name__ == "__main__":
    main()

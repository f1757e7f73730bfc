"""What one conditional costs a small train step on CPU, and why.

Times a 27K-parameter MLP train step with bare Adam, with Adam's update
wrapped in one ``lax.cond`` (whose predicate is always true), and with a
reset written as a select (``where(fire, init(params), state)``), side by
side in one process. Three more variants use a handwritten Adam, whose work
is written leaf by leaf: bare, in one ``lax.cond``, and with each leaf's
update in a ``lax.cond`` of its own.

Two runs tell the causes apart. Pinned to one core (``taskset -c 0 python -m
benchmarks.cond_cost``) the conditional costs little: its cost on two cores
is parallelism lost, not the conditional's bookkeeping. And one conditional
per leaf costs nothing where one around the whole update costs a lot: the
parallelism lost is the overlap of each leaf's update with the rest of the
backward pass (in the bare step a leaf's update starts once its gradient is
ready; behind one conditional, every update waits for the last gradient).

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


def _handwritten_adam(wrap: str, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8):
    """Adam written leaf by leaf; ``wrap``: "none", "one_cond" or "per_leaf"."""

    def init(params):
        zeros = lambda: jax.tree.map(jnp.zeros_like, params)  # noqa: E731
        return jnp.zeros((), jnp.int32), zeros(), zeros()

    def update(grads, state, params=None):
        count, mu, nu = state
        step = (count + 1).astype(jnp.float32)
        keep = count < 2**30

        def leaf(g, m, v):
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            m_hat, v_hat = m / (1 - b1**step), v / (1 - b2**step)
            return -lr * m_hat / (jnp.sqrt(v_hat) + eps), m, v

        def every_leaf(grads, mu, nu):
            if wrap == "per_leaf":
                return jax.tree.map(
                    lambda g, m, v: lax.cond(keep, leaf, lambda *a: a, g, m, v),
                    grads,
                    mu,
                    nu,
                )
            return jax.tree.map(leaf, grads, mu, nu)

        if wrap == "one_cond":
            out = lax.cond(
                keep,
                every_leaf,
                lambda g, m, v: jax.tree.map(lambda *a: a, g, m, v),
                grads,
                mu,
                nu,
            )
        else:
            out = every_leaf(grads, mu, nu)
        is_out = lambda x: isinstance(x, tuple)  # noqa: E731
        parts = [
            jax.tree.map(lambda o, i=i: o[i], out, is_leaf=is_out) for i in range(3)
        ]
        return parts[0], (count + 1, parts[1], parts[2])

    return optax.GradientTransformation(init, update)


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
        "handwritten_adam": _handwritten_adam("none"),
        "handwritten_in_one_cond": _handwritten_adam("one_cond"),
        "handwritten_cond_per_leaf": _handwritten_adam("per_leaf"),
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
        print(f"{name:26s} {median * 1e6:8.1f} us  {median / bare:.3f}x bare")


if __name__ == "__main__":
    main()

"""A tiny training problem the equivalence and behaviour tests share.

The loss is separable: every leaf's gradient depends on that leaf only, so a
sub-tree trains alike whatever else the params hold.
"""

import collections
from collections.abc import Callable, Iterator
import contextlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax


def make_params(dtype: Any = jnp.float32) -> dict[str, jax.Array]:
    return {
        "w": jnp.array([[0.5, -1.0], [2.0, 0.25], [-0.75, 1.5]], dtype),
        "b": jnp.array([0.3, -0.2], dtype),
    }


def loss_fn(params: Any) -> jax.Array:
    return sum(
        jnp.sum((leaf - 1.0) ** 2 * jnp.arange(1, leaf.size + 1).reshape(leaf.shape))
        for leaf in jax.tree.leaves(params)
    )


def make_step(tx: optax.GradientTransformation, **jit_kwargs: Any) -> Callable:
    """A jitted train step; ``grad_scale`` lets a test feed non-finite grads."""

    def step(params, opt_state, extra_args, grad_scale=1.0):
        grads = jax.grad(loss_fn)(params)
        grads = jax.tree.map(lambda g: g * jnp.asarray(grad_scale, g.dtype), grads)
        updates, opt_state = tx.update(grads, opt_state, params, **extra_args)
        return optax.apply_updates(params, updates), opt_state

    return jax.jit(step, **jit_kwargs)


def assert_trees_close(actual: Any, expected: Any, rtol: float = 1e-6) -> None:
    """Equal to float32 round-off: ``rtol`` of each value, or of its leaf's scale.

    An entry near zero is the difference of two larger numbers, so its
    round-off is relative to the leaf's largest magnitude, not to itself.
    """

    def assert_leaf_close(a: Any, e: Any) -> None:
        a, e = np.asarray(a, np.float64), np.asarray(e, np.float64)
        scale = np.max(np.abs(e), initial=0.0)
        np.testing.assert_allclose(a, e, rtol=rtol, atol=rtol * scale)

    jax.tree.map(assert_leaf_close, actual, expected)


@contextlib.contextmanager
def count_compilations() -> Iterator[collections.Counter]:
    """Counts XLA compilations by function name while the block runs."""
    counts = collections.Counter()

    def listener(event: str, duration: float, **kwargs: Any) -> None:
        del duration
        if event == "/jax/core/compile/backend_compile_duration":
            counts[kwargs.get("fun_name")] += 1

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield counts
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


def lbfgs_run(
    tx: optax.GradientTransformation,
    num_steps: int,
    loss: Callable[[Any], jax.Array],
    jit: bool = True,
) -> tuple[Any, Any]:
    """An L-BFGS training loop, as optax documents it; eager if not ``jit``."""
    params = make_params()
    state = tx.init(params)
    value_and_grad = optax.value_and_grad_from_state(loss)

    def step(params, state):
        value, grads = value_and_grad(params, state=state)
        updates, state = tx.update(
            grads, state, params, value=value, grad=grads, value_fn=loss
        )
        return optax.apply_updates(params, updates), state

    step = jax.jit(step) if jit else step
    for _ in range(num_steps):
        params, state = step(params, state)
    return params, state

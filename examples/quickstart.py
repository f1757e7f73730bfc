"""Quickstart: Adam until the validation loss stalls, then SGD with momentum.

A small MLP fits a noisy 1-D regression problem. One optimizer does it all:

- ``osw.switch_on_plateau`` starts with Adam and switches to SGD with momentum
  once the validation loss, fed with ``osw.observe`` every ``EVAL_EVERY``
  steps, has stopped improving for ``patience`` evaluations;
- inside the Adam phase, ``osw.resettable`` resets Adam's moments every
  ``RESET_EVERY`` updates and keeps its step count, as SPAM does.

Both decisions are taken inside the jitted train step, which compiles once.
Run ``python examples/quickstart.py`` (a few seconds on a CPU): it prints each
reset and the switch as they happen, then a summary.
"""

import argparse

import jax
import jax.numpy as jnp
import optax

import optaxswap as osw

HIDDEN, BATCH_SIZE, EVAL_EVERY, RESET_EVERY = 32, 32, 25, 100


def make_data(key, size):
    """``y = sin(3x) + noise`` on ``x`` in [-1, 1]."""
    x_key, noise_key = jax.random.split(key)
    x = jax.random.uniform(x_key, (size, 1), minval=-1.0, maxval=1.0)
    return x, jnp.sin(3.0 * x) + 0.1 * jax.random.normal(noise_key, (size, 1))


def init_mlp(key):
    first, second = jax.random.split(key)
    return {
        "hidden": jax.random.normal(first, (1, HIDDEN)),
        "hidden_bias": jnp.zeros(HIDDEN),
        "out": jax.random.normal(second, (HIDDEN, 1)) / HIDDEN**0.5,
        "out_bias": jnp.zeros(1),
    }


def loss_fn(params, x, y):
    hidden = jnp.tanh(x @ params["hidden"] + params["hidden_bias"])
    return jnp.mean((hidden @ params["out"] + params["out_bias"] - y) ** 2)


def make_optimizer(patience):
    adam_with_moment_resets = osw.resettable(
        optax.adam(1e-2), osw.every(RESET_EVERY), fields=("mu", "nu")
    )
    return osw.switch_on_plateau(
        [adam_with_moment_resets, optax.sgd(1e-2, momentum=0.9)],
        patience=patience,
        rtol=1e-3,
    )


def main(steps, patience, seed):
    data_key, val_key, init_key, batch_key = jax.random.split(jax.random.key(seed), 4)
    x_train, y_train = make_data(data_key, 256)
    x_val, y_val = make_data(val_key, 256)
    params = init_mlp(init_key)
    tx = make_optimizer(patience)
    opt_state = tx.init(params)

    @jax.jit
    def train_step(params, opt_state, key):
        batch = jax.random.choice(key, x_train.shape[0], (BATCH_SIZE,))
        grads = jax.grad(loss_fn)(params, x_train[batch], y_train[batch])
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    evaluate = jax.jit(loss_fn)
    print(f"training {steps} steps: Adam (moments reset every {RESET_EVERY}),")
    print(f"then SGD with momentum after {patience} evaluations without progress")
    phase, resets, val_loss = 0, 0, jnp.inf
    for step, key in enumerate(jax.random.split(batch_key, steps)):
        params, opt_state = train_step(params, opt_state, key)
        # Reading the state waits for the device; a real loop would only read
        # it when it logs.
        new_phase, new_resets = jax.device_get(
            (osw.phase(opt_state), osw.reset_count(opt_state))
        )
        if new_resets != resets:
            print(f"step {step}: reset Adam's moments (reset {new_resets})")
        if new_phase != phase:
            print(
                f"step {step}: validation loss stalled at {float(val_loss):.4f},"
                f" switched to SGD with momentum (phase {new_phase})"
            )
        phase, resets = new_phase, new_resets
        if (step + 1) % EVAL_EVERY == 0:
            val_loss = evaluate(params, x_val, y_val)
            opt_state = osw.observe(opt_state, val_loss)

    print(
        f"done: validation loss {float(evaluate(params, x_val, y_val)):.4f},"
        f" final phase {int(osw.phase(opt_state))},"
        f" {resets} Adam resets, train step compiled"
        f" {train_step._cache_size()} time(s)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--patience", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    main(args.steps, args.patience, args.seed)

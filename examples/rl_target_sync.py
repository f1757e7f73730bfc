"""Q-learning with a target network: optimizer resets at each target sync.

A small Q-network learns the action values of a random MDP from uniformly
sampled transitions, regressing on ``r + gamma * max_a' Q_target(s', a')``.
Every ``--sync-every`` updates the target network takes the online weights,
which changes the regression target. Three optimizers are compared:

- ``adam``: Adam, never reset;
- ``target_sync_reset``: Adam whose whole state is re-initialized at each
  sync (Asadi et al. 2023), ``osw.recipes.target_sync_reset``;
- ``adam_rel``: Adam whose step count restarts at each sync while its moments
  carry on (Ellis et al. 2024), ``osw.recipes.adam_rel``.

The training loop only passes ``target_synced=`` to ``update``; the reset is
decided inside the compiled step, which compiles once per optimizer.

Run ``python examples/rl_target_sync.py`` (2000 updates per optimizer, 6 to
13 s on 2 CPU cores, depending on their load), or ``--fast`` for a smoke
run. It prints, per optimizer, the mean squared error of the learnt Q-values
against the exact ones (value iteration) at the end and averaged over the
syncs (the area under the learning curve), and the number of resets. Which
optimizer wins depends on the problem and the learning rate; the example
shows the wiring, not a benchmark.
"""

import argparse
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import optax

import optaxswap as osw
from optaxswap import recipes

NUM_STATES, NUM_ACTIONS, HIDDEN, DISCOUNT = 12, 3, 64, 0.8


def make_mdp(key):
    """A random deterministic MDP: next state and reward per (state, action)."""
    next_key, reward_key = jax.random.split(key)
    next_state = jax.random.randint(next_key, (NUM_STATES, NUM_ACTIONS), 0, NUM_STATES)
    reward = jax.random.uniform(reward_key, (NUM_STATES, NUM_ACTIONS), minval=-1.0)
    return next_state, reward


@jax.jit
def exact_q_values(next_state, reward):
    """Exact action values by value iteration (DISCOUNT**300 is negligible)."""
    return jax.lax.fori_loop(
        0,
        300,
        lambda _, q: reward + DISCOUNT * q.max(axis=1)[next_state],
        jnp.zeros((NUM_STATES, NUM_ACTIONS)),
    )


def init_network(key):
    first, second = jax.random.split(key)
    return {
        "hidden": jax.random.normal(first, (NUM_STATES, HIDDEN)) / NUM_STATES**0.5,
        "out": jax.random.normal(second, (HIDDEN, NUM_ACTIONS)) / HIDDEN**0.5,
    }


def q_values(params, states):
    features = jax.nn.relu(params["hidden"][states])
    return features @ params["out"]


def train(tx, mdp, *, num_updates, sync_every, batch_size=64, seed=0):
    """Returns the Q-value errors at each sync and at the end, and the resets."""
    next_state, reward = mdp
    params = init_network(jax.random.key(seed))
    target_params = params
    opt_state = tx.init(params)

    @jax.jit
    def step(params, target_params, opt_state, key, target_synced):
        state_key, action_key = jax.random.split(key)
        states = jax.random.randint(state_key, (batch_size,), 0, NUM_STATES)
        actions = jax.random.randint(action_key, (batch_size,), 0, NUM_ACTIONS)
        targets = reward[states, actions] + DISCOUNT * q_values(
            target_params, next_state[states, actions]
        ).max(axis=1)

        def loss(params):
            predicted = q_values(params, states)[jnp.arange(batch_size), actions]
            return jnp.mean((predicted - targets) ** 2)

        grads = jax.grad(loss)(params)
        updates, opt_state = tx.update(
            grads, opt_state, params, target_synced=target_synced
        )
        return optax.apply_updates(params, updates), opt_state

    exact = exact_q_values(*mdp)
    errors = []
    key = jax.random.key(seed + 1)
    for t in range(num_updates):
        synced = t > 0 and t % sync_every == 0
        if synced:
            target_params = params
            errors.append(q_error(params, exact))
        key, step_key = jax.random.split(key)
        params, opt_state = step(
            params, target_params, opt_state, step_key, jnp.asarray(synced)
        )
    errors.append(q_error(params, exact))
    return [float(error) for error in errors], _resets(opt_state)


@jax.jit
def q_error(params, exact):
    """Mean squared error of the learnt Q-values over all (state, action)."""
    return jnp.mean((q_values(params, jnp.arange(NUM_STATES)) - exact) ** 2)


def _resets(opt_state):
    """The reset count of the ``resettable`` inside, 0 for plain Adam."""
    is_resettable = lambda node: isinstance(node, osw.ResettableState)  # noqa: E731
    if any(map(is_resettable, jax.tree.leaves(opt_state, is_leaf=is_resettable))):
        return int(osw.reset_count(opt_state))
    return 0


def optimizers(learning_rate):
    return {
        "adam": optax.with_extra_args_support(optax.adam(learning_rate)),
        "target_sync_reset": recipes.target_sync_reset(optax.adam(learning_rate)),
        "adam_rel": recipes.adam_rel(learning_rate),
    }


def main(argv: Sequence[str] | None = None) -> dict[str, tuple[float, float, int]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="a short smoke run")
    parser.add_argument("--updates", type=int, default=2000)
    parser.add_argument("--sync-every", type=int, default=100)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    args = parser.parse_args(argv)
    num_updates = 150 if args.fast else args.updates
    sync_every = 50 if args.fast else args.sync_every

    mdp = make_mdp(jax.random.key(42))
    results = {}
    print(f"{'optimizer':<20} {'final Q error':>14} {'mean Q error':>13} {'resets':>7}")
    for name, tx in optimizers(args.learning_rate).items():
        errors, resets = train(tx, mdp, num_updates=num_updates, sync_every=sync_every)
        mean_error = sum(errors) / len(errors)
        results[name] = (errors[-1], mean_error, resets)
        print(f"{name:<20} {errors[-1]:>14.3e} {mean_error:>13.3e} {resets:>7d}")
    return results


if __name__ == "__main__":
    main()

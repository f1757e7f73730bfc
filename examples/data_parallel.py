"""Data parallel: replicas that see different losses switch optimizer together.

Two ways to split a batch over devices, each training a small MLP under
``osw.switch_on_plateau([adam, sgd with momentum])`` watching the loss:

- ``jax.pmap``: each replica computes the loss of its own shard. The plateau
  trigger gets ``axis_name="batch"``, so it averages (``pmean``) the replicas'
  losses before deciding: every replica switches on the same step.
- ``jax.jit`` over a ``Mesh`` with ``NamedSharding``: the batch is split,
  the params replicated. The loss is a global array, the same number on every
  device, so no ``axis_name`` is needed; the state keeps the params' sharding.

On a machine without several accelerators the example fakes two CPU devices
(``XLA_FLAGS=--xla_force_host_platform_device_count=2``, set before jax is
imported, unless ``XLA_FLAGS`` is already set). Each step is waited for:
fake CPU devices share the host's cores, and a collective whose other
participants cannot get a core in time aborts the process.

Run ``python examples/data_parallel.py``, or ``--fast`` for a smoke run. It
prints the step at which each variant switched and the phase of every replica.
"""

import argparse
from collections.abc import Sequence
import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=2")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from jax.sharding import NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import optaxswap as osw  # noqa: E402


def make_data(key: jax.Array, num_examples: int):
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


def make_tx(axis_name: str | None = None) -> optax.GradientTransformationExtraArgs:
    return osw.switch_on_plateau(
        [optax.adam(5e-2), optax.sgd(5e-2, momentum=0.9)],
        patience=2,
        rtol=2e-2,
        accumulation_size=10,
        axis_name=axis_name,
    )


def train_with_pmap(num_steps: int) -> int | None:
    num_devices = jax.device_count()
    tx = make_tx(axis_name="batch")
    inputs, targets = make_data(jax.random.key(0), 128 * num_devices)
    inputs = inputs.reshape(num_devices, 128, 1)
    targets = targets.reshape(num_devices, 128)

    def train_step(params, opt_state, inputs, targets):
        local_loss, grads = jax.value_and_grad(loss_fn)(params, inputs, targets)
        grads = jax.lax.pmean(grads, "batch")
        # value= is this replica's own loss; the trigger pmean-s it.
        updates, opt_state = tx.update(grads, opt_state, params, value=local_loss)
        return optax.apply_updates(params, updates), opt_state

    train_step = jax.pmap(train_step, axis_name="batch")
    params = init_params(jax.random.key(1))
    params = jax.tree.map(lambda leaf: jnp.stack([leaf] * num_devices), params)
    opt_state = jax.pmap(tx.init)(params)
    switched_at = None
    for step in range(num_steps):
        params, opt_state = jax.block_until_ready(
            train_step(params, opt_state, inputs, targets)
        )
        phases = np.asarray(osw.phase(opt_state))
        if switched_at is None and phases.any():
            switched_at = step
            print(f"pmap: step {step}: switched; replicas' phases {phases.tolist()}")
    return switched_at


def train_with_named_sharding(num_steps: int) -> int | None:
    mesh = jax.make_mesh((jax.device_count(),), ("batch",))
    tx = make_tx()
    with jax.set_mesh(mesh):
        inputs, targets = jax.device_put(
            make_data(jax.random.key(0), 128 * jax.device_count()),
            NamedSharding(mesh, P("batch")),
        )
        params = jax.device_put(
            init_params(jax.random.key(1)), NamedSharding(mesh, P())
        )
        opt_state = tx.init(params)

        @jax.jit
        def train_step(params, opt_state, inputs, targets):
            loss, grads = jax.value_and_grad(loss_fn)(params, inputs, targets)
            updates, opt_state = tx.update(grads, opt_state, params, value=loss)
            return optax.apply_updates(params, updates), opt_state

        switched_at = None
        for step in range(num_steps):
            params, opt_state = jax.block_until_ready(
                train_step(params, opt_state, inputs, targets)
            )
            if switched_at is None and int(osw.phase(opt_state)) == 1:
                switched_at = step
                momentum = optax.tree.get(opt_state, "TraceState").trace
                same = all(
                    leaf.sharding.is_equivalent_to(param.sharding, leaf.ndim)
                    for leaf, param in zip(
                        jax.tree.leaves(momentum), jax.tree.leaves(params)
                    )
                )
                print(
                    f"NamedSharding: step {step}: switched; SGD's momentum has"
                    f" its param's sharding: {same}"
                )
    return switched_at


def main(argv: Sequence[str] | None = None) -> dict[str, int | None]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="a short smoke run")
    parser.add_argument("--steps", type=int, default=1000)
    args = parser.parse_args(argv)
    num_steps = 300 if args.fast else args.steps
    print(f"{jax.device_count()} devices: {jax.devices()}")
    results = {
        "pmap": train_with_pmap(num_steps),
        "named_sharding": train_with_named_sharding(num_steps),
    }
    print(f"switched at: {results}")
    return results


if __name__ == "__main__":
    main()

"""``metric_arg``: the trigger's own ``update`` keyword, kept from the phases.

optax's ``lbfgs``, ``polyak_sgd`` and ``reduce_on_plateau`` read the training
loss as ``value=``; a plateau trigger watching a validation loss must read
another keyword (or none), and that keyword must not reach the phases
(``lbfgs`` passes every keyword to its ``value_fn``, which rejects it).
"""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from reference import PlateauModel
from reference import switch_phases
from training import assert_trees_close

import optaxswap as osw

TARGET = jnp.array([1.0, -2.0, 0.5])
SCALES = jnp.array([1.0, 3.0, 0.5])


def loss_fn(params: jax.Array) -> jax.Array:
    return jnp.sum(SCALES * (params - TARGET) ** 2)


def lbfgs_step(tx: optax.GradientTransformation, **metrics: Any):
    """A jitted step giving ``value``, ``grad`` and ``value_fn``, as L-BFGS needs."""

    @jax.jit
    def step(params, opt_state, metrics):
        value, grad = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(
            grad,
            opt_state,
            params,
            value=value,
            grad=grad,
            value_fn=loss_fn,
            **metrics,
        )
        return optax.apply_updates(params, updates), opt_state

    return step


# Validation losses: two improvements, then no progress: with patience 2 the
# plateau is reached by the fourth value and its update switches.
VALIDATION_LOSSES = [3.0, 2.0, 2.5, 2.1, 2.2, 2.3, 2.4, 2.6]


def test_switch_to_lbfgs_watches_val_loss_and_matches_a_bare_optax_run():
    phases = [optax.adam(0.05), optax.lbfgs()]
    tx = osw.switch_on_plateau(phases, patience=2, metric_arg="val_loss")
    step = lbfgs_step(tx)
    params = jnp.zeros(3)
    opt_state = tx.init(params)
    model = PlateauModel(patience=2)
    expected_phases = switch_phases(
        [model.update(v) for v in VALIDATION_LOSSES], num_phases=2
    )
    used_phases = []
    for val_loss in VALIDATION_LOSSES:
        params, opt_state = step(params, opt_state, {"val_loss": np.float32(val_loss)})
        used_phases.append(int(osw.phase(opt_state)))
    assert used_phases == expected_phases
    switch_at = expected_phases.index(1)
    assert step._cache_size() == 1

    # By hand: Adam for the updates before the switch, then a fresh L-BFGS
    # initialized from the params it is entered with.
    adam, lbfgs = optax.adam(0.05), optax.lbfgs()
    expected = jnp.zeros(3)
    adam_state = adam.init(expected)
    for _ in range(switch_at):
        grad = jax.grad(loss_fn)(expected)
        updates, adam_state = adam.update(grad, adam_state, expected)
        expected = optax.apply_updates(expected, updates)
    lbfgs_state = lbfgs.init(expected)
    for _ in range(len(VALIDATION_LOSSES) - switch_at):
        value, grad = jax.value_and_grad(loss_fn)(expected)
        updates, lbfgs_state = lbfgs.update(
            grad, lbfgs_state, expected, value=value, grad=grad, value_fn=loss_fn
        )
        expected = optax.apply_updates(expected, updates)
    assert_trees_close(params, expected, rtol=1e-5)


def polyak_then_sgd(**plateau: Any) -> optax.GradientTransformationExtraArgs:
    return osw.switch_on_plateau(
        [optax.polyak_sgd(max_learning_rate=0.1), optax.sgd(0.01)],
        patience=1,
        **plateau,
    )


def polyak_step(tx):
    @jax.jit
    def step(params, opt_state):
        value, grad = jax.value_and_grad(loss_fn)(params)
        # A training loss that never improves: a trigger reading it would fire.
        updates, opt_state = tx.update(grad, opt_state, params, value=value * 0 + 1)
        return optax.apply_updates(params, updates), opt_state

    return step


def test_metric_arg_none_ignores_the_training_loss_given_as_value():
    # The default reads value=: the constant training loss plateaus at once.
    tx = polyak_then_sgd()
    step, params = polyak_step(tx), jnp.zeros(3)
    opt_state = tx.init(params)
    for _ in range(3):
        params, opt_state = step(params, opt_state)
    assert int(osw.phase(opt_state)) == 1

    tx = polyak_then_sgd(metric_arg=None)
    step, params = polyak_step(tx), jnp.zeros(3)
    opt_state = tx.init(params)
    for _ in range(10):
        params, opt_state = step(params, opt_state)
    assert int(osw.phase(opt_state)) == 0
    assert int(opt_state.trigger_state.bad_count) == 0
    # Only observe feeds it: 1.0 improves on +inf, 1.0 again does not.
    opt_state = osw.observe(osw.observe(opt_state, 1.0), 1.0)
    params, opt_state = step(params, opt_state)
    assert int(osw.phase(opt_state)) == 1


def strict_inner() -> optax.GradientTransformationExtraArgs:
    """Adds ``value`` to the updates; any keyword but ``value`` is a TypeError."""

    def init_fn(params):
        del params
        return optax.EmptyState()

    def update_fn(updates, state, params=None, *, value):
        del params
        return jax.tree.map(lambda u: u + value, updates), state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


SPIKE_LOSS = {"spike_loss": jnp.float32(1.0)}
BOTH = {"spike_loss": jnp.float32(1.0), "val_loss": jnp.float32(1.0)}


@pytest.mark.parametrize(
    "trigger, own",
    [
        (osw.on_spike(metric_arg="spike_loss", window=2), SPIKE_LOSS),
        (osw.on_plateau(metric_arg="spike_loss"), SPIKE_LOSS),
        (
            osw.any_of(osw.every(100), osw.on_spike(metric_arg="spike_loss", window=2)),
            SPIKE_LOSS,
        ),
        (
            osw.any_of(
                osw.on_plateau(metric_arg="val_loss"),
                osw.on_spike(metric_arg="spike_loss", window=2),
            ),
            BOTH,
        ),
    ],
    ids=["spike", "plateau", "spike_in_any_of", "two_in_any_of"],
)
def test_inner_transforms_get_value_but_not_the_triggers_own_keywords(trigger, own):
    params = jnp.zeros(2)
    for tx in (
        osw.resettable(strict_inner(), trigger),
        osw.switch([strict_inner(), strict_inner()], trigger),
    ):
        updates, _ = jax.jit(tx.update)(
            params, tx.init(params), params, value=jnp.float32(3.0), **own
        )
        np.testing.assert_array_equal(updates, jnp.full(2, 3.0))


def test_trigger_reads_its_metric_arg_not_value():
    trigger = osw.on_spike(factor=2.0, window=1, metric_arg="spike_loss")
    state = trigger.init(None)
    fires = []
    for t, (value, spike_loss) in enumerate([(1.0, 1.0), (100.0, 1.0), (1.0, 5.0)]):
        context = osw.TriggerContext(
            jnp.int32(t), None, None, {"value": value, "spike_loss": spike_loss}
        )
        fire, state = trigger.update(state, context)
        fires.append(bool(fire))
    assert fires == [False, False, True]


def test_bad_metric_arg_value_names_the_keyword():
    tx = osw.switch_on_plateau([optax.sgd(0.1)], metric_arg="val_loss")
    params = jnp.zeros(2)
    with pytest.raises(TypeError, match="val_loss.*'high'"):
        tx.update(params, tx.init(params), params, val_loss="high")

"""``execution="leafwise"``: one conditional per phase and parameter leaf.

The split is decided from each phase's jaxpr, so these tests check both
sides: it gives the values of the branched execution (to float32 round-off:
XLA compiles each leaf's arithmetic on its own) for every kind of switch, and
it splits exactly the phases whose update treats each leaf on its own.
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from training import assert_trees_close
from training import loss_fn
from training import make_params
from training import make_step

import optaxswap as osw


def _adam():
    return optax.adam(0.1)


def _sgd_m():
    return optax.sgd(0.05, momentum=0.9)


def _clipped_adam():
    return optax.chain(optax.clip_by_global_norm(0.5), optax.adam(0.1))


CASES = {
    "switch_at, 3 phases": lambda execution, shared: osw.switch_at(
        [_adam(), _sgd_m(), _adam()],
        [3, 6],
        share_memory=shared,
        execution=execution,
    ),
    "cycle": lambda execution, shared: osw.switch(
        [_adam(), _sgd_m()],
        osw.every(2),
        cycle=True,
        share_memory=shared,
        execution=execution,
    ),
    "handoff": lambda execution, shared: osw.switch_at(
        [_adam(), _sgd_m()],
        [4],
        handoff=osw.handoff.carry_momentum,
        share_memory=shared,
        execution=execution,
    ),
    "nested resettable": lambda execution, shared: osw.switch_at(
        [osw.resettable(_adam(), osw.every(2)), _sgd_m()],
        [5],
        share_memory=shared,
        execution=execution,
    ),
    "global-norm clipping (not split)": lambda execution, shared: osw.switch_at(
        [_clipped_adam(), _sgd_m()], [4], share_memory=shared, execution=execution
    ),
}


def _train(tx, params, steps=9, extra_args=None):
    step = make_step(tx)
    state = tx.init(params)
    for _ in range(steps):
        params, state = step(params, state, extra_args or {})
    return params, state


@pytest.mark.parametrize("shared", [False, True], ids=["separate", "shared"])
@pytest.mark.parametrize("case", list(CASES))
def test_leafwise_trains_like_branched(case, shared):
    params = make_params()
    expected = _train(CASES[case]("branched", shared), params)
    actual = _train(CASES[case]("leafwise", shared), params)
    assert jax.tree.structure(actual) == jax.tree.structure(expected)
    assert_trees_close(actual, expected)


def test_leafwise_switch_at_equals_reinstantiating_by_hand():
    # The independent reference: bare optax, a fresh SGD-m at the boundary.
    params = make_params()
    boundary, steps = 4, 9
    tx = osw.switch_at([_adam(), _sgd_m()], [boundary], execution="leafwise")
    actual, _ = _train(tx, params, steps)
    p, inner = params, _adam()
    state = inner.init(p)
    for t in range(steps):
        if t == boundary:
            inner = _sgd_m()
            state = inner.init(p)
        p, state = make_step(inner)(p, state, {})
    assert_trees_close(actual, p)


def test_leafwise_plateau_switch_reads_value_like_branched():
    params = make_params()
    values = [5.0, 4.0, 4.0, 4.0, 4.0, 4.0, 3.0, 3.0, 3.0]

    def run(execution):
        tx = osw.switch_on_plateau([_adam(), _sgd_m()], patience=2, execution=execution)
        step = make_step(tx)
        state, p = tx.init(params), params
        for value in values:
            p, state = step(p, state, {"value": jnp.float32(value)})
        return p, state

    expected, actual = run("branched"), run("leafwise")
    assert int(osw.phase(actual[1])) == int(osw.phase(expected[1])) == 1
    assert_trees_close(actual, expected)


def test_leafwise_keeps_mixed_precision_dtypes():
    params = make_params(jnp.bfloat16)
    tx = osw.switch_at([_adam(), optax.sgd(0.05)], [3], execution="leafwise")
    branched = osw.switch_at([_adam(), optax.sgd(0.05)], [3])
    actual, expected = _train(tx, params), _train(branched, params)
    assert jax.tree.map(lambda x: x.dtype, actual) == jax.tree.map(
        lambda x: x.dtype, expected
    )
    assert_trees_close(actual, expected, rtol=1e-2)


def test_leafwise_lbfgs_phase_stays_whole_and_trains_like_branched():
    params = make_params()

    def loss(p):
        return sum(jnp.sum((leaf - 1.0) ** 2) for leaf in jax.tree.leaves(p))

    def run(execution):
        tx = osw.switch_at([_adam(), optax.lbfgs()], [3], execution=execution)

        @jax.jit
        def step(p, state):
            value, grad = optax.value_and_grad_from_state(loss)(p, state=state)
            updates, state = tx.update(
                grad, state, p, value=value, grad=grad, value_fn=loss
            )
            return optax.apply_updates(p, updates), state

        p, state = params, tx.init(params)
        for _ in range(6):
            p, state = step(p, state)
        return p, state

    assert_trees_close(run("leafwise"), run("branched"))


def _conditionals(tx, params):
    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    state = tx.init(params)
    text = jax.jit(step).lower(params, state, params).compile().as_text()
    return len(re.findall(r"\bconditional\(", text))


def test_leafwise_splits_the_phases_that_treat_each_leaf_on_their_own():
    params = make_params()  # two leaves
    phases = [_adam(), _sgd_m(), _adam()]
    # Branched: a run-or-skip conditional per phase, one per phase left.
    assert _conditionals(osw.switch_at(phases, [3, 5]), params) == 3 + 2
    # Leafwise: one run-or-skip conditional per phase and leaf.
    leafwise = osw.switch_at(phases, [3, 5], execution="leafwise")
    assert _conditionals(leafwise, params) == 3 * 2 + 2
    # Global-norm clipping mixes the leaves: that phase keeps one.
    mixed = osw.switch_at([_clipped_adam(), _sgd_m()], [3], execution="leafwise")
    assert _conditionals(mixed, params) == 1 + 2 + 1
    # One leaf: nothing to split.
    single = {"w": params["w"]}
    assert _conditionals(
        osw.switch_at(phases, [3, 5], execution="leafwise"), single
    ) == _conditionals(osw.switch_at(phases, [3, 5]), single)


def test_leafwise_equals_branched_outside_jit():
    params = make_params()
    grads = jax.tree.map(lambda p: 0.3 * p + 0.1, params)
    results = {}
    for execution in ("branched", "leafwise"):
        tx = osw.switch_at([_adam(), _sgd_m()], [2], execution=execution)
        state = tx.init(params)
        updates = []
        for _ in range(4):
            u, state = tx.update(grads, state, params)
            updates.append(u)
        results[execution] = (updates, state)
    assert_trees_close(results["leafwise"], results["branched"])


def test_unknown_execution_names_the_choices():
    with pytest.raises(ValueError, match="leafwise"):
        osw.switch_at([_adam(), _sgd_m()], [3], execution="per_leaf")


def test_leafwise_state_dtypes_stay_fixed():
    params = make_params()
    tx = osw.switch_at([_adam(), _sgd_m()], [2], execution="leafwise")
    state = tx.init(params)
    _, new_state = _train(tx, params, steps=4)
    assert jax.tree.map(lambda x: (x.dtype, x.shape), new_state) == jax.tree.map(
        lambda x: (x.dtype, x.shape), state
    )
    assert not any(
        getattr(leaf, "weak_type", False) for leaf in jax.tree.leaves(new_state)
    )
    np.testing.assert_equal(int(osw.phase(new_state)), 1)


def test_leafwise_under_vmap_with_a_trigger_per_member():
    params = make_params()

    def train(execution, boundary):
        tx = osw.switch(
            [_adam(), _sgd_m()],
            osw.when(lambda context: context.count == boundary),
            execution=execution,
        )
        state, p = tx.init(params), params
        for _ in range(5):
            updates, state = tx.update(jax.grad(loss_fn)(p), state, p)
            p = optax.apply_updates(p, updates)
        return p, state

    boundaries = jnp.array([1, 3, 9])
    expected = jax.jit(jax.vmap(lambda b: train("branched", b)))(boundaries)
    actual = jax.jit(jax.vmap(lambda b: train("leafwise", b)))(boundaries)
    assert_trees_close(actual, expected)


def test_leafwise_under_nnx_optimizer_trains_like_branched():
    # The model, train step and values of the NNX tests.
    from flax import nnx
    import test_flax_nnx as case

    def run(execution):
        model = case.Regressor(nnx.Rngs(0))
        tx = osw.switch_on_plateau(
            [optax.adam(0.02), optax.sgd(0.02, momentum=0.9)],
            patience=2,
            execution=execution,
        )
        optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
        train_step, _ = case.make_train_step()
        for value in case.VALUES:
            train_step(model, optimizer, jnp.float32(value))
        return int(osw.phase(optimizer.opt_state)[...]), nnx.as_pure(nnx.state(model))

    (phase, actual), (expected_phase, expected) = run("leafwise"), run("branched")
    assert phase == expected_phase == 1
    assert_trees_close(actual, expected)


OPTIMIZERS = {
    "rmsprop": lambda: optax.rmsprop(0.05),
    "adamw": lambda: optax.adamw(0.05),
    "lion": lambda: optax.lion(0.05),
    "adagrad": lambda: optax.adagrad(0.05),
    "adafactor": lambda: optax.adafactor(0.05),
    "lamb": lambda: optax.lamb(0.05),
    "nadam": lambda: optax.nadam(0.05),
    "adam, cosine schedule": lambda: optax.adam(optax.cosine_decay_schedule(0.1, 9)),
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_leafwise_splits_optax_optimizers_and_trains_like_branched(name):
    params = make_params()

    def make(execution):
        return osw.switch_at([OPTIMIZERS[name](), _sgd_m()], [5], execution=execution)

    # Each of these treats every leaf on its own: a conditional per leaf.
    assert _conditionals(make("leafwise"), params) == 2 * 2 + 1
    assert_trees_close(
        _train(make("leafwise"), params), _train(make("branched"), params)
    )

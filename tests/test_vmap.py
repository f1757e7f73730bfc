"""``vmap`` over a population: every member resets and switches on its own.

Under ``vmap`` the conditionals become selects that run both branches (the
cost SPEC guarantee 5 documents); the results must still be, member by member,
those of that member trained alone.
"""

import functools
from typing import Any

import jax
from jax import lax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from reference import PlateauModel
from training import assert_trees_close
from training import make_params
from training import make_step

import optaxswap as osw

POPULATION = 4
NUM_STEPS = 10
ADAM = optax.adam(1e-2)
SGD = optax.sgd(1e-2, momentum=0.9)
ADAMW = optax.adamw(1e-2)


def member_params(member: int) -> Any:
    return jax.tree.map(lambda leaf: leaf * (1.0 + 0.25 * member), make_params())


def stack(trees: list[Any]) -> Any:
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


def member_of(tree: Any, member: int) -> Any:
    return jax.tree.map(lambda leaf: leaf[member], tree)


def losses(seed: int) -> np.ndarray:
    """Per member, a loss sequence that stalls at a member-specific time."""
    rng = np.random.default_rng(seed)
    return rng.choice([0.25, 0.5, 0.75, 1.0], size=(NUM_STEPS, POPULATION)).astype(
        np.float32
    )


def staggered_losses() -> np.ndarray:
    """Members that never stall, stall late, stall at once, and at random."""
    t = np.arange(NUM_STEPS)
    improving = 1.0 - 0.0625 * t
    return np.stack(
        [improving, np.maximum(improving, improving[6]), np.ones(NUM_STEPS)]
        + [losses(seed=0)[:, 0]],
        axis=1,
    ).astype(np.float32)


def only_where(helper):
    """``fn(states, mask)``: ``helper`` applied to the members where ``mask``."""
    return jax.vmap(lambda state, do: lax.cond(do, helper, lambda s: s, state))


def run_population(tx, drive) -> tuple[Any, Any]:
    """Trains the population with one vmapped, jitted step."""
    step = jax.jit(jax.vmap(make_step(tx)))
    params = stack([member_params(m) for m in range(POPULATION)])
    opt_state = jax.vmap(tx.init)(params)
    for t in range(NUM_STEPS):
        opt_state, extra_args = drive(t, opt_state)
        params, opt_state = step(params, opt_state, extra_args)
    assert step._cache_size() == 1
    return params, opt_state


@functools.cache
def member_step(tx):
    """One jitted step per transform, compiled once for every member."""
    return make_step(tx)


def run_member(tx, drive, member: int) -> tuple[Any, Any]:
    step = member_step(tx)
    params = member_params(member)
    opt_state = tx.init(params)
    for t in range(NUM_STEPS):
        opt_state, extra_args = drive(t, opt_state)
        params, opt_state = step(params, opt_state, extra_args)
    return params, opt_state


def test_each_member_switches_on_its_own_plateau():
    tx = osw.switch_on_plateau([ADAM, SGD, ADAMW], patience=2)
    values = staggered_losses()

    def population_drive(t, opt_state):
        return opt_state, {"value": values[t]}

    params, opt_state = run_population(tx, population_drive)
    phases = np.asarray(osw.phase(opt_state))
    assert phases[:3].tolist() == [0, 1, 2]
    for member in range(POPULATION):
        model = PlateauModel(patience=2)
        fires = sum(model.update(v) for v in values[:, member])
        assert phases[member] == min(fires, 2)

        def member_drive(t, opt_state, member=member):
            return opt_state, {"value": values[t, member]}

        expected_params, expected_state = run_member(tx, member_drive, member)
        assert_trees_close(member_of(params, member), expected_params)
        assert int(osw.phase(expected_state)) == phases[member]


def test_each_member_resets_on_its_own_requests_and_triggers():
    tx = osw.resettable(ADAM, osw.when(lambda context: context.extra_args["sync"]))
    rng = np.random.default_rng(1)
    requests = rng.random((NUM_STEPS, POPULATION)) < 0.25
    syncs = rng.random((NUM_STEPS, POPULATION)) < 0.25

    def population_drive(t, opt_state):
        opt_state = only_where(osw.request_reset)(opt_state, requests[t])
        return opt_state, {"sync": syncs[t]}

    params, opt_state = run_population(tx, population_drive)
    resets = np.asarray(osw.reset_count(opt_state))
    np.testing.assert_array_equal(resets, (requests | syncs).sum(axis=0))
    assert len(set(resets.tolist())) > 1
    for member in range(POPULATION):

        def member_drive(t, opt_state, member=member):
            if requests[t, member]:
                opt_state = osw.request_reset(opt_state)
            return opt_state, {"sync": syncs[t, member]}

        expected_params, _ = run_member(tx, member_drive, member)
        assert_trees_close(member_of(params, member), expected_params)


def test_observe_and_request_switch_act_per_member_under_vmap():
    tx = osw.switch_on_plateau([ADAM, SGD, ADAMW], patience=1, accumulation_size=2)
    values = losses(seed=2)
    requests = np.zeros((NUM_STEPS, POPULATION), bool)
    requests[3, 1] = requests[6, 2] = True
    observe = jax.vmap(osw.observe)

    def population_drive(t, opt_state):
        opt_state = observe(opt_state, values[t])
        opt_state = only_where(osw.request_switch)(opt_state, requests[t])
        return opt_state, {}

    params, opt_state = run_population(tx, population_drive)
    for member in range(POPULATION):

        def member_drive(t, opt_state, member=member):
            opt_state = osw.observe(opt_state, values[t, member])
            if requests[t, member]:
                opt_state = osw.request_switch(opt_state)
            return opt_state, {}

        expected_params, expected_state = run_member(tx, member_drive, member)
        assert_trees_close(member_of(params, member), expected_params)
        assert int(osw.phase(expected_state)) == int(osw.phase(opt_state)[member])


@pytest.mark.parametrize("fed_by", ["value", "observe"])
def test_axis_name_makes_the_whole_population_decide_on_the_mean(fed_by):
    trigger_axis = "population" if fed_by == "value" else None
    tx = osw.switch_on_plateau([ADAM, SGD, ADAMW], patience=2, axis_name=trigger_axis)
    # Quarter steps keep every population mean exact in float32.
    values = losses(seed=3)
    step = jax.jit(jax.vmap(make_step(tx), axis_name="population"))
    observe = jax.vmap(
        lambda state, v: osw.observe(state, v, axis_name="population"),
        axis_name="population",
    )
    params = stack([member_params(m) for m in range(POPULATION)])
    opt_state = jax.vmap(tx.init)(params)
    model = PlateauModel(patience=2)
    for t in range(NUM_STEPS):
        extra_args = {}
        if fed_by == "value":
            extra_args = {"value": values[t]}
        else:
            opt_state = observe(opt_state, values[t])
        params, opt_state = step(params, opt_state, extra_args)
        model.update(np.float32(values[t].mean()))
        phases = np.asarray(osw.phase(opt_state))
        np.testing.assert_array_equal(phases, min(model.fires, 2))
    assert model.fires > 0

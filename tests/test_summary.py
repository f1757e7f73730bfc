"""``osw.summary``: every combinator and trigger state as a flat dict of scalars."""

from flax.training import train_state
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from reference import PlateauModel
from training import make_params
from training import make_step

import optaxswap as osw

ADAM = optax.adam(1e-2)
SGD = optax.sgd(1e-2)

PLATEAU = {
    "phase": 0,
    "count": 0,
    "requested": False,
    "trigger_state/best": np.inf,
    "trigger_state/bad_count": 0,
    "trigger_state/cooldown_count": 0,
    "trigger_state/pending": False,
}


def as_python(summary):
    return {key: value.item() for key, value in summary.items()}


def prefixed(prefix, fields):
    return {f"{prefix}/{key}": value for key, value in fields.items()}


@pytest.mark.parametrize(
    "wrap, prefix",
    [
        (lambda tx: tx, ""),
        (lambda tx: optax.chain(optax.clip(1.0), tx), "1"),
        (
            lambda tx: optax.partition(
                {"case": tx, "other": SGD}, {"w": "case", "b": "other"}
            ),
            "inner_states/case/inner_state",
        ),
        (lambda tx: optax.MultiSteps(tx, every_k_schedule=2), "inner_opt_state"),
        (
            lambda tx: optax.inject_hyperparams(
                lambda learning_rate: optax.chain(tx, optax.scale(learning_rate))
            )(learning_rate=1.0),
            "inner_state/0",
        ),
    ],
    ids=["bare", "chain", "partition", "multi_steps", "inject_hyperparams"],
)
def test_summary_names_each_field_by_its_path_inside_optax_wrappers(wrap, prefix):
    tx = wrap(osw.switch_on_plateau([ADAM, SGD], patience=3))
    summary = osw.summary(tx.init(make_params()))
    expected = PLATEAU if not prefix else prefixed(prefix, PLATEAU)
    assert as_python(summary) == expected
    assert all(value.shape == () for value in summary.values())


def test_summary_follows_the_plateau_model_and_the_requests():
    tx = osw.switch_on_plateau([ADAM, SGD, ADAM], patience=3, cooldown=2)
    params = make_params()
    opt_state = tx.init(params)
    step = make_step(tx)
    model = PlateauModel(patience=3, cooldown=2)
    phase = 0
    for t, value in enumerate([3.0, 2.0, 2.5, 2.5, 2.5, 2.6, 1.0, 1.5]):
        opt_state = osw.observe(opt_state, value)
        model.observe(value)
        if t == 1:
            opt_state = osw.request_switch(opt_state)
            assert bool(osw.summary(opt_state)["requested"])
        summary = as_python(osw.summary(opt_state))
        assert summary["trigger_state/best"] == np.float32(model.best)
        assert summary["trigger_state/bad_count"] == model.bad_count
        assert summary["trigger_state/cooldown_count"] == model.cooldown_count
        assert summary["trigger_state/pending"] == model.pending
        phase += model.update() or t == 1
        params, opt_state = step(params, opt_state, {})
        summary = as_python(osw.summary(opt_state))
        assert summary["phase"] == min(phase, 2)
        assert summary["count"] == t + 1
        assert not summary["requested"]


def test_summary_describes_nested_states_and_triggers_under_unique_keys():
    spike = osw.on_spike(factor=2.0, window=3, warmup=1)
    tx = optax.chain(
        osw.resettable(ADAM, osw.any_of(osw.every(5), spike, osw.on_plateau())),
        osw.switch_at([osw.resettable(SGD, osw.every(2)), ADAM], [4]),
    )
    params = make_params()
    opt_state = tx.init(params)
    step = make_step(tx)
    for value in [1.0, 2.0, 4.5]:
        params, opt_state = step(params, opt_state, {"value": jnp.float32(value)})
    summary = as_python(osw.summary(opt_state))
    assert summary == {
        "0/resets": 1,  # The spike: 4.5 > 2 * mean(1, 2).
        "0/count": 3,
        "0/requested": False,
        "0/trigger_state/1/mean": pytest.approx((1.0 + 2.0 + 4.5) / 3),
        "0/trigger_state/1/num_recorded": 3,
        "0/trigger_state/1/pending": False,
        "0/trigger_state/2/best": 1.0,
        "0/trigger_state/2/bad_count": 2,
        "0/trigger_state/2/cooldown_count": 0,
        "0/trigger_state/2/pending": False,
        "1/phase": 0,
        "1/count": 3,
        "1/requested": False,
        "1/inner_states/0/resets": 1,  # every(2): update 2.
        "1/inner_states/0/count": 3,
        "1/inner_states/0/requested": False,
    }


def test_summary_is_jittable_and_empty_without_combinators():
    tx = osw.switch_on_plateau([ADAM, SGD], patience=3)
    opt_state = osw.observe(tx.init(make_params()), 2.0)
    jitted = jax.jit(osw.summary)(opt_state)
    assert as_python(jitted) == as_python(osw.summary(opt_state))
    assert osw.summary(ADAM.init(make_params())) == {}


def test_summary_reads_a_shared_memory_switch_and_a_batch_of_states():
    tx = osw.switch_at([osw.resettable(ADAM), SGD], [3], share_memory=True)
    summary = as_python(osw.summary(tx.init(make_params())))
    assert summary == {
        "phase": 0,
        "count": 0,
        "requested": False,
        "inner_states/rests/0/resets": 0,
        "inner_states/rests/0/count": 0,
        "inner_states/rests/0/requested": False,
    }
    population = jax.vmap(osw.on_spike(window=2).init)(jnp.zeros(4))
    assert osw.summary(population)["mean"].shape == (4,)


def test_summary_inside_a_flax_train_state():
    tx = osw.switch_on_plateau([ADAM, SGD], patience=3)
    state = train_state.TrainState.create(
        apply_fn=lambda params, x: x, params=make_params(), tx=tx
    )
    assert as_python(osw.summary(state)) == prefixed("opt_state", PLATEAU)


def test_summary_of_an_nnx_optimizer_and_of_its_nnx_state():
    from flax import nnx

    model = nnx.Linear(2, 1, rngs=nnx.Rngs(0))
    tx = osw.switch_on_plateau([ADAM, SGD], patience=3)
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    expected = prefixed("opt_state", PLATEAU)
    assert as_python(osw.summary(optimizer)) == expected
    assert as_python(osw.summary(nnx.state(optimizer))) == expected

"""Bad arguments fail early, naming the argument and quoting the bad value."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optaxswap as osw

ADAM = optax.adam(1e-2)
SGD = optax.sgd(1e-2)
PARAMS = jnp.zeros(3)


def raises(error: type[Exception], *fragments: str):
    """``pytest.raises`` whose message must contain every fragment verbatim."""
    return pytest.raises(error, match="(?s)" + ".*".join(map(re.escape, fragments)))


def case(case_id: str, make, error: type[Exception], *fragments: str):
    return pytest.param(make, error, fragments, id=case_id)


@pytest.mark.parametrize(
    "make, error, fragments",
    [
        case("at_zero", lambda: osw.at_steps([0, 3]), ValueError, "boundaries[0]", "0"),
        case("at_negative", lambda: osw.at_steps([-2]), ValueError, "[0]", "-2"),
        case("at_repeated", lambda: osw.at_steps([3, 3]), ValueError, "[3, 3]"),
        case("at_decreasing", lambda: osw.at_steps([5, 2]), ValueError, "[5, 2]"),
        case("at_float", lambda: osw.at_steps([1.5]), TypeError, "[0]", "1.5"),
        case("at_int", lambda: osw.at_steps(3), TypeError, "boundaries", "3"),
        case("at_str", lambda: osw.at_steps("12"), TypeError, "boundaries", "'12'"),
        case(
            "at_int32_max",
            lambda: osw.at_steps([2**31 - 1]),
            ValueError,
            "boundaries",
            "2147483647",
        ),
        case("every_zero", lambda: osw.every(0), ValueError, "n ", "0"),
        case("every_negative", lambda: osw.every(-3), ValueError, "n ", "-3"),
        case("every_float", lambda: osw.every(2.0), TypeError, "n ", "2.0"),
        case("every_bool", lambda: osw.every(True), TypeError, "n ", "True"),
        case("every_start", lambda: osw.every(3, start=-1), ValueError, "start", "-1"),
        case("when_not_callable", lambda: osw.when(3), TypeError, "predicate", "3"),
        case("any_of_none", lambda: osw.any_of(), ValueError, "any_of"),
        case(
            "any_of_not_trigger",
            lambda: osw.any_of(osw.never(), "x"),
            TypeError,
            "triggers[1]",
            "'x'",
        ),
    ],
)
def test_bad_trigger_arguments_raise_naming_them(make, error, fragments):
    with raises(error, *fragments):
        make()


@pytest.mark.parametrize(
    "name, value, error",
    [
        ("patience", 0, ValueError),
        ("patience", -1, ValueError),
        ("patience", 2.5, TypeError),
        ("cooldown", -1, ValueError),
        ("accumulation_size", 0, ValueError),
        ("rtol", -0.1, ValueError),
        ("rtol", float("nan"), ValueError),
        ("atol", -1.0, ValueError),
        ("atol", float("inf"), ValueError),
        ("atol", "0.1", TypeError),
        ("mode", "mean", ValueError),
        ("mode", "MIN", ValueError),
    ],
)
@pytest.mark.parametrize("constructor", ["on_plateau", "switch_on_plateau"])
def test_bad_plateau_arguments_raise_naming_them(constructor, name, value, error):
    if constructor == "on_plateau":
        make = lambda: osw.on_plateau(**{name: value})  # noqa: E731
    else:
        make = lambda: osw.switch_on_plateau([ADAM, SGD], **{name: value})  # noqa: E731
    with raises(error, name, repr(value)):
        make()


def test_bad_mode_lists_the_allowed_modes():
    with raises(ValueError, "'min'", "'max'", "'mean'"):
        osw.on_plateau(mode="mean")


@pytest.mark.parametrize(
    "transforms, boundaries, fragments",
    [
        ([ADAM, SGD], [], ("len(transforms) - 1 = 1", "got 0")),
        ([ADAM, SGD], [3, 5], ("len(transforms) - 1 = 1", "[3, 5]")),
        ([ADAM, SGD, ADAM], [4], ("len(transforms) - 1 = 2", "[4]")),
        ([ADAM], [2], ("len(transforms) - 1 = 0", "[2]")),
        ([ADAM, SGD], [0], ("boundaries[0]", "0")),
        ([ADAM, SGD, ADAM], [6, 4], ("increasing", "[6, 4]")),
    ],
)
def test_switch_at_checks_its_boundaries(transforms, boundaries, fragments):
    with raises(ValueError, *fragments):
        osw.switch_at(transforms, boundaries)


@pytest.mark.parametrize(
    "make",
    [
        lambda: osw.switch([], osw.never()),
        lambda: osw.switch_at([], []),
        lambda: osw.switch_on_plateau([]),
    ],
    ids=["switch", "switch_at", "switch_on_plateau"],
)
def test_empty_transform_list_raises(make):
    with raises(ValueError, "transforms", "non-empty", "[]"):
        make()


@pytest.mark.parametrize(
    "make, error, fragments",
    [
        case(
            "switch_transform",
            lambda: osw.switch([ADAM, "sgd"], osw.never()),
            TypeError,
            "transforms[1]",
            "'sgd'",
        ),
        case(
            "switch_not_a_list",
            lambda: osw.switch(ADAM, osw.never()),
            TypeError,
            "transforms",
        ),
        case(
            "switch_trigger",
            lambda: osw.switch([ADAM], "never"),
            TypeError,
            "trigger",
            "'never'",
        ),
        case(
            "switch_handoff",
            lambda: osw.switch([ADAM], osw.never(), handoff=3),
            TypeError,
            "handoff",
            "3",
        ),
        case(
            "switch_cycle",
            lambda: osw.switch([ADAM], osw.never(), cycle=1),
            TypeError,
            "cycle",
            "1",
        ),
        case("resettable_inner", lambda: osw.resettable("adam"), TypeError, "'adam'"),
        case(
            "resettable_trigger",
            lambda: osw.resettable(ADAM, lambda c: True),
            TypeError,
            "trigger",
        ),
        case(
            "fields_string",
            lambda: osw.resettable(ADAM, fields="mu"),
            TypeError,
            "fields",
            "'mu'",
            "('mu',)",
        ),
        case(
            "fields_not_str",
            lambda: osw.resettable(ADAM, fields=("mu", 2)),
            TypeError,
            "fields[1]",
            "2",
        ),
    ],
)
def test_wrong_types_raise_type_error_naming_the_argument(make, error, fragments):
    with raises(error, *fragments):
        make()


def test_empty_fields_raise():
    with raises(ValueError, "fields", "()"):
        osw.resettable(ADAM, fields=())


def test_unknown_field_raises_at_init_naming_the_existing_fields():
    tx = osw.resettable(ADAM, osw.every(2), fields=("mu", "momentum"))
    with raises(ValueError, "'momentum'", "'count'", "'mu'", "'nu'"):
        tx.init(PARAMS)


# An init that reads the params' values (not only their shapes), as a
# lookahead's slow copy would: its re-initialization needs the params.
COPYING = optax.GradientTransformation(
    lambda params: jax.tree.map(jnp.array, params),
    lambda updates, state, params=None: (updates, state),
)


@pytest.mark.parametrize(
    "tx",
    [
        osw.resettable(COPYING, osw.every(2)),
        osw.switch_at([SGD, COPYING], [2]),
        osw.switch_on_plateau([ADAM, COPYING]),
    ],
    ids=["resettable", "switch_at", "switch_on_plateau"],
)
def test_update_without_params_says_params_are_needed(tx):
    state = tx.init(PARAMS)
    with raises(ValueError, "needs params", "tx.update(updates, state, params)"):
        tx.update(PARAMS, state)
    with raises(ValueError, "needs params"):
        jax.jit(lambda g, s: tx.update(g, s, None))(PARAMS, state)


@pytest.mark.parametrize(
    "value, fragments",
    [
        (jnp.zeros(2), ("scalar", "(2,)")),
        (jnp.zeros((1,)), ("scalar", "(1,)")),
        (jnp.int32(3), ("floating-point", "int32")),
        (3, ("floating-point", "int32")),
        (True, ("floating-point", "bool")),
    ],
    ids=["vector", "one_element_vector", "int32", "python_int", "bool"],
)
def test_non_scalar_or_integer_metric_value_raises(value, fragments):
    tx = osw.switch_on_plateau([ADAM, SGD])
    state = tx.init(PARAMS)
    with raises(ValueError, "value", *fragments):
        osw.observe(state, value)
    with raises(ValueError, "value", *fragments):
        tx.update(PARAMS, state, PARAMS, value=value)


@pytest.mark.parametrize("reader", [osw.phase, osw.reset_count])
def test_readers_raise_without_a_combinator_state(reader):
    with raises(ValueError, "exactly one", "found 0"):
        reader(ADAM.init(PARAMS))


@pytest.mark.parametrize(
    "trigger",
    [
        osw.when(lambda context: jnp.ones(2, bool)),
        osw.any_of(osw.never(), osw.when(lambda context: jnp.ones(2, bool))),
    ],
    ids=["when", "any_of"],
)
def test_trigger_deciding_with_a_non_scalar_raises(trigger):
    tx = osw.resettable(ADAM, trigger)
    with raises(ValueError, "scalar", "(2,)"):
        tx.update(PARAMS, tx.init(PARAMS), PARAMS)


@pytest.mark.parametrize(
    "make",
    [
        lambda: osw.switch(optax.adam(0.1), osw.never()),
        lambda: osw.switch_at(optax.adam(0.1), []),
        lambda: osw.switch_on_plateau(optax.chain(optax.adam(0.1))),
        lambda: osw.switch(SGD, osw.every(2)),
    ],
    ids=["switch", "switch_at", "switch_on_plateau", "plain_transform"],
)
def test_a_single_transform_for_the_sequence_raises_suggesting_a_list(make):
    with raises(TypeError, "transforms", "sequence", "single transform", "[tx]"):
        make()


@pytest.mark.parametrize(
    "value, fragments",
    [
        (None, ("value", "floating-point scalar", "None", "NoneType")),
        ("1.0", ("value", "floating-point scalar", "'1.0'", "str")),
        (np.array(["a"]), ("value", "floating-point scalar", "ndarray")),
        ([1.0], ("value", "floating-point scalar", "[1.0]", "list")),
    ],
    ids=["none", "str", "str_array", "list"],
)
def test_metric_value_of_the_wrong_type_raises_naming_value(value, fragments):
    state = osw.switch_on_plateau([ADAM, SGD]).init(PARAMS)
    with raises(TypeError, *fragments):
        osw.observe(state, value)


def test_update_metric_of_the_wrong_type_raises_naming_the_keyword():
    tx = osw.resettable(ADAM, osw.on_spike(metric_arg="spike_loss"))
    with raises(TypeError, "spike_loss", "floating-point scalar", "'high'"):
        tx.update(PARAMS, tx.init(PARAMS), PARAMS, spike_loss="high")


@pytest.mark.parametrize(
    "make, error, fragments",
    [
        case("int", lambda: osw.on_plateau(metric_arg=3), TypeError, "metric_arg", "3"),
        case(
            "not_identifier",
            lambda: osw.on_spike(metric_arg="val loss"),
            TypeError,
            "metric_arg",
            "'val loss'",
        ),
        case(
            "params",
            lambda: osw.switch_on_plateau([ADAM], metric_arg="params"),
            ValueError,
            "metric_arg",
            "'params'",
        ),
    ],
)
def test_bad_metric_arg_raises_naming_it(make, error, fragments):
    with raises(error, *fragments):
        make()

"""Random arguments to every public constructor, judged by a plain-Python model.

For each constructor argument, ``ARGUMENTS`` states in plain Python which
values the SPEC and the docstrings allow. Hypothesis then throws values of all
kinds at one argument at a time (the others valid): an allowed value must
construct, any other must raise ``ValueError`` or ``TypeError`` naming the
argument, at construction, never silently and never from deep inside JAX.
Every public name is either covered here or listed with the reason it is not
a constructor, so a new public function fails ``test_every_public_*`` until it
is added.
"""

from collections.abc import Callable, Sequence
import dataclasses
import inspect
import math
import numbers
from typing import Any

import hypothesis
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optaxswap as osw
from optaxswap import recipes

INT32_MAX = int(np.iinfo(np.int32).max)
SGD = optax.sgd(0.1)
ADAM = optax.adam(0.1)
TRIGGER = osw.at_steps([3])


# ---------------------------------------------------------------------------
# The model: which values each kind of argument allows.
# ---------------------------------------------------------------------------


def is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def int_at_least(minimum: int) -> Callable[[Any], bool]:
    # Counters are int32, so an argument beyond their range is refused.
    return lambda value: is_int(value) and minimum <= value <= INT32_MAX


def real_in(
    low: float, high: float | None = None, *, low_open: bool = False
) -> Callable[[Any], bool]:
    def allowed(value: Any) -> bool:
        # A concrete array scalar counts as its number (as documented in
        # ``_validation.check_real``): ``factor=jnp.array(2)`` is allowed.
        if isinstance(value, jax.Array | np.ndarray) and np.ndim(value) == 0:
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return False
        try:
            value = float(value)
        except OverflowError:  # An int beyond float range is no finite float.
            return False
        above = value > low if low_open else value >= low
        return math.isfinite(value) and above and (high is None or value < high)

    return allowed


def learning_rate(value: Any) -> bool:
    return callable(value) or real_in(0.0, low_open=True)(value)


def is_transform(value: Any) -> bool:
    return callable(getattr(value, "init", None)) and callable(
        getattr(value, "update", None)
    )


def transforms_of_length(*lengths: int) -> Callable[[Any], bool]:
    def allowed(value: Any) -> bool:
        return (
            isinstance(value, Sequence)
            and not isinstance(value, str | bytes)
            and len(value) in lengths
            and all(is_transform(tx) for tx in value)
        )

    return allowed


def boundaries_of_length(*lengths: int | None) -> Callable[[Any], bool]:
    def allowed(value: Any) -> bool:
        if isinstance(value, str | bytes) or not isinstance(
            value, Sequence | np.ndarray
        ):
            return False
        if isinstance(value, np.ndarray) and value.ndim != 1:
            return False  # A 0-d array holds no sequence of steps.
        steps = list(value)
        return (
            (None in lengths or len(steps) in lengths)
            and all(int_at_least(1)(step) and step < INT32_MAX for step in steps)
            and all(later > earlier for earlier, later in zip(steps, steps[1:]))
        )

    return allowed


def field_names(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return False
    try:
        names = list(value)
    except TypeError:
        return False
    return len(names) > 0 and all(isinstance(name, str) for name in names)


def one_of_choices(*choices: str) -> Callable[[Any], bool]:
    return lambda value: isinstance(value, str) and value in choices


def is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def is_trigger(value: Any) -> bool:
    return isinstance(value, osw.Trigger)


def or_none(allowed: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: value is None or allowed(value)


@dataclasses.dataclass(frozen=True)
class Argument:
    """One keyword argument, a value it accepts, and the model of the rest."""

    name: str
    valid: Any
    allowed: Callable[[Any], bool]


def decays() -> list[Argument]:
    return [
        Argument("learning_rate", 1e-3, learning_rate),
        Argument("b1", 0.9, real_in(0.0, 1.0)),
        Argument("b2", 0.999, real_in(0.0, 1.0, low_open=True)),
        Argument("eps", 1e-8, real_in(0.0)),
    ]


def plateau_arguments() -> list[Argument]:
    return [
        Argument("patience", 3, int_at_least(1)),
        Argument("cooldown", 0, int_at_least(0)),
        Argument("rtol", 1e-4, real_in(0.0)),
        Argument("atol", 0.0, real_in(0.0)),
        Argument("mode", "min", one_of_choices("min", "max")),
        Argument("accumulation_size", 1, int_at_least(1)),
    ]


def switch_options() -> list[Argument]:
    return [
        Argument("handoff", None, or_none(callable)),
        Argument("cycle", False, is_bool),
        Argument("share_memory", False, is_bool),
    ]


ARGUMENTS: dict[str, tuple[Callable[..., Any], list[Argument]]] = {
    "at_steps": (
        osw.at_steps,
        [Argument("boundaries", [2, 5], boundaries_of_length(None))],
    ),
    "every": (
        osw.every,
        [
            Argument("n", 3, int_at_least(1)),
            Argument("start", None, or_none(int_at_least(0))),
        ],
    ),
    "when": (osw.when, [Argument("predicate", lambda context: True, callable)]),
    "on_plateau": (osw.on_plateau, plateau_arguments()),
    "on_spike": (
        osw.on_spike,
        [
            Argument("factor", 2.0, real_in(1.0)),
            Argument("window", 10, int_at_least(1)),
            Argument("warmup", None, or_none(int_at_least(1))),
        ],
    ),
    "resettable": (
        osw.resettable,
        [
            Argument("inner", SGD, is_transform),
            Argument("trigger", None, or_none(is_trigger)),
            Argument("fields", None, field_names),
        ],
    ),
    "switch": (
        osw.switch,
        [
            Argument("transforms", [SGD, ADAM], transforms_of_length(1, 2, 3, 4)),
            Argument("trigger", TRIGGER, is_trigger),
            *switch_options(),
        ],
    ),
    "switch_at": (
        osw.switch_at,
        [
            # Two transforms need exactly one boundary, and vice versa.
            Argument("transforms", [SGD, ADAM], transforms_of_length(2)),
            Argument("boundaries", [5], boundaries_of_length(1)),
            *switch_options(),
        ],
    ),
    "switch_on_plateau": (
        osw.switch_on_plateau,
        [
            Argument("transforms", [SGD, ADAM], transforms_of_length(1, 2, 3, 4)),
            *plateau_arguments(),
            *switch_options(),
        ],
    ),
    "swats": (
        osw.swats,
        [*decays(), Argument("switch_eps", 1e-9, real_in(0.0, low_open=True))],
    ),
    "wrap_state": (
        lambda **kwargs: osw.wrap_state(
            osw.switch_at([ADAM, SGD], [4]),
            jnp.zeros(2),
            ADAM.init(jnp.zeros(2)),
            **kwargs,
        ),
        [Argument("count", 0, int_at_least(0))],
    ),
    "recipes.spam": (
        recipes.spam,
        [
            *decays(),
            Argument("interval", 500, int_at_least(1)),
            Argument("warmup", 150, int_at_least(0)),
            Argument("threshold", 5000.0, or_none(real_in(0.0, low_open=True))),
            Argument("clip_delay", 20, int_at_least(0)),
        ],
    ),
    "recipes.adam_rel": (
        recipes.adam_rel,
        [*decays(), Argument("trigger", None, or_none(is_trigger))],
    ),
    "recipes.target_sync_reset": (
        recipes.target_sync_reset,
        [
            Argument("inner", ADAM, is_transform),
            Argument("trigger", None, or_none(is_trigger)),
        ],
    ),
}

# Public names that build nothing from user arguments, and why.
NOT_CONSTRUCTORS = {
    "PlateauState": "a state type, built by on_plateau's init",
    "ResettableState": "a state type, built by resettable's init",
    "SpikeState": "a state type, built by on_spike's init",
    "SwitchState": "a state type, built by switch's init",
    "Trigger": "a NamedTuple of two functions, any_of checks its arguments are one",
    "TriggerContext": "built by the combinators for each update",
    "never": "takes no argument",
    "handoff": "a module of hand-off functions called by switch",
    "recipes": "a module; its constructors are listed as recipes.*",
    "observe": "a helper on states; its value is checked in test_nonfinite",
    "phase": "a reader of states",
    "reset_count": "a reader of states",
    "request_reset": "a writer of states",
    "request_switch": "a writer of states",
    "summary": "a reader of states",
    "check_structure": "compares two trees; tested with the checkpoint faults",
    "restore_checkpoint": "restores a checkpoint; tested with the checkpoint faults",
    "any_of": "variadic; covered by test_any_of_refuses_*",
    "recipes.spam_warmup_scale": "a jittable schedule on an array, not a constructor",
}


def public_callables() -> set[str]:
    names = set(osw.__all__)
    names |= {
        f"recipes.{name}"
        for name, value in inspect.getmembers(recipes, inspect.isfunction)
        if value.__module__ == recipes.__name__ and not name.startswith("_")
    }
    return names


def test_every_public_name_is_fuzzed_or_explained():
    unaccounted = public_callables() - ARGUMENTS.keys() - NOT_CONSTRUCTORS.keys()
    assert not unaccounted, f"add these to ARGUMENTS or NOT_CONSTRUCTORS: {unaccounted}"


def test_fuzzed_names_are_all_still_public():
    listed = ARGUMENTS.keys() | NOT_CONSTRUCTORS.keys()
    assert listed <= public_callables()


@pytest.mark.parametrize("name", sorted(ARGUMENTS))
def test_the_valid_arguments_construct(name):
    constructor, arguments = ARGUMENTS[name]
    constructor(**{argument.name: argument.valid for argument in arguments})


# ---------------------------------------------------------------------------
# Random values of every kind.
# ---------------------------------------------------------------------------

scalars = st.one_of(
    st.integers(-3, 12),
    st.integers(-(2**40), 2**40),
    st.sampled_from([0, 1, -1, INT32_MAX - 1, INT32_MAX, INT32_MAX + 1, 10**400]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(0.0, 1.0, exclude_max=True),
    st.sampled_from([0.5, 1.0, 1.5, 2.0, 1e-9, -0.0, float("nan"), float("inf")]),
    st.booleans(),
    st.none(),
    st.integers(-3, 12).map(np.int64),
    st.floats(-2.0, 3.0, width=32).map(np.float32),
    st.complex_numbers(max_magnitude=3),
)
oddities = st.sampled_from(
    [
        "min",
        "max",
        "MIN",
        "",
        "mu",
        b"min",
        object(),
        {"a": 1},
        {"mu", "nu"},
        jnp.array(2),
        jnp.array(0.5),
        jnp.array([1, 2]),
        np.array([1, 3]),
        np.array([2.5]),
        SGD,
        TRIGGER,
        osw.never(),
        lambda context: True,
        print,
        int,
    ]
)
values = st.recursive(
    scalars | oddities,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=3).map(tuple)
        | st.lists(st.sampled_from([SGD, ADAM, TRIGGER, "mu", 3, object()]), max_size=4)
    ),
    max_leaves=6,
)

cases = st.sampled_from(
    [(name, argument) for name, (_, args) in ARGUMENTS.items() for argument in args]
)


def test_a_concrete_array_scalar_is_checked_like_its_number():
    """Found by the fuzz test below: the model refused what the docs allow."""
    osw.on_spike(factor=jnp.array(2))
    osw.on_plateau(rtol=jnp.array(0.5))
    with pytest.raises(ValueError, match="factor"):
        osw.on_spike(factor=jnp.array(0.5))
    with pytest.raises(TypeError, match="factor"):
        osw.on_spike(factor=jnp.array([2.0]))


@settings(max_examples=600)
@given(case=cases, value=values)
def test_constructors_accept_exactly_what_the_model_allows(case, value):
    name, argument = case
    constructor, arguments = ARGUMENTS[name]
    kwargs = {other.name: other.valid for other in arguments}
    kwargs[argument.name] = value
    if argument.allowed(value):
        hypothesis.event("allowed value, constructed")
        constructor(**kwargs)
        return
    hypothesis.event("bad value, refused")
    with pytest.raises((ValueError, TypeError)) as raised:
        constructor(**kwargs)
    message = str(raised.value)
    assert argument.name in message, (name, argument.name, value, message)


@given(triggers=st.lists(values, max_size=3))
def test_any_of_refuses_anything_but_one_or_more_triggers(triggers):
    if triggers and all(is_trigger(trigger) for trigger in triggers):
        osw.any_of(*triggers)
        return
    with pytest.raises((ValueError, TypeError), match="trigger"):
        osw.any_of(*triggers)

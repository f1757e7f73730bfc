"""Property-based tests: random triggers, values and nestings vs. the reference.

Every property compares optaxswap with the plain-Python model of the SPEC in
``tests/reference.py`` (or, for nesting, a plain-Python simulation of the
combinators built on it), never with optaxswap itself. Compilation is what
costs here, so the trigger property runs eagerly and the two properties that
jit a train step keep their example counts small.
"""

from collections.abc import Callable
import dataclasses
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
import reference

import optaxswap as osw

NUM_FLAGS = 3

# ---------------------------------------------------------------------------
# Random trigger configurations, each with its plain-Python model.
# ---------------------------------------------------------------------------


class StepModel:
    """A model trigger whose fire depends on the update number and flags."""

    def __init__(self, fires: Callable[[int, tuple[bool, ...]], bool]):
        self._fires = fires

    def update(self, t: int, value: float | None, flags: tuple[bool, ...]) -> bool:
        return self._fires(t, flags)

    def observe(self, value: float) -> None:
        pass


class PlateauLeafModel:
    def __init__(self, kwargs: dict[str, Any]):
        self.plateau = reference.PlateauModel(**kwargs)

    def update(self, t: int, value: float | None, flags: tuple[bool, ...]) -> bool:
        return self.plateau.update(value)

    def observe(self, value: float) -> None:
        self.plateau.observe(value)


class AnyOfModel:
    def __init__(self, children: list[Any]):
        self.children = children

    def update(self, t: int, value: float | None, flags: tuple[bool, ...]) -> bool:
        # Every child advances on every update: no short-circuit.
        fires = [child.update(t, value, flags) for child in self.children]
        return any(fires)

    def observe(self, value: float) -> None:
        for child in self.children:
            child.observe(value)


@dataclasses.dataclass(frozen=True)
class AtSteps:
    boundaries: tuple[int, ...]

    def build(self) -> osw.Trigger:
        return osw.at_steps(self.boundaries)

    def model(self) -> StepModel:
        return StepModel(lambda t, _: reference.at_steps_fires(self.boundaries, t))


@dataclasses.dataclass(frozen=True)
class Every:
    n: int
    start: int | None

    def build(self) -> osw.Trigger:
        return osw.every(self.n, start=self.start)

    def model(self) -> StepModel:
        return StepModel(lambda t, _: reference.every_fires(self.n, self.start, t))


@dataclasses.dataclass(frozen=True)
class Plateau:
    kwargs: tuple[tuple[str, Any], ...]

    def build(self) -> osw.Trigger:
        return osw.on_plateau(**dict(self.kwargs))

    def model(self) -> PlateauLeafModel:
        return PlateauLeafModel(dict(self.kwargs))


@dataclasses.dataclass(frozen=True)
class When:
    flag: int

    def build(self) -> osw.Trigger:
        return osw.when(lambda context: context.extra_args["flags"][self.flag])

    def model(self) -> StepModel:
        return StepModel(lambda _, flags: flags[self.flag])


@dataclasses.dataclass(frozen=True)
class AnyOf:
    children: tuple[Any, ...]

    def build(self) -> osw.Trigger:
        return osw.any_of(*(child.build() for child in self.children))

    def model(self) -> AnyOfModel:
        return AnyOfModel([child.model() for child in self.children])


# Metric values: float32-exact, including the awkward ones the SPEC names.
SPECIAL_VALUES = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e30, -1e30, 3.4e38, -3.4e38]
metric_values = st.one_of(
    st.integers(-6, 6).map(lambda i: i / 4),
    st.sampled_from(SPECIAL_VALUES),
    st.floats(width=32),
)
tolerances = st.one_of(
    st.sampled_from([0.0, 1e-4, 0.1, 0.5]), st.floats(0.0, 2.0, width=32)
)

plateaus = st.builds(
    lambda patience, cooldown, rtol, atol, mode, accumulation_size: Plateau(
        (
            ("patience", patience),
            ("cooldown", cooldown),
            ("rtol", rtol),
            ("atol", atol),
            ("mode", mode),
            ("accumulation_size", accumulation_size),
        )
    ),
    st.integers(1, 4),
    st.integers(0, 3),
    tolerances,
    tolerances,
    st.sampled_from(["min", "max"]),
    st.integers(1, 3),
)
leaf_triggers = st.one_of(
    st.lists(st.integers(1, 30), max_size=4, unique=True).map(
        lambda steps: AtSteps(tuple(sorted(steps)))
    ),
    st.builds(Every, st.integers(1, 10), st.none() | st.integers(0, 10)),
    plateaus,
    st.builds(When, st.integers(0, NUM_FLAGS - 1)),
)
# Leaves and any_of nested in any_of, up to 6 leaves in all.
triggers = st.recursive(
    leaf_triggers,
    lambda children: st.lists(children, min_size=1, max_size=3).map(
        lambda items: AnyOf(tuple(items))
    ),
    max_leaves=6,
)


@dataclasses.dataclass(frozen=True)
class Event:
    """One update, with its optional ``value=``, ``observe`` and request."""

    value: float | None
    flags: tuple[bool, ...]
    observed: float | None
    request: bool


def events(requests: st.SearchStrategy[bool]) -> st.SearchStrategy[list[Event]]:
    """Sequences long enough for plateaus and several fires to happen."""
    return st.lists(
        st.builds(
            Event,
            st.none() | metric_values,
            st.tuples(*[st.booleans()] * NUM_FLAGS),
            st.none() | metric_values,
            requests,
        ),
        min_size=8,
        max_size=40,
    )


def at_most(count: int, cap: int) -> str:
    """A count for hypothesis' statistics, with the tail in one bucket."""
    return f"{cap}+" if count >= cap else str(count)


def context_of(t: int, event: Event) -> osw.TriggerContext:
    extra_args = {"flags": jnp.asarray(event.flags)}
    if event.value is not None:
        extra_args["value"] = jnp.float32(event.value)
    return osw.TriggerContext(jnp.int32(t), None, None, extra_args)


def observe_if_watched(state: Any, value: Any) -> Any:
    """``osw.observe``, which raises where no trigger watches a metric.

    The models observe every value (a trigger that watches none ignores it),
    so a refusal where a trigger does watch would show as a missed fire.
    """
    try:
        return osw.observe(state, value)
    except ValueError as error:
        assert "found no on_plateau or on_spike" in str(error)
        return state


@settings(max_examples=200)
@given(spec=triggers, sequence=events(requests=st.just(False)))
def test_trigger_fires_where_the_reference_model_fires(spec, sequence):
    trigger, model = spec.build(), spec.model()
    state = trigger.init(None)
    fires, expected = [], []
    for t, event in enumerate(sequence):
        if event.observed is not None:
            state = observe_if_watched(state, jnp.float32(event.observed))
            model.observe(event.observed)
        fire, state = trigger.update(state, context_of(t, event))
        assert fire.shape == () and fire.dtype == jnp.bool_
        fires.append(bool(fire))
        expected.append(model.update(t, event.value, event.flags))
    hypothesis.event(f"trigger fires: {at_most(sum(expected), 3)}")
    assert fires == expected


PHASE_TRANSFORMS = [
    optax.sgd(0.1),
    optax.adam(0.05),
    optax.sgd(0.05, momentum=0.9),
    optax.adamw(0.01),
]
SWITCH_PARAMS = jnp.array([0.5, -1.0, 2.0])


@settings(max_examples=20)
@given(
    spec=triggers,
    num_phases=st.integers(1, 3),
    cycle=st.booleans(),
    sequence=events(requests=st.sampled_from([False, False, True])),
)
def test_switch_phases_follow_the_reference_model(spec, num_phases, cycle, sequence):
    tx = osw.switch(PHASE_TRANSFORMS[:num_phases], spec.build(), cycle=cycle)
    model = spec.model()

    @jax.jit
    def step(params, state, flags, value):
        extra_args = {"flags": flags}
        if value is not None:
            extra_args["value"] = value
        updates, state = tx.update(params, state, params, **extra_args)
        return optax.apply_updates(params, updates), state

    params, state = SWITCH_PARAMS, tx.init(SWITCH_PARAMS)
    phases, fires = [], []
    for t, event in enumerate(sequence):
        if event.observed is not None:
            state = observe_if_watched(state, jnp.float32(event.observed))
            model.observe(event.observed)
        if event.request:
            state = osw.request_switch(state)
        value = None if event.value is None else jnp.float32(event.value)
        params, state = step(params, state, jnp.asarray(event.flags), value)
        phases.append(int(osw.phase(state)))
        fires.append(model.update(t, event.value, event.flags) or event.request)
    expected = reference.switch_phases(fires, num_phases, cycle)
    hypothesis.event(f"switch fires: {at_most(sum(fires), 5)}")
    cycled = any(earlier > later for earlier, later in zip(expected, expected[1:]))
    hypothesis.event(f"returned to phase 0 by cycle: {cycled}")
    assert phases == expected
    # One compilation with value= and one without, however many switches.
    assert step._cache_size() <= 2


# ---------------------------------------------------------------------------
# Random nesting: combinators inside optax wrappers and inside each other.
# ---------------------------------------------------------------------------

NEST_PARAMS = {"a": jnp.array([1.0, -2.0]), "b": jnp.array([0.5, 3.0, -1.0])}
LABELS = {"a": "a", "b": "b"}
INT32_MAX = int(np.iinfo(np.int32).max)


class Node:
    """A plain-Python simulation of one transform's state, updated in place."""

    def update(self) -> None:
        for child in self.children():
            child.update()

    def children(self) -> list["Node"]:
        return []

    def walk(self):
        yield self
        for child in self.children():
            yield from child.walk()

    def check(self, state: Any) -> None:
        """Asserts that ``state`` holds what this simulation says."""


class BaseNode(Node):
    pass


class ChainNode(Node):
    def __init__(self, spec):
        self.child = spec.child.fresh()

    def children(self):
        return [self.child]

    def check(self, state):
        self.child.check(state[1])


class PartitionNode(Node):
    def __init__(self, spec):
        self.first, self.second = spec.first.fresh(), spec.second.fresh()

    def children(self):
        return [self.first, self.second]

    def check(self, state):
        self.first.check(state.inner_states["a"].inner_state)
        self.second.check(state.inner_states["b"].inner_state)


class MultiStepsNode(Node):
    def __init__(self, spec):
        self.k, self.child, self.mini_step = spec.k, spec.child.fresh(), 0

    def children(self):
        return [self.child]

    def update(self):
        # optax.MultiSteps runs its inner update on every k-th call.
        if self.mini_step == self.k - 1:
            self.child.update()
        self.mini_step = (self.mini_step + 1) % self.k

    def check(self, state):
        assert int(state.mini_step) == self.mini_step
        self.child.check(state.inner_opt_state)


class CombinatorNode(Node):
    """What both combinators share: count, request flag, trigger."""

    def __init__(self, spec):
        self.spec, self.count, self.requested = spec, 0, False
        self.trigger = spec.trigger.model()

    def update(self):
        fire = self.trigger.update(self.count, None, ()) or self.requested
        self.act(fire)
        self.requested = False
        self.count = min(self.count + 1, INT32_MAX)

    def check(self, state):
        assert int(state.count) == self.count
        assert bool(state.requested) == self.requested


class SwitchNode(CombinatorNode):
    def __init__(self, spec):
        super().__init__(spec)
        self.phase, self.phases = 0, [phase.fresh() for phase in spec.phases]

    def children(self):
        return self.phases

    def act(self, fire):
        num_phases = len(self.phases)
        if fire and (self.spec.cycle or self.phase < num_phases - 1):
            # Leaving a phase re-initializes it, as entering one does.
            self.phases[self.phase] = self.spec.phases[self.phase].fresh()
            self.phase = (self.phase + 1) % num_phases
            self.phases[self.phase] = self.spec.phases[self.phase].fresh()
        self.phases[self.phase].update()

    def check(self, state):
        assert isinstance(state, osw.SwitchState)
        super().check(state)
        assert int(state.phase) == self.phase
        if self.spec.share_memory:
            return  # Only base optimizers, with nothing to check, share memory.
        for phase, phase_state in zip(self.phases, state.inner_states):
            phase.check(phase_state)


class ResettableNode(CombinatorNode):
    def __init__(self, spec):
        super().__init__(spec)
        self.resets, self.child = 0, spec.child.fresh()

    def children(self):
        return [self.child]

    def act(self, fire):
        if fire:
            self.resets += 1
            self.child = self.spec.child.fresh()
        self.child.update()

    def check(self, state):
        assert isinstance(state, osw.ResettableState)
        super().check(state)
        assert int(state.resets) == self.resets
        self.child.check(state.inner_state)


@dataclasses.dataclass(frozen=True)
class BaseSpec:
    name: str

    def build(self):
        return {
            "sgd": optax.sgd(0.1),
            "momentum": optax.sgd(0.1, momentum=0.9),
            "adam": optax.adam(0.1),
        }[self.name]

    def fresh(self):
        return BaseNode()


@dataclasses.dataclass(frozen=True)
class ChainSpec:
    child: Any

    def build(self):
        return optax.chain(optax.clip_by_global_norm(10.0), self.child.build())

    def fresh(self):
        return ChainNode(self)


@dataclasses.dataclass(frozen=True)
class PartitionSpec:
    first: Any
    second: Any

    def build(self):
        transforms = {"a": self.first.build(), "b": self.second.build()}
        return optax.partition(transforms, LABELS)

    def fresh(self):
        return PartitionNode(self)


@dataclasses.dataclass(frozen=True)
class MultiStepsSpec:
    child: Any
    k: int

    def build(self):
        return optax.MultiSteps(self.child.build(), self.k).gradient_transformation()

    def fresh(self):
        return MultiStepsNode(self)


@dataclasses.dataclass(frozen=True)
class SwitchSpec:
    phases: tuple[Any, ...]
    trigger: Any
    cycle: bool
    share_memory: bool = False

    def build(self):
        transforms = [phase.build() for phase in self.phases]
        return osw.switch(
            transforms,
            self.trigger.build(),
            cycle=self.cycle,
            share_memory=self.share_memory,
        )

    def fresh(self):
        return SwitchNode(self)


@dataclasses.dataclass(frozen=True)
class ResettableSpec:
    child: Any
    trigger: Any

    def build(self):
        return osw.resettable(self.child.build(), self.trigger.build())

    def fresh(self):
        return ResettableNode(self)


nest_triggers = st.one_of(
    st.lists(st.integers(1, 8), max_size=3, unique=True).map(
        lambda steps: AtSteps(tuple(sorted(steps)))
    ),
    st.builds(Every, st.integers(1, 4), st.none() | st.integers(0, 4)),
    st.builds(
        lambda patience: Plateau((("patience", patience), ("rtol", 0.0))),
        st.integers(1, 2),
    ),
)


BASES = st.sampled_from(["sgd", "momentum", "adam"]).map(BaseSpec)


def combinators(inner: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(
        st.builds(
            SwitchSpec,
            st.lists(inner, min_size=1, max_size=3).map(tuple),
            nest_triggers,
            st.booleans(),
            st.booleans(),
        ),
        st.builds(ResettableSpec, inner, nest_triggers),
    )


def nestings(depth: int) -> st.SearchStrategy:
    """Transforms with combinators and optax wrappers nested up to ``depth``."""
    if depth == 0:
        return BASES
    inner = nestings(depth - 1)
    return st.one_of(
        BASES,
        combinators(inner),
        st.builds(ChainSpec, inner),
        st.builds(PartitionSpec, inner, inner),
        st.builds(MultiStepsSpec, inner, st.integers(1, 3)),
    )


def with_a_combinator(depth: int) -> st.SearchStrategy:
    """Like :func:`nestings`, with at least one combinator in the tree."""
    if depth == 1:
        return combinators(BASES)
    holding = with_a_combinator(depth - 1)
    return st.one_of(
        combinators(nestings(depth - 1)),
        # Combinators inside combinators: re-initializing a state re-initializes
        # the combinator states nested in it.
        combinators(holding),
        st.builds(ChainSpec, holding),
        st.builds(PartitionSpec, holding, nestings(depth - 1)),
        st.builds(MultiStepsSpec, holding, st.integers(1, 3)),
    )


def leaf_signature(tree: Any) -> list[tuple[Any, ...]]:
    return [
        (leaf.shape, leaf.dtype, getattr(leaf, "weak_type", False))
        for leaf in jax.tree.leaves(tree)
    ]


@dataclasses.dataclass(frozen=True)
class Steering:
    """What the host does before one update."""

    observed: float | None
    request_switch: bool
    request_reset: bool


steerings = st.lists(
    st.builds(
        Steering,
        st.none() | st.sampled_from([1.0, 2.0, 0.5, 0.5, np.nan]),
        st.sampled_from([False, False, True]),
        st.sampled_from([False, False, True]),
    ),
    min_size=8,
    max_size=8,
)


def depth(node: Node) -> int:
    """How many transforms deep the simulation's tree goes below its root."""
    return max((1 + depth(child) for child in node.children()), default=0)


def check_helpers(simulation: Node, state: Any) -> None:
    """``phase``/``reset_count`` find the one state, or refuse several."""
    for helper, node_type, field in [
        (osw.phase, SwitchNode, "phase"),
        (osw.reset_count, ResettableNode, "resets"),
    ]:
        nodes = [node for node in simulation.walk() if isinstance(node, node_type)]
        if len(nodes) == 1:
            assert int(helper(state)) == getattr(nodes[0], field)
        else:
            try:
                helper(state)
            except ValueError as error:
                assert f"found {len(nodes)}" in str(error)
            else:
                raise AssertionError(f"{helper.__name__} accepted {len(nodes)}")


@settings(max_examples=20)
@given(spec=with_a_combinator(3), plan=steerings)
def test_random_nesting_compiles_once_and_matches_the_simulation(spec, plan):
    tx, simulation = spec.build(), spec.fresh()
    state = tx.init(NEST_PARAMS)
    structure, signature = jax.tree.structure(state), leaf_signature(state)

    @jax.jit
    def step(params, state):
        updates, state = tx.update(params, state, params)
        return optax.apply_updates(params, updates), state

    params = NEST_PARAMS
    for steering in plan:
        if steering.observed is not None:
            state = observe_if_watched(state, steering.observed)
            for node in simulation.walk():
                if isinstance(node, CombinatorNode):
                    node.trigger.observe(steering.observed)
        for requested, node_type, request in [
            (steering.request_switch, SwitchNode, osw.request_switch),
            (steering.request_reset, ResettableNode, osw.request_reset),
        ]:
            nodes = [n for n in simulation.walk() if isinstance(n, node_type)]
            if requested and not nodes:
                # Nothing to request from: the writer says so.
                with pytest.raises(ValueError, match=request.__name__):
                    request(state)
            elif requested:
                state = request(state)
                for node in nodes:
                    node.requested = True
        simulation.check(state)
        params, state = step(params, state)
        simulation.update()
        simulation.check(state)
        check_helpers(simulation, state)
        assert jax.tree.structure(state) == structure
        assert leaf_signature(state) == signature
    combinators = [n for n in simulation.walk() if isinstance(n, CombinatorNode)]
    hypothesis.event(f"combinators in the tree: {at_most(len(combinators), 4)}")
    hypothesis.event(f"nesting depth: {depth(simulation)}")
    acted = any(
        getattr(node, "phase", 0) or getattr(node, "resets", 0)
        for node in simulation.walk()
    )
    hypothesis.event(f"some switch or reset happened: {acted}")
    shared = any(getattr(node.spec, "share_memory", False) for node in combinators)
    hypothesis.event(f"a switch shares memory: {shared}")
    assert step._cache_size() == 1


def test_helpers_find_states_nested_in_a_shared_memory_switch():
    inner = osw.resettable(optax.adam(0.1), osw.on_plateau(patience=1))
    tx = osw.switch(
        [inner, optax.sgd(0.1, momentum=0.9)], osw.never(), share_memory=True
    )
    params = jnp.zeros(2)
    state = tx.init(params)
    # 1.0 improves on +inf, 2.0 is bad: patience 1 is reached.
    state = osw.observe(osw.observe(state, 1.0), 2.0)
    _, state = tx.update(params, state, params)
    assert int(osw.reset_count(state)) == 1

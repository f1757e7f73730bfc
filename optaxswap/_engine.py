"""The one code path both combinators share.

Evaluate the trigger, re-initialize what the update enters or leaves, run the
active inner transform: inside the compiled step, on a state whose structure
and dtypes never change. ``resettable`` is the case of one phase that is
re-entered on every fire; ``switch`` has one phase per transform.

How a phase is re-initialized is chosen when the step is traced, from what
its ``init`` does (read from its jaxpr): an ``init`` that only fills buffers
(zeros, a copy of the params: every optax ``init``) is a select,
``where(entering, init(params), state)``, computed on every step. XLA fuses
it into the update's loops, so it moves no extra bytes and adds no
conditional; ``resettable`` then has no conditional at all. A dearer
``init`` goes under a ``lax.cond``.

A switch runs its phases in one of three ways, and by default
(``"auto"``) picks one per platform when the step is lowered: ``"fused"``
for a GPU (CUDA, ROCm) where every phase allows it, ``"branched"`` elsewhere
(:func:`_auto`):

- ``"branched"`` (the default's choice on CPU and TPU): one conditional per
  phase that runs or skips it, and one per phase that can be left, which
  re-initializes it; each carries only that phase's part of the state, and
  either forwards all of it or writes all of it, so XLA updates it in place
  and copies no other phase's buffers. The price is the conditionals
  themselves. On CPU, a conditional around a whole update starts only once
  every gradient is ready, so the update no longer overlaps with the backward
  pass (in a small train step that is most of its cost); on GPU each one makes
  the host wait for its predicate (see ``docs/performance.md``).
- ``"leafwise"``: the same, with each phase's run-or-skip conditional split
  into one per parameter leaf wherever the phase's update treats each leaf on
  its own (``_leafwise``): each leaf's update starts as soon as its gradient
  is ready, as in the bare step. More conditionals (phases times leaves), so
  it pays on CPU for small steps with few phases, where the overlap is worth
  more than the conditionals cost.
- ``"fused"``: every phase's update runs on every step and the active one's
  results are selected: no conditional at all, but every phase's arithmetic,
  and on CPU XLA copies the donated state once per step (the same buffers are
  read by several phases' loops and written by the select). On CPU it wins
  only where the phases are cheap and the step small (the Adam phase of a
  1K-parameter train step). On a GPU, where each conditional makes the host
  wait, it was the faster in most cases measured (``docs/performance.md``).
"""

from collections.abc import Callable, Sequence
from typing import Any, Literal, NamedTuple, Protocol, Self, TypeVar

import jax
from jax import lax
import jax.numpy as jnp
import optax

from optaxswap import _inspect
from optaxswap import _leafwise
from optaxswap import _observing
from optaxswap import _triggers

Execution = Literal["auto", "branched", "leafwise", "fused"]
EXECUTIONS = ("auto", "branched", "leafwise", "fused")

Cells = dict[Any, Any]


class CombinatorState(Protocol):
    """The fields :func:`update` reads and writes."""

    count: jax.Array
    requested: jax.Array
    trigger_state: Any

    def _replace(self, **fields: Any) -> Self: ...


State = TypeVar("State", bound=CombinatorState)


class Moves(NamedTuple):
    """What one update does to the phases, as int32 scalars.

    Attributes:
      active: the phase whose update runs.
      entered: the phase this update re-initializes and enters, ``-1`` none.
      left: the phase this update leaves (and re-initializes), ``-1`` none.
    """

    active: jax.Array
    entered: jax.Array
    left: jax.Array


class Storage(Protocol):
    """Where a combinator keeps its phases' states, as named cells.

    A cell is a pytree that one or more phases read and write (a whole phase
    state, or with shared slots a slot or a phase's rest).
    """

    def cells(self) -> Cells: ...

    def owned(self, index: int) -> list[Any]: ...

    def phase_state(self, index: int, like: Any = None) -> optax.OptState: ...

    def split(self, index: int, state: optax.OptState) -> Cells: ...

    def replace_cells(self, cells: Cells) -> Self: ...


class SeparateStates(NamedTuple):
    """The :class:`Storage` of phases that each keep their own state."""

    states: tuple[Any, ...]

    def cells(self) -> Cells:
        return {("rest", i): state for i, state in enumerate(self.states)}

    def owned(self, index: int) -> list[Any]:
        return [("rest", index)]

    def phase_state(self, index: int, like: Any = None) -> optax.OptState:
        del like  # Each phase's state is stored in its own dtypes.
        return self.states[index]

    def split(self, index: int, state: optax.OptState) -> Cells:
        return {("rest", index): cast_like(state, self.states[index])}

    def replace_cells(self, cells: Cells) -> "SeparateStates":
        return SeparateStates(
            tuple(cells.get(("rest", i), s) for i, s in enumerate(self.states))
        )


class Entry(NamedTuple):
    """What building an entering phase's state may read.

    Attributes:
      index: the phase entered.
      fresh: its ``init(params)``.
      read: ``read(j)``, the current state of phase ``j``.
      params: the params of this update.
      state: the combinator's state after this update's decision.
    """

    index: int
    fresh: optax.OptState
    read: Callable[[int], optax.OptState]
    params: optax.Params | None
    state: Any


def fresh_entry(entry: Entry) -> optax.OptState:
    """The default entry: the phase starts from its ``init(params)``."""
    return entry.fresh


def strong(tree: Any) -> Any:
    """``tree`` with every leaf a strong-typed array of its own dtype."""
    return jax.tree.map(lambda leaf: jnp.asarray(leaf, jnp.result_type(leaf)), tree)


def cast_like(tree: Any, like: Any) -> Any:
    """``tree`` with the dtypes (strong, never weak) of ``like``.

    Every branch of a conditional and both sides of a select must agree on
    every dtype, and a fresh ``init`` can produce weak types or another float
    width than the state it replaces; casting keeps the state's types fixed
    for the whole run. Python scalars (say, from a hand-off function) become
    arrays of ``like``'s dtype.
    """
    return jax.tree.map(lambda leaf, ref: jnp.asarray(leaf, ref.dtype), tree, like)


def widen(updates: optax.Updates, dtypes: Any) -> optax.Updates:
    """``updates`` in the promoted ``dtypes``, with the values they had.

    A bf16 update widened to f32 must keep its bf16 value, as a bare bf16
    update would when it leaves the step; XLA may otherwise drop the rounding
    of a narrowing and widening pair (excess precision), so it is made
    explicit.
    """

    def widen_leaf(leaf: jax.Array, like: Any) -> jax.Array:
        dtype = jnp.result_type(leaf)
        if dtype != like.dtype and jnp.issubdtype(dtype, jnp.floating):
            info = jnp.finfo(dtype)
            leaf = lax.reduce_precision(leaf, info.nexp, info.nmant)
        return jnp.asarray(leaf, like.dtype)

    return jax.tree.map(widen_leaf, updates, dtypes)


def select(pred: jax.Array, on_true: Any, on_false: Any) -> Any:
    """``on_true`` where ``pred`` else ``on_false``, in ``on_false``'s dtypes."""
    return jax.tree.map(
        lambda new, old: jnp.where(pred, new, old).astype(jnp.result_type(old)),
        on_true,
        on_false,
    )


def check_state(state: Any, state_type: type, owner: str) -> None:
    """A clear error for the state of another transform."""
    if not isinstance(state, state_type):
        raise TypeError(
            f"{owner}.update expects the {state_type.__name__} that {owner}'s"
            f" init returned, got a {type(state).__name__}. Pass the state of"
            " this transform (inside optax.chain, the chain's whole state to"
            " the chain's update)."
        )


def init_template(
    params: optax.Params | None,
    updates: optax.Updates,
    transforms: Sequence[optax.GradientTransformation],
    owner: str,
) -> optax.Params:
    """What the ``init`` of a re-initialization reads.

    The params, or the updates when no params were given and no ``init`` reads
    the params' values (only their shapes and dtypes).
    """
    if params is not None:
        return params
    for index, tx in enumerate(transforms):
        if _inspect.reads_values(tx.init, updates):
            which = (
                "its inner transform"
                if len(transforms) == 1
                else (f"transforms[{index}]")
            )
            raise ValueError(
                f"{owner}.update needs params: pass them as `tx.update(updates,"
                f" state, params)`. A reset or switch re-initializes the inner"
                f" state from the current params, and the init of {which}"
                " reads their values (not only their shapes and dtypes)."
            )
    return updates


def finish(state: State) -> State:
    """The state after an update: ``count`` advanced, ``requested`` cleared."""
    return state._replace(
        count=optax.safe_increment(state.count),
        requested=jnp.zeros((), jnp.bool_),
    )


class _Phases:
    """The phases of one traced update: their transforms, states and inputs."""

    def __init__(
        self,
        transforms: Sequence[optax.GradientTransformationExtraArgs],
        storage: Storage,
        enter: Callable[[Entry], optax.OptState],
        state: Any,
        enterable: Sequence[bool],
        inputs: "_Inputs",
    ):
        self.transforms = transforms
        self.storage = storage
        self.enter_fn = enter
        self.state = state
        self.enterable = enterable
        self.inputs = inputs
        self._fills: dict[int, bool] = {}
        # Each phase's own dtypes, for reading it out of shared slots (which
        # store the promotion of the phases' dtypes). Without params, the
        # updates' dtypes say nothing about the state's: read as stored.
        cells = storage.cells()
        self.likes = [
            jax.eval_shape(tx.init, inputs.params)
            if inputs.params is not None
            else storage.replace_cells(cells).phase_state(index)
            for index, tx in enumerate(transforms)
        ]

    def __len__(self) -> int:
        return len(self.transforms)

    def previous(self, index: int) -> int:
        return (index - 1) % len(self)

    def read(self, index: int, cells: Cells) -> optax.OptState:
        storage = self.storage.replace_cells(cells)
        return storage.phase_state(index, self.likes[index])

    def fresh(self, index: int, inputs: "_Inputs") -> optax.OptState:
        return cast_like(
            self.transforms[index].init(inputs.template), self.likes[index]
        )

    def entering(self, index: int, cells: Cells, inputs: "_Inputs") -> optax.OptState:
        """The state phase ``index`` starts from when this update enters it."""
        state = self.enter_fn(
            Entry(
                index=index,
                fresh=self.fresh(index, inputs),
                read=lambda phase: self.read(phase, cells),
                params=inputs.params,
                state=self.state,
            )
        )
        return cast_like(state, self.likes[index])

    def run(
        self, index: int, state: optax.OptState, inputs: "_Inputs"
    ) -> tuple[optax.Updates, optax.OptState]:
        return self.transforms[index].update(
            inputs.updates, state, inputs.params, **inputs.inner_args
        )

    def split(self, index: int, state: optax.OptState, cells: Cells) -> Cells:
        return self.storage.replace_cells(cells).split(index, state)

    def left_behind(
        self, index: int, inputs: "_Inputs", *, slots: bool = False
    ) -> Cells:
        """The cells of phase ``index`` that leaving it re-initializes.

        Its own state; the shared slots too if ``slots``, which is right only
        where the entering phase writes them afterwards (it takes them over).
        """
        cells = self.split(index, self.fresh(index, inputs), self.storage.cells())
        return {key: cells[key] for key in cells if slots or key[0] == "rest"}

    def init_only_fills(self, index: int) -> bool:
        # Asked by "auto"'s choice and by the branched way it also traces:
        # read each init's jaxpr once.
        if index not in self._fills:
            self._fills[index] = _inspect.only_fills(
                self.transforms[index].init, self.inputs.template
            )
        return self._fills[index]


class _Inputs(NamedTuple):
    """What the inner transforms read besides their states."""

    updates: optax.Updates
    params: optax.Params | None
    template: optax.Params
    inner_args: dict[str, Any]

    def operands(self) -> tuple[list[Any], Callable[[list[Any]], "_Inputs"]]:
        """The array leaves, as a conditional's operands, and their inverse.

        ``rebuild(operands)`` gives the inputs back inside the branches.

        Passed as operands rather than closed over, concrete arrays keep their
        sharding types in the branches (Explicit mesh axes). Anything else
        (a ``value_fn`` for L-BFGS, a Python flag) stays as it is.
        """
        leaves, treedef = jax.tree.flatten(tuple(self))
        dynamic = [i for i, leaf in enumerate(leaves) if isinstance(leaf, jax.Array)]

        def rebuild(values: list[Any]) -> "_Inputs":
            rebuilt = list(leaves)
            for i, value in zip(dynamic, values):
                rebuilt[i] = value
            return _Inputs(*jax.tree.unflatten(treedef, rebuilt))

        return [leaves[i] for i in dynamic], rebuild

    def groups(self, reference: Any) -> list[int | None]:
        """Per leaf of :meth:`operands`, its index among ``reference``'s leaves.

        For the params-shaped fields (updates, params, template) when they
        have ``reference``'s structure; None for the others.
        """
        structure = jax.tree.structure(reference)
        groups: list[int | None] = []
        for field in self:
            leaves, treedef = jax.tree.flatten(field)
            shaped = field is not None and treedef == structure
            groups.extend(
                index if shaped else None
                for index, leaf in enumerate(leaves)
                if isinstance(leaf, jax.Array)
            )
        return groups


def _traced_runs(phases: _Phases) -> list[tuple[Any, Any]]:
    """Per phase, the jaxpr of its update and the shapes of its outputs."""
    cells = phases.storage.cells()
    return [
        jax.make_jaxpr(
            lambda s, i=i: phases.run(i, s, phases.inputs), return_shape=True
        )(phases.read(i, cells))
        for i in range(len(phases))
    ]


def _output_dtypes(runs: list[tuple[Any, Any]]) -> Any:
    """Per leaf, the promotion of every phase's output dtype."""
    return jax.tree.map(
        lambda *leaves: jax.ShapeDtypeStruct(leaves[0].shape, jnp.result_type(*leaves)),
        *(updates for _, (updates, _) in runs),
    )


def _fusable(phases: _Phases, runs: list[tuple[Any, Any]]) -> bool:
    """True if running every phase on every step costs only its arithmetic.

    No phase's update loops (L-BFGS's line search) or calls the host, and
    every phase that can be entered has an ``init`` that only fills buffers.
    """
    return all(_inspect.runs_once(jaxpr) for jaxpr, _ in runs) and all(
        phases.init_only_fills(index)
        for index in range(len(phases))
        if phases.enterable[index]
    )


def _gpu_in_process() -> bool:
    """Whether this process's default backend is a GPU (CUDA or ROCm)."""
    return jax.default_backend() == "gpu"


def _auto(
    phases: _Phases, moves: Moves, dtypes: Any, runs: list[tuple[Any, Any]]
) -> tuple[optax.Updates, Cells]:
    """Branched, or on a GPU fused where the phases allow it.

    Chosen per platform when the step is lowered (``lax.platform_dependent``:
    only the chosen way is compiled). On a GPU, each conditional makes the
    host wait for its predicate, and XLA copies the buffers its branches
    forward: fused was the faster there in most cases measured
    (``docs/performance.md``). On CPU and TPU, branched.

    Both ways are traced, which doubles the tracing of a many-phase step
    (0.7 s more at 32 phases on CPU): so in a process without a GPU, where
    the step is lowered for a GPU only by an explicit cross-platform export,
    only the branched way is traced.
    """
    if not _gpu_in_process() or not _fusable(phases, runs):
        return _branched(phases, moves, dtypes)
    return lax.platform_dependent(
        default=lambda: _branched(phases, moves, dtypes),
        cuda=lambda: _fused(phases, moves, dtypes),
        rocm=lambda: _fused(phases, moves, dtypes),
    )


def _single(phases: _Phases, moves: Moves) -> tuple[optax.Updates, Cells]:
    """One phase, re-entered when this update enters it."""
    cells = phases.storage.cells()
    state = _entered(phases, 0, moves, phases.read(0, cells), cells, phases.inputs)
    new_updates, state = phases.run(0, state, phases.inputs)
    return new_updates, phases.split(0, state, cells)


def _fused(phases: _Phases, moves: Moves, dtypes: Any) -> tuple[optax.Updates, Cells]:
    """Every phase runs; the active one's results are selected."""
    inputs = phases.inputs
    cells = phases.storage.cells()
    new_cells = dict(cells)
    chosen = None
    for index in range(len(phases)):
        state = phases.read(index, cells)
        if phases.enterable[index]:
            state = select(
                moves.entered == index, phases.entering(index, cells, inputs), state
            )
        phase_updates, state = phases.run(index, state, inputs)
        phase_updates = widen(phase_updates, dtypes)
        is_active = moves.active == index
        chosen = (
            phase_updates
            if chosen is None
            else select(is_active, phase_updates, chosen)
        )
        for key, value in phases.split(index, state, cells).items():
            new_cells[key] = select(is_active, value, new_cells[key])
        if phases.enterable[(index + 1) % len(phases)]:
            for key, value in phases.left_behind(index, inputs).items():
                new_cells[key] = select(moves.left == index, value, new_cells[key])
    return chosen, new_cells


def _pass(*operands: Any) -> Any:
    return operands[:-1] if len(operands) > 2 else operands[0]


def _branched(
    phases: _Phases, moves: Moves, dtypes: Any, leafwise: bool = False
) -> tuple[optax.Updates, Cells]:
    """One conditional per phase, each on that phase's cells only.

    Each conditional either forwards every cell it carries or writes every
    one, so XLA updates them in place: a branch that forwards some cells
    while another writes them makes XLA copy the forwarded ones (measured in
    the optimized HLO). Leaving a phase, and entering one with a hand-off
    (which reads the leaving state), are conditionals of their own for that
    reason.
    """
    cells = phases.storage.cells()
    hands_off = phases.enter_fn is not fresh_entry
    result = cast_like(phases.inputs.updates, dtypes)
    # Before the active phase's conditional, the carried result is the
    # updates given to ``update``: read them from it rather than as another
    # operand, or XLA copies them to keep the operand's value alive. (With
    # another dtype, the carry is a converted copy anyway.)
    reads_carry = all(
        jnp.result_type(leaf) == like.dtype
        for leaf, like in zip(
            jax.tree.leaves(phases.inputs.updates), jax.tree.leaves(dtypes)
        )
    )
    inputs = phases.inputs._replace(updates=None) if reads_carry else phases.inputs
    operands, rebuild_inputs = inputs.operands()

    def rebuild(operands: list[Any], result: Any = None) -> _Inputs:
        inputs = rebuild_inputs(operands)
        return inputs._replace(updates=result) if reads_carry else inputs

    # Leafwise: the groups are the leaves of the updates (and of the params
    # and template among the operands); a state's leaves join the group of
    # the work that writes them.
    leaf_count = len(jax.tree.leaves(result))
    leafwise = leafwise and leaf_count > 1
    operand_groups = inputs.groups(phases.inputs.updates) if leafwise else []
    if hands_off:
        # A hand-off reads the leaving phase's state: enter (and leave) in a
        # conditional of its own, before any phase runs.
        for index in range(len(phases)):
            if not phases.enterable[index]:
                continue
            leaving = phases.previous(index)
            keys = sorted(
                set(phases.storage.owned(index)) | set(phases.storage.owned(leaving)),
                key=repr,
            )

            def enter(own, operands, index=index, leaving=leaving):
                inputs = rebuild(operands)
                state = phases.entering(index, own, inputs)
                own = {**own, **phases.split(index, state, own)}
                own.update(phases.left_behind(leaving, inputs))
                return own

            own = lax.cond(
                moves.entered == index,
                enter,
                _pass,
                {key: cells[key] for key in keys},
                operands,
            )
            cells.update(own)
    if not hands_off:
        # Leaving re-initializes the phase left, in a conditional of its own
        # before any phase runs: as a third branch of the phase's run
        # conditional, it would make XLA copy the carried updates on every
        # step. Writing the shared slots too is right here, since the entering
        # phase's conditional comes later and takes them over.
        for index in range(len(phases)):
            if not phases.enterable[(index + 1) % len(phases)]:
                continue

            def leave(own, operands, index=index):
                return {
                    **own,
                    **phases.left_behind(index, rebuild(operands), slots=True),
                }

            own = lax.cond(
                moves.left == index,
                leave,
                _pass,
                {key: cells[key] for key in phases.storage.owned(index)},
                operands,
            )
            cells.update(own)
    for index in range(len(phases)):
        enters_here = phases.enterable[index] and not hands_off

        def skip(result, own, operands):
            return result, own

        def run(result, own, operands, index=index, enters_here=enters_here):
            inputs = rebuild(operands, result)
            state = phases.read(index, own)
            if enters_here:
                state = _entered(phases, index, moves, state, own, inputs)
            new_updates, state = phases.run(index, state, inputs)
            return widen(new_updates, dtypes), {
                **own,
                **phases.split(index, state, own),
            }

        own = {key: cells[key] for key in phases.storage.owned(index)}
        split = None
        if leafwise:
            split = _leafwise.cond(
                moves.active == index,
                lambda carry, operands, run=run: run(*carry, operands),
                (result, own),
                operands,
                carry_groups=[
                    *range(leaf_count),
                    *[None] * len(jax.tree.leaves(own)),
                ],
                operand_groups=operand_groups,
            )
        if split is None:
            result, own = lax.cond(
                moves.active == index, run, skip, result, own, operands
            )
        else:
            result, own = split
        cells.update(own)
    return result, cells


def _entered(
    phases: _Phases,
    index: int,
    moves: Moves,
    state: optax.OptState,
    cells: Cells,
    inputs: _Inputs,
) -> optax.OptState:
    """``state``, or the state phase ``index`` enters with on a fire.

    A select when the ``init`` only fills buffers (fused into the update's
    loops); a conditional otherwise, so a dear ``init`` runs only on a fire.
    """
    entering = moves.entered == index
    if phases.init_only_fills(index):
        return select(entering, phases.entering(index, cells, inputs), state)
    return lax.cond(
        entering, lambda: phases.entering(index, cells, inputs), lambda: state
    )


def update(
    state: State,
    updates: optax.Updates,
    params: optax.Params | None,
    extra_args: dict[str, Any],
    *,
    trigger: _triggers.Trigger,
    transforms: Sequence[optax.GradientTransformationExtraArgs],
    storage: Storage,
    advance: Callable[[State, jax.Array], tuple[State, Moves]],
    rebuild: Callable[[State, Storage], State],
    enter: Callable[[Entry], optax.OptState] = fresh_entry,
    enterable: Sequence[bool] = (True,),
    execution: Execution = "auto",
    owner: str,
) -> tuple[optax.Updates, State]:
    """One update of a combinator, in the order the SPEC fixes.

    Args:
      state: the combinator's state.
      updates: the updates given to ``update``.
      params: the params given to ``update``.
      extra_args: the extra keyword arguments given to ``update``.
      trigger: decides whether this update fires.
      transforms: the inner transforms, one per phase.
      storage: the phases' states as stored in ``state``.
      advance: ``advance(state, fire) -> (state, moves)``, the bookkeeping
        of a fire and the :class:`Moves` it makes.
      rebuild: ``rebuild(state, storage) -> state`` with new phase states.
      enter: ``enter(entry) -> state``, the state a phase starts from (a
        hand-off, a partial reset), given an :class:`Entry`; by default its
        ``init``.
      enterable: per phase, whether any update can enter it (a switch's
        first phase cannot, unless it cycles).
      execution: how the phases run (module docstring).
      owner: the combinator's name, for error messages.

    Returns:
      The updates and the new state, with ``count`` advanced and ``requested``
      cleared.
    """
    template = init_template(params, updates, transforms, owner)
    # A leaf made weak on the host comes back strong, as from bare optax.
    state = strong(state)
    storage = storage.replace_cells(strong(storage.cells()))
    context = _triggers.TriggerContext(
        count=state.count,
        updates=updates,
        params=params,
        extra_args=extra_args,
        state=state,
    )
    fire, trigger_state = trigger.update(state.trigger_state, context)
    fire = _triggers.as_fire(fire, "the trigger") | state.requested
    trigger_state = cast_like(trigger_state, state.trigger_state)
    state, moves = advance(state._replace(trigger_state=trigger_state), fire)
    inputs = _Inputs(
        updates,
        params,
        template,
        _observing.inner_extra_args(trigger_state, extra_args),
    )
    phases = _Phases(transforms, storage, enter, state, enterable, inputs)
    if len(phases) == 1:
        new_updates, cells = _single(phases, moves)
    else:
        runs = _traced_runs(phases)
        dtypes = _output_dtypes(runs)
        if execution == "auto":
            new_updates, cells = _auto(phases, moves, dtypes, runs)
        elif execution == "fused":
            new_updates, cells = _fused(phases, moves, dtypes)
        else:
            new_updates, cells = _branched(
                phases, moves, dtypes, leafwise=execution == "leafwise"
            )
    state = rebuild(state, storage.replace_cells(cells))
    return new_updates, finish(state)

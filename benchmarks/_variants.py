"""The optimizers a benchmark group measures, each against its bare inner.

A group runs one inner optimizer (Adam or SGD with momentum) in the measured
step: the bare inner itself, a second, separately compiled bare inner (the
control: its ratio is what the machine's noise and a buffer's placement give
two identical steps), and every combinator, each in the phase that runs that
inner. A switch over ``count`` phases alternates Adam and SGD with momentum;
it is measured in its first phase (Adam) or its last (SGD with momentum), so
that the SGD phase is the one that every other phase's conditional precedes.
"""

from collections.abc import Callable
import dataclasses
import functools

import optax

from benchmarks import _naive
import optaxswap as osw

# Far beyond any benchmark's step count: the triggers never fire on their own.
NEVER = 2**30

INNERS: dict[str, Callable[[], optax.GradientTransformation]] = {
    "adam": lambda: optax.adam(1e-3),
    "sgdm": lambda: optax.sgd(1e-3, momentum=0.9),
}
# The fields SPAM-style partial resets clear in each inner's state.
RESET_FIELDS = {"adam": ("mu", "nu"), "sgdm": ("trace",)}
# The phase counts of the `switch_at_<count>` variants.
PHASE_COUNTS = (2, 8, 32)


@dataclasses.dataclass
class Variant:
    """One optimizer, measured in ``phase``, and how it is called."""

    tx: optax.GradientTransformation
    phase: int = 0
    phases: int = 1
    share_memory: bool = False
    wants_value: bool = False


def alternating(count: int) -> list[optax.GradientTransformation]:
    """``count`` phases: Adam, SGD with momentum, Adam, ..."""
    names = list(INNERS)
    return [INNERS[names[index % len(names)]]() for index in range(count)]


def measured_phase(inner: str, count: int) -> int:
    """The phase of an ``alternating(count)`` switch that runs ``inner``."""
    return 0 if inner == "adam" else count - 1


def never_boundaries(count: int) -> list[int]:
    return [NEVER + index for index in range(count - 1)]


def switch_name(count: int, share_memory: bool) -> str:
    return f"switch_at_{count}" + ("_shared" if share_memory else "")


def carrying_others(inner: str, count: int) -> optax.GradientTransformationExtraArgs:
    """The bare ``inner``, carrying the other phases' states through untouched.

    The other phases are those of an ``alternating(count)`` switch. No
    conditional and no trigger, only the extra buffers of a switch's state:
    it prices what passing them in and out of a call costs.
    """
    tx = INNERS[inner]()
    others = alternating(count)
    del others[measured_phase(inner, count)]

    def init_fn(params):
        return tx.init(params), tuple(other.init(params) for other in others)

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        updates, inner_state = tx.update(updates, state[0], params)
        return updates, (inner_state, state[1])

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _switch(
    inner: str, count: int, share_memory: bool, execution: str = "auto"
) -> Variant:
    tx = osw.switch_at(
        alternating(count),
        never_boundaries(count),
        share_memory=share_memory,
        execution=execution,
    )
    return Variant(tx, measured_phase(inner, count), count, share_memory)


def _op_by_op(variant: Variant) -> Variant:
    """``variant`` with its update run eagerly as it was before being compiled.

    Called outside a trace, a combinator's update now runs through one
    ``jax.jit`` (``optaxswap/_eager.py``); before, every operation and
    conditional of it was dispatched on its own. For the eager view only.
    """
    tx = variant.tx
    uncompiled = optax.GradientTransformationExtraArgs(tx.init, tx.update.__wrapped__)
    return dataclasses.replace(variant, tx=uncompiled)


def _two_phase(inner: str, make) -> Variant:
    return Variant(
        make(alternating(2), never_boundaries(2)), measured_phase(inner, 2), 2
    )


def makers(inner: str) -> dict[str, Callable[[], Variant]]:
    """Every variant of a group running ``inner``, by name: fresh on each call.

    A fresh optimizer per call lets each compilation trace anew (JAX caches
    the traces of a conditional's branch functions), which is what the
    compile-time samples need.
    """
    bare = INNERS[inner]
    made: dict[str, Callable[[], Variant]] = {
        "bare": lambda: Variant(bare()),
        "bare_control": lambda: Variant(bare()),
        "resettable": lambda: Variant(osw.resettable(bare(), osw.every(NEVER))),
        "resettable_fields": lambda: Variant(
            osw.resettable(bare(), osw.every(NEVER), fields=RESET_FIELDS[inner])
        ),
        "switch_on_plateau": lambda: Variant(
            osw.switch_on_plateau(alternating(2), patience=NEVER),
            measured_phase(inner, 2),
            2,
            wants_value=True,
        ),
        "carrying_others": lambda: Variant(carrying_others(inner, 2)),
        f"carrying_others_{PHASE_COUNTS[-1]}": lambda: Variant(
            carrying_others(inner, PHASE_COUNTS[-1])
        ),
        # The branch-free way a switch can run: every phase, then a select.
        "switch_at_2_fused": functools.partial(_switch, inner, 2, False, "fused"),
        "switch_at_2_shared_fused": functools.partial(_switch, inner, 2, True, "fused"),
        # The default, branched, where "auto" picks fused (a GPU).
        "switch_at_2_branched": functools.partial(_switch, inner, 2, False, "branched"),
        "switch_at_2_shared_branched": functools.partial(
            _switch, inner, 2, True, "branched"
        ),
        "switch_at_8_branched": functools.partial(_switch, inner, 8, False, "branched"),
        # One conditional per phase and parameter leaf.
        "switch_at_2_leafwise": functools.partial(_switch, inner, 2, False, "leafwise"),
        "switch_at_8_leafwise": functools.partial(_switch, inner, 8, False, "leafwise"),
        # An eager call as it ran before it was compiled (eager view).
        "switch_at_2_op_by_op": lambda: _op_by_op(_switch(inner, 2, False)),
        # The first design, kept in benchmarks/ for comparison.
        "naive_switch": lambda: _two_phase(
            inner,
            lambda phases, boundaries: _naive.naive_switch(
                phases, osw.at_steps(boundaries)
            ),
        ),
    }
    for count in PHASE_COUNTS:
        for share_memory in (False, True):
            made[switch_name(count, share_memory)] = functools.partial(
                _switch, inner, count, share_memory
            )
    return made

"""optaxswap benchmarks: what a combinator costs next to its bare inner optimizer.

Run ``python -m benchmarks`` (or ``python benchmarks/run.py``) from the
repository root; ``--quick`` is a smoke run with tiny sizes, and ``--plan
device`` the part of the full plan that fits a short loan of an accelerator
(``benchmarks/device_session.sh`` runs it twice). It writes
``benchmarks/results/<backend>.json`` (``--out`` for another path) and
prints the tables of ``python -m benchmarks.report`` from it.

Every case is measured side by side with the bare inner optimizer called in
exactly the same way, in one process: each round runs every variant of a
group in turn (in rotated order) for a few steps back to back, as a training
loop does (dispatching a step while the previous one runs, waiting only at
the end), the ratio of the round is a variant's time per step over the bare
inner's, and the reported ratio is the median over rounds, with a 95%
bootstrap interval. Every group also runs a second, separately compiled bare
inner, the control. The views (how the step is called) are described in
``benchmarks/_views.py``; for every case the JSON also holds the compile time,
and the conditionals and copies of the optimized HLO (``benchmarks/_hlo.py``).
"""

import argparse
from collections.abc import Callable
import dataclasses
import datetime
import json
import math
import os
import pathlib
import platform
import resource
import statistics
import sys
import time
from typing import Any
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax

if __package__ in (None, ""):
    # Run as a script: make the repository root importable.
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from benchmarks import _hlo
from benchmarks import _stats
from benchmarks import _variants
from benchmarks import _views
from benchmarks import report
import optaxswap as osw

K, M = 1_000, 1_000_000
# A round runs this long per variant (at least MIN_ITERS steps): long enough
# to queue steps back to back, short enough that many rounds spread a burst
# of load from elsewhere on the machine over every variant alike. Sized from
# the bare step's time, so the same plan suits a CPU and a GPU.
ROUND_SECONDS = 0.02
MIN_ITERS, MAX_ITERS = 2, 64

# The variants of issue 12's targets, in every group of every view.
EVERY_VIEW = ("bare_control", *report.TARGET_VARIANTS)
# The branch-free execution of a switch, where conditionals cost the most.
FUSED = ("switch_at_2_fused", "switch_at_2_shared_fused")
# On a GPU, where a switch's default ("auto") runs fused, the branched way
# beside it.
BRANCHED = (
    "switch_at_2_branched",
    "switch_at_2_shared_branched",
    "switch_at_8_branched",
)
# One conditional per phase and parameter leaf (train view: the overlap with
# the backward pass).
LEAFWISE = ("switch_at_2_leafwise", "switch_at_8_leafwise")
# An eager call as it ran before it went through one jit (eager view).
EAGER = ("switch_at_2_op_by_op",)
# The first design of a switch (benchmarks/_naive.py), for comparison.
BASELINES = ("naive_switch",)
LARGEST = _variants.PHASE_COUNTS[-1]
PHASE_COUNT = (
    f"switch_at_{LARGEST}",
    f"switch_at_{LARGEST}_shared",
    f"carrying_others_{LARGEST}",
)
FIXED_COST = (
    "bare_control",
    "resettable",
    "resettable_fields",
    "switch_at_2",
    "switch_at_2_shared",
    "switch_on_plateau",
    "carrying_others",
)


@dataclasses.dataclass(frozen=True)
class Group:
    """Variants measured side by side with the bare inner, once per inner."""

    view: str
    size: int
    variants: tuple[str, ...]
    rounds: int
    inners: tuple[str, ...] = tuple(_variants.INNERS)
    # Compile-time samples per case (the fastest is kept): where a target
    # reads compile times.
    compile_repeats: int = 1
    # At most this many steps per round, if set: where a variant's step is
    # hundreds of times the bare one's.
    max_iters: int | None = None


def branched_too() -> tuple[str, ...]:
    """:data:`BRANCHED` where "auto" does not run a switch branched (a GPU).

    On CPU they would measure the default twice.
    """
    return BRANCHED if jax.default_backend() == "gpu" else ()


def full_plan() -> list[Group]:
    # Fewer rounds where a step is long: each round lasts at least two steps.
    other = FUSED + branched_too()
    return [
        Group("update", 20 * K, FIXED_COST + branched_too()[:1], rounds=41),
        Group("train", 1 * K, EVERY_VIEW + other + LEAFWISE, rounds=41),
        Group("train", 20 * K, EVERY_VIEW + other + LEAFWISE, rounds=41),
        Group(
            "train",
            200 * K,
            EVERY_VIEW + other + LEAFWISE + PHASE_COUNT,
            41,
            compile_repeats=2,
        ),
        Group("train", 2 * M, EVERY_VIEW + other + LEAFWISE + BASELINES, rounds=21),
        Group("separate-jit", 2 * M, EVERY_VIEW + other + BASELINES, rounds=21),
        Group("separate-jit", 20 * M, EVERY_VIEW + branched_too(), rounds=7),
        Group("no-donation", 2 * M, EVERY_VIEW + branched_too(), rounds=21),
        Group("no-donation", 20 * M, EVERY_VIEW + branched_too(), rounds=7),
        *loops_plan(),
    ]


def loops_plan() -> list[Group]:
    """The two ends of how a training loop is written: the scan and eager views.

    The whole loop in one jit (``lax.scan``), and no jit at all. Eagerly,
    bare optax runs operation by operation, a combinator's update as one
    compiled step; ``switch_at_2_op_by_op`` is the update as it ran before,
    hundreds of times the bare step, hence at most 3 steps a round.
    """
    return [
        Group("scan", 20 * K, EVERY_VIEW + LEAFWISE, rounds=15),
        Group("scan", 200 * K, EVERY_VIEW + LEAFWISE, rounds=15),
        Group("eager", 20 * K, EVERY_VIEW + EAGER, rounds=15, max_iters=3),
    ]


def device_plan() -> list[Group]:
    """The full plan's groups that say most about conditionals on a device.

    A GPU loan is short (minutes, start-up included), and a session wants two
    runs, with and without on-device conditionals
    (``benchmarks/device_session.sh``). So: the fixed cost per call, a small
    and a large train step, the separate-jit step, and a small step under
    ``lax.scan`` and called eagerly, with fewer rounds; not the no-donation
    view nor the 200K phase counts. On a GPU, the 2- and 8-phase switches are
    also measured branched, and the separate-jit step at 20M too.
    """
    other = FUSED + branched_too()
    groups = [
        Group("update", 20 * K, FIXED_COST + branched_too()[:1], rounds=21),
        Group("train", 20 * K, EVERY_VIEW + other + LEAFWISE, rounds=21),
        Group("train", 2 * M, EVERY_VIEW + other, rounds=11),
        Group("separate-jit", 2 * M, EVERY_VIEW + branched_too(), rounds=11),
        Group("scan", 20 * K, EVERY_VIEW + other, rounds=11),
        Group("eager", 20 * K, EVERY_VIEW, rounds=11),
    ]
    if branched_too():
        # Where the branched way copies most: "auto" against it at 20M.
        two = ("bare_control", "switch_at_2", "switch_at_2_shared")
        groups.append(Group("separate-jit", 20 * M, two + BRANCHED[:2], rounds=7))
    return groups


def quick_plan() -> list[Group]:
    # Every view, and every variant but the largest phase count once (so that
    # a broken baseline fails the smoke test); the phase-count table needs
    # two counts in the train view, entering a phase needs the SGD-m one.
    control = ("bare_control",)
    return [
        Group(
            "update",
            1 * K,
            (*control, "resettable_fields", "carrying_others", *FUSED, *BASELINES),
            rounds=2,
            inners=("adam",),
        ),
        Group(
            "train",
            1 * K,
            (
                *control,
                "switch_at_2",
                "switch_at_8",
                "switch_on_plateau",
                "switch_at_2_leafwise",
            ),
            rounds=2,
            inners=("sgdm",),
        ),
        Group(
            "separate-jit",
            1 * K,
            (*control, "resettable", "switch_at_2_shared"),
            rounds=2,
            inners=("adam",),
        ),
        Group(
            "no-donation",
            1 * K,
            (*control, "switch_at_8_shared"),
            rounds=2,
            inners=("adam",),
            compile_repeats=2,
        ),
        Group("scan", 1 * K, (*control, "switch_at_2"), rounds=2, inners=("adam",)),
        Group(
            "eager",
            1 * K,
            (*control, "switch_on_plateau", *EAGER),
            rounds=2,
            inners=("adam",),
            max_iters=2,
        ),
    ]


PLANS: dict[str, Callable[[], list[Group]]] = {
    "full": full_plan,
    "device": device_plan,
    "loops": loops_plan,
    "quick": quick_plan,
}


# ---------------------------------------------------------------- measuring


def tree_bytes(tree: Any) -> int:
    return sum(leaf.nbytes for leaf in jax.tree.leaves(tree))


def _copy_tree(tree: Any) -> Any:
    return jax.tree.map(lambda leaf: jnp.array(leaf, copy=True), tree)


@dataclasses.dataclass
class Run:
    """``steps`` steps back to back: wall time per step, faults, host share."""

    seconds: float
    minor_faults: float
    host_share: float


class Runner:
    """A compiled step of one variant, with its carried buffers."""

    def __init__(
        self,
        view: str,
        make: Callable[[], _variants.Variant],
        params: Any,
        data: Any,
        compile_repeats: int = 1,
    ):
        self.view = view
        self.data = data
        self.value = jnp.float32(1.0)
        self.variant = make()
        self.params = _copy_tree(params)
        self.state = self.variant.tx.init(params)
        self.compiled, first = self._compile(self.variant)
        # Each sample compiles a fresh optimizer (no trace cache to reuse).
        self.compile_samples = [first] + [
            self._compile(make())[1] for _ in range(compile_repeats - 1)
        ]
        if view in _views.UNCOMPILED:
            self.hlo = dict.fromkeys(HLO_COUNTS)
            self.temp_bytes = None
        else:
            self.hlo = hlo_counts(self.compiled.as_text(), params)
            memory = self.compiled.memory_analysis()
            self.temp_bytes = int(memory.temp_size_in_bytes) if memory else None
        self.state_bytes = tree_bytes(self.state)
        for _ in range(self.variant.phase):
            # Enter the measured phase through the real path: a requested
            # switch (SwitchState's `requested`, which the baselines share).
            self.state = self.state._replace(requested=jnp.ones((), jnp.bool_))
            self.step()
        self.step()

    def _compile(self, variant: _variants.Variant):
        """The step to call, and how long it took to compile.

        An uncompiled view's step is the function itself; its "compile time"
        is its first call's (whatever it compiles, plus one step).
        """
        fn, donate = _views.step_function(self.view, variant.tx, variant.wants_value)
        start = time.perf_counter()
        if donate is None:
            jax.block_until_ready(fn(*self._args()))
            return fn, time.perf_counter() - start
        compiled = jax.jit(fn, donate_argnums=donate).lower(*self._args()).compile()
        return compiled, time.perf_counter() - start

    def _args(self, grads=None):
        if self.view == "update":
            # The update view donates the gradients: every step needs its own.
            grads = self.fresh_grads() if grads is None else grads
            return self.state, grads, self.params, self.value
        if self.view in ("train", "scan"):
            return self.params, self.state, self.data, self.value
        return self.data, self.params, self.state, self.value

    def fresh_grads(self):
        """A fresh copy of the gradients, for a step that donates them."""
        if self.view != "update":
            return None
        return jax.block_until_ready(_copy_tree(self.data))

    def step(self) -> None:
        """Runs one step and waits for it."""
        self._take(jax.block_until_ready(self.compiled(*self._args())))

    def run(self, steps: int) -> Run:
        """``steps`` steps run back to back, timed.

        As in a training loop, each step is dispatched while the previous one
        runs; the inputs (fresh gradients to donate) are made beforehand.
        """
        grads = [self.fresh_grads() for _ in range(steps)]
        jax.block_until_ready((self.params, self.state))
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        start = time.perf_counter()
        in_calls = 0.0
        for index in range(steps):
            args = self._args(grads[index])
            call = time.perf_counter()
            # Dispatch only: the next step is queued while this one runs.
            out = self.compiled(*args)
            in_calls += time.perf_counter() - call
            self._take(out)
        jax.block_until_ready((self.params, self.state))
        elapsed = time.perf_counter() - start
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
        # Page faults: on CPU, a step's temporary buffers may come as fresh
        # pages from the OS on every call, which costs more than their bytes.
        # The host's share: a call that returns only once the step has (all
        # but) run means the host waited for the device, for instance on a
        # conditional's predicate, and cannot queue the next step meanwhile.
        return Run(elapsed / steps, faults / steps, in_calls / elapsed)

    def _take(self, out) -> None:
        if self.view == "update":
            self.state = out[0]
        else:
            self.params, self.state = out[0], out[1]


HLO_COUNTS = (
    "conditionals",
    "copies",
    "param_copies",
    "entry_param_copies",
    "entry_copy_bytes",
)


def hlo_counts(hlo_text: str, params: Any) -> dict[str, int]:
    """What the optimized HLO of a step holds: conditionals and copies."""
    copies = _hlo.copies(hlo_text)
    leaf_sizes = [leaf.size for leaf in jax.tree.leaves(params)]
    param_sized = _hlo.parameter_sized(copies, leaf_sizes)
    return dict(
        conditionals=_hlo.conditional_count(hlo_text),
        copies=len(copies),
        param_copies=len(param_sized),
        entry_param_copies=sum(copy.in_entry for copy in param_sized),
        entry_copy_bytes=sum(copy.bytes for copy in copies if copy.in_entry),
    )


def interleaved(
    runners: dict[str, Runner], rounds: int, iters: int
) -> dict[str, list[Run]]:
    """``rounds`` rounds of ``iters`` steps of every runner, in rotated order.

    Many short rounds make a burst of load from elsewhere on the machine fall
    on every variant alike.
    """
    names = list(runners)
    runs: dict[str, list[Run]] = {name: [] for name in names}
    for round_index in range(rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            runs[name].append(runners[name].run(iters))
    return runs


def iterations(seconds_per_step: float, max_iters: int) -> int:
    """Steps per round: ``ROUND_SECONDS`` of the bare step, within bounds."""
    wanted = math.ceil(ROUND_SECONDS / max(seconds_per_step, 1e-9))
    return max(MIN_ITERS, min(max_iters, wanted))


def timed_rounds(
    runners: dict[str, Runner], rounds: int, max_iters: int
) -> tuple[dict[str, list[Run]], int]:
    """Warm-up rounds, then ``rounds`` timed ones; the runs and steps per round.

    The warm-up also times the bare step (the fastest of its rounds: a burst
    of load elsewhere only ever slows a round down), which sizes the rounds.
    """
    warm_up = interleaved(runners, 3, MIN_ITERS)
    iters = iterations(min(run.seconds for run in warm_up["bare"]), max_iters)
    return interleaved(runners, rounds, iters), iters


def ratio_rows(runners: dict[str, Runner], rounds: int, **fields: Any) -> list[dict]:
    """Times ``runners`` side by side: per runner, its ratio to ``"bare"``.

    Each row holds ``fields``, the variant's name, its median step time, the
    ratio summary (``_stats.ratio_summary``) and the HLO counts. For the
    experiments in ``benchmarks/experiments/``.
    """
    runs, _ = timed_rounds(runners, rounds, MAX_ITERS)
    bare = np.array([run.seconds for run in runs["bare"]])
    rows = []
    for name, runner in runners.items():
        seconds = np.array([run.seconds for run in runs[name]])
        rows.append(
            dict(
                **fields,
                variant=name,
                ms=1e3 * float(np.median(seconds)),
                **_stats.ratio_summary(seconds / bare),
                **runner.hlo,
            )
        )
    return rows


def ratio_text(row: dict, width: int) -> str:
    """``variant ratio [low, high]``: the start of an experiment's table line."""
    low, high = row["ratio_ci95"]
    return f"{row['variant']:{width}s} {row['ratio']:5.2f} [{low:.2f}, {high:.2f}]"


def measure_group(group: Group, inner: str, max_iters: int) -> list[dict]:
    params, data = _views.problem(group.view, group.size)
    makers = _variants.makers(inner)
    runners = {
        name: Runner(group.view, makers[name], params, data, group.compile_repeats)
        for name in ("bare", *group.variants)
    }
    runs, iters = timed_rounds(
        runners, group.rounds, min(max_iters, group.max_iters or max_iters)
    )
    bare_seconds = np.array([run.seconds for run in runs["bare"]])
    # The bare step's compile time: the fastest sample of both bare steps
    # (the same program), as a compile time only ever grows with the load.
    bare_compile = min(
        min(runners[name].compile_samples)
        for name in ("bare", "bare_control")
        if name in runners
    )
    rows = []
    for name, runner in runners.items():
        seconds = np.array([run.seconds for run in runs[name]])
        variant = runner.variant
        rows.append(
            dict(
                view=group.view,
                size=group.size,
                params=tree_bytes(params) // 4,
                inner=inner,
                variant=name,
                phase=variant.phase,
                phases=variant.phases,
                share_memory=variant.share_memory,
                rounds=group.rounds,
                iters=iters,
                steps_per_call=_views.steps_per_call(group.view),
                ms=1e3 * float(np.median(seconds)),
                **_stats.ratio_summary(seconds / bare_seconds),
                round_ms=[1e3 * float(s) for s in seconds],
                compile_s=min(runner.compile_samples),
                compile_samples_s=runner.compile_samples,
                bare_compile_s=bare_compile,
                compile_ratio=min(runner.compile_samples) / bare_compile,
                **runner.hlo,
                temp_bytes=runner.temp_bytes,
                state_bytes=runner.state_bytes,
                minor_faults_per_step=statistics.median(
                    run.minor_faults for run in runs[name]
                ),
                host_share=statistics.median(run.host_share for run in runs[name]),
            )
        )
    return rows


def measure_steps(
    plan: list[Group], max_iters: int, log, saved: Callable | None = None
) -> tuple[list, list]:
    """Every group of ``plan``: its rows, and the wall time of each group.

    ``saved(rows, timings)``, if given, is called after each group with what
    has been measured so far (to write it: a run stopped by a time limit then
    still leaves its finished groups).
    """
    # A process's first compilations pay for warming JAX's and XLA's own
    # caches; a throwaway one keeps that out of the first group's bare case.
    params, data = _views.problem("train", 1 * K)
    Runner("train", _variants.makers("adam")["switch_at_2"], params, data)
    rows, timings = [], []
    for group in plan:
        for inner in group.inners:
            start = time.perf_counter()
            for row in measure_group(group, inner, max_iters):
                log(row)
                rows.append(row)
            seconds = time.perf_counter() - start
            timings.append(
                dict(view=group.view, size=group.size, inner=inner, seconds=seconds)
            )
            print(f"  ({seconds:.0f}s)", flush=True)
            if saved is not None:
                saved(rows, timings)
    return rows, timings


def measure_firing(size: int, repeats: int) -> list[dict]:
    """The step that fires, next to the bare step and ``init`` of what it enters.

    In the update view (state and gradients donated), where a normal step
    costs what the bare inner's does, so the difference is the fire's own.
    """
    params = _views.flat_params(size)
    grads = jax.tree.map(lambda p: p * 1e-3, params)
    adam, sgdm = _variants.INNERS["adam"], _variants.INNERS["sgdm"]
    cases = {
        "resettable(adam)": (
            osw.resettable(adam()),
            osw.request_reset,
            [adam()],
        ),
        "switch(adam, sgdm, cycle)": (
            osw.switch([adam(), sgdm()], osw.never(), cycle=True),
            osw.request_switch,
            [adam(), sgdm()],
        ),
    }
    value = jnp.float32(0.0)

    def timed(fn, *args):
        args = jax.block_until_ready(args)
        start = time.perf_counter()
        out = jax.block_until_ready(fn(*args))
        return time.perf_counter() - start, out

    def update_step(tx):
        fn, donate = _views.step_function("update", tx, False)
        return jax.jit(fn, donate_argnums=donate)

    rows = []
    for name, (tx, request, inners) in cases.items():
        step = update_step(tx)
        bare_steps = [update_step(inner) for inner in inners]
        init_fns = [jax.jit(inner.init) for inner in inners]
        state = tx.init(params)
        bare_states = [inner.init(params) for inner in inners]
        samples = []
        for i in range(repeats + 2):
            entered = (i + 1) % len(inners)
            normal, (state, _) = timed(step, state, _copy_tree(grads), params, value)
            fire, (state, _) = timed(
                step, request(state), _copy_tree(grads), params, value
            )
            bare, (bare_states[entered], _) = timed(
                bare_steps[entered],
                bare_states[entered],
                _copy_tree(grads),
                params,
                value,
            )
            init, _ = timed(init_fns[entered], params)
            samples.append((fire, normal, bare, init))
        fire, normal, bare, init = (np.array(column[2:]) for column in zip(*samples))
        rows.append(
            dict(
                size=size,
                case=name,
                fire_ms=1e3 * float(np.median(fire)),
                normal_ms=1e3 * float(np.median(normal)),
                bare_ms=1e3 * float(np.median(bare)),
                init_ms=1e3 * float(np.median(init)),
                fire_over_normal=float(np.median(fire / normal)),
                fire_over_bare_plus_init=float(np.median(fire / (bare + init))),
            )
        )
    return rows


def measure_rejit(size: int, repeats: int) -> dict:
    """What switching costs the usual way: a new optimizer, re-jitted."""
    params = _views.mlp_params(size)
    width = params["w1"].shape[0]
    batch = (
        jnp.ones((_views.TRAIN_BATCH, width)),
        jnp.zeros((_views.TRAIN_BATCH,), jnp.int32),
    )
    value = jnp.float32(0.0)
    rejit = []
    for _ in range(repeats):
        start = time.perf_counter()
        tx = optax.sgd(1e-3, momentum=0.9)
        fn, donate = _views.step_function("train", tx, False)
        # A new function object: jax.jit traces and XLA compiles it anew, as a
        # training loop that re-creates its optimizer at the switch does.
        step = jax.jit(lambda *args, fn=fn: fn(*args), donate_argnums=donate)
        state = tx.init(params)
        jax.block_until_ready(step(_copy_tree(params), state, batch, value))
        rejit.append(time.perf_counter() - start)
    tx = osw.switch(
        [optax.adam(1e-3), optax.sgd(1e-3, momentum=0.9)], osw.never(), cycle=True
    )
    fn, donate = _views.step_function("train", tx, False)
    step = jax.jit(fn, donate_argnums=donate)
    p, state = _copy_tree(params), tx.init(params)
    fire = []
    for _ in range(repeats + 2):
        state = osw.request_switch(state)
        start = time.perf_counter()
        p, state, _ = jax.block_until_ready(step(p, state, batch, value))
        fire.append(time.perf_counter() - start)
    rejit_ms = 1e3 * statistics.median(rejit)
    fire_ms = 1e3 * statistics.median(fire[2:])
    return dict(
        size=size,
        rejit_first_step_ms=rejit_ms,
        switch_firing_step_ms=fire_ms,
        rejit_over_switch=rejit_ms / fire_ms,
    )


def machine() -> dict:
    device = jax.devices()[0]
    return dict(
        backend=jax.default_backend(),
        device_kind=device.device_kind,
        # On GPU, the CUDA and driver versions.
        platform_version=device.client.platform_version,
        device_count=jax.device_count(),
        cpu_count=os.cpu_count(),
        processor=platform.processor() or platform.machine(),
        python=platform.python_version(),
        jax=jax.__version__,
        optax=optax.__version__,
        optaxswap=osw.__version__,
        xla_flags=os.environ.get("XLA_FLAGS", ""),
        load_average=os.getloadavg(),
        date=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    )


def log_row(row: dict) -> None:
    low, high = row["ratio_ci95"]
    compiled = (
        f" cond {row['conditionals']:2d}"
        f" param-copies {row['param_copies']:2d} ({row['entry_param_copies']} entry)"
        f" temp {row['temp_bytes'] / 2**20:7.2f}MiB"
        f" compile {row['compile_s']:.2f}s ({row['compile_ratio']:.2f}x)"
        if report.is_compiled(row)
        else f" first call {row['compile_s']:.2f}s"
    )
    print(
        f"  {row['view']:>12} {row['size']:>9,} {row['inner']:>4}"
        f" {row['variant']:<21} ratio {row['ratio']:.3f} [{low:.3f}, {high:.3f}]"
        f" {row['ms']:8.3f}ms x{row['iters']:<2}{compiled}"
        f" faults/step {row['minor_faults_per_step']:.0f}"
        f" in-call {row['host_share']:.0%}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes, few rounds (a smoke run)"
    )
    parser.add_argument(
        "--plan",
        choices=tuple(PLANS),
        default=None,
        help="which groups to measure: every one (full, the default), those"
        " that fit a short accelerator loan (device), the scan and eager"
        " views (loops), or a smoke run (quick, as --quick)",
    )
    parser.add_argument(
        "--out", type=pathlib.Path, default=None, help="the JSON file to write"
    )
    args = parser.parse_args(argv)
    if args.quick and args.plan not in (None, "quick"):
        parser.error(f"--quick is --plan quick; got --plan {args.plan} too")
    plan_name = "quick" if args.quick else args.plan or "full"
    warnings.filterwarnings("ignore", message=".*donated buffers were not usable.*")

    plan = PLANS[plan_name]()
    if plan_name == "quick":
        max_iters, firing_size, repeats = 4, 1 * K, 2
    else:
        max_iters, firing_size, repeats = MAX_ITERS, 2 * M, 7

    out = args.out
    if out is None:
        name = jax.default_backend() + ("" if plan_name == "full" else f"-{plan_name}")
        out = pathlib.Path(__file__).parent / "results" / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    results = dict(machine=machine(), quick=plan_name == "quick", plan=plan_name)

    def save_partial(rows: list, timings: list) -> None:
        # Marked incomplete until the run ends; the report reads it as it is.
        partial = dict(results, steps=rows, group_s=timings, complete=False)
        partial["wall_s"] = time.perf_counter() - start
        partial["machine"] = dict(results["machine"], load_average_end=os.getloadavg())
        out.write_text(json.dumps(partial, indent=1) + "\n")

    results["steps"], results["group_s"] = measure_steps(
        plan, max_iters, log_row, save_partial
    )
    results["firing"] = measure_firing(firing_size, repeats)
    for row in results["firing"]:
        print(" ", json.dumps(row))
    results["rejit"] = measure_rejit(firing_size, max(repeats // 2, 2))
    print(" ", json.dumps(results["rejit"]))
    results["wall_s"] = time.perf_counter() - start
    results["machine"]["load_average_end"] = os.getloadavg()
    results["complete"] = True
    out.write_text(json.dumps(results, indent=1) + "\n")
    print()
    print(report.render(results))
    print(f"\nwrote {out} in {results['wall_s']:.0f}s")
    return results


if __name__ == "__main__":
    main()

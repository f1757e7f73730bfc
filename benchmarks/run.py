"""optaxswap benchmarks: what a combinator costs next to its bare inner optimizer.

Run ``python -m benchmarks`` (or ``python benchmarks/run.py``) from the
repository root; ``--quick`` is a smoke run with tiny sizes. It prints a table
and writes ``benchmarks/results/<backend>.json`` (``--out`` for another path).

Every case is jitted with the params and the optimizer state donated, and
measured side by side with the bare inner optimizer in one process: each
round runs every variant of a group in turn (in rotated order) for a few
steps back to back, as a training loop does (dispatching a step while the
previous one runs, waiting only at the end), the ratio of the round is a
variant's time per step over the bare inner's, and the reported ratio is the
median over rounds, with a 95% bootstrap interval. Three views:

- ``update``: ``tx.update`` alone (both sides write the updates out; the
  gradients are donated, as the intermediate they are in a train step);
- ``apply``: ``tx.update`` + ``optax.apply_updates`` (the gradients are an
  argument, not donated);
- ``train``: a whole MLP train step (forward, backward, update, apply).
"""

import argparse
from collections.abc import Callable
import dataclasses
import datetime
import json
import os
import pathlib
import platform
import re
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

from benchmarks import _branchfree
from benchmarks import _naive
from benchmarks import _unforwarded
import optaxswap as osw

# Far beyond any benchmark's step count: the triggers never fire on their own.
NEVER = 2**30

INNERS: dict[str, Callable[[], optax.GradientTransformation]] = {
    "adam": lambda: optax.adam(1e-3),
    "sgdm": lambda: optax.sgd(1e-3, momentum=0.9),
    "clip_adamw": lambda: optax.chain(
        optax.clip_by_global_norm(1.0), optax.adamw(1e-3)
    ),
}
# The train view's batch: the model's share of the step grows with it, the
# combinator's (one write and read of the updates) does not.
TRAIN_BATCH = 128
# The fields SPAM-style partial resets clear in each inner's state.
RESET_FIELDS = {"adam": ("mu", "nu"), "sgdm": ("trace",), "clip_adamw": ("mu", "nu")}


def carrying_others(
    inner: str, phases: list[str]
) -> optax.GradientTransformationExtraArgs:
    """The bare ``inner``, carrying the other phases' states through untouched.

    No conditional and no trigger, only the extra buffers of a switch's state:
    it prices what passing them in and out of a call costs.
    """
    tx = INNERS[inner]()
    others = [INNERS[name]() for name in phases if name != inner]

    def init_fn(params):
        return tx.init(params), tuple(other.init(params) for other in others)

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        updates, inner_state = tx.update(updates, state[0], params)
        return updates, (inner_state, state[1])

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


@dataclasses.dataclass
class Variant:
    """One optimizer measured in one phase against the bare inner."""

    tx: optax.GradientTransformation
    phase: int = 0
    wants_value: bool = False


def variants_for(inner: str, names: list[str]) -> dict[str, Variant]:
    """The variants of a group: all run ``inner`` in the measured step."""
    phases = list(INNERS)
    phase = phases.index(inner)
    all_inners = [INNERS[name]() for name in phases]
    boundaries = [NEVER, NEVER + 1]
    make = {
        "bare": lambda: Variant(INNERS[inner]()),
        "switch_at": lambda: Variant(osw.switch_at(all_inners, boundaries), phase),
        "switch_on_plateau": lambda: Variant(
            osw.switch_on_plateau(all_inners, patience=NEVER), phase, True
        ),
        "switch_shared": lambda: Variant(
            osw.switch_at(all_inners, boundaries, share_memory=True), phase
        ),
        "naive_switch": lambda: Variant(
            _naive.naive_switch(all_inners, osw.at_steps(boundaries)), phase
        ),
        "branchfree_shared": lambda: Variant(
            _branchfree.branchfree_switch(all_inners, boundaries), phase
        ),
        "unforwarded_switch": lambda: Variant(
            _unforwarded.unforwarded_switch(all_inners, boundaries), phase
        ),
        "carrying_others": lambda: Variant(carrying_others(inner, phases)),
        "resettable": lambda: Variant(
            osw.resettable(INNERS[inner](), osw.every(NEVER))
        ),
        "resettable_fields": lambda: Variant(
            osw.resettable(
                INNERS[inner](), osw.every(NEVER), fields=RESET_FIELDS[inner]
            )
        ),
    }
    return {name: make[name]() for name in ["bare", *names]}


# ---------------------------------------------------------------- problems


def flat_params(size: int) -> dict[str, jax.Array]:
    width = 1000
    return {
        "w": jnp.full((max(size // width, 1), width), 0.5, jnp.float32),
        "b": jnp.full((width,), 0.5, jnp.float32),
    }


def mlp_params(size: int) -> dict[str, jax.Array]:
    """A 3-layer MLP of about ``size`` parameters (two square hidden layers)."""
    width = max(int((size / 2) ** 0.5), 16)
    keys = jax.random.split(jax.random.key(0), 3)
    scale = width**-0.5
    return {
        "w1": jax.random.normal(keys[0], (width, width)) * scale,
        "b1": jnp.zeros((width,)),
        "w2": jax.random.normal(keys[1], (width, width)) * scale,
        "b2": jnp.zeros((width,)),
        "w3": jax.random.normal(keys[2], (width, 10)) * scale,
        "b3": jnp.zeros((10,)),
    }


def mlp_loss(params: dict[str, jax.Array], batch: tuple[jax.Array, jax.Array]):
    inputs, labels = batch
    hidden = jax.nn.relu(inputs @ params["w1"] + params["b1"])
    hidden = jax.nn.relu(hidden @ params["w2"] + params["b2"])
    logits = hidden @ params["w3"] + params["b3"]
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def step_function(view: str, tx: optax.GradientTransformation, wants_value: bool):
    """The jitted function of a view and the positions of its donated args."""

    def extra(value):
        return {"value": value} if wants_value else {}

    if view == "update":

        def update(state, grads, params, value):
            updates, state = tx.update(grads, state, params, **extra(value))
            # State first: JAX pairs donated inputs with outputs in order, so
            # every state leaf reuses its own buffer and the updates the grads'.
            return state, updates

        return update, (0, 1)
    if view == "apply":

        def apply(params, state, grads, value):
            updates, state = tx.update(grads, state, params, **extra(value))
            return optax.apply_updates(params, updates), state

        return apply, (0, 1)

    def train(params, state, batch, value):
        del value
        loss, grads = jax.value_and_grad(mlp_loss)(params, batch)
        updates, state = tx.update(grads, state, params, **extra(loss))
        return optax.apply_updates(params, updates), state, loss

    return train, (0, 1)


# ---------------------------------------------------------------- measuring


def tree_bytes(tree: Any) -> int:
    return sum(leaf.nbytes for leaf in jax.tree.leaves(tree))


_COPY = re.compile(r"= (\w+)\[([\d,]*)\]\{?[\d,]*\}? copy\(")


def copy_counts(hlo_text: str) -> tuple[int, int]:
    """``copy`` instructions in an optimized HLO module, and bytes copied by
    those of the entry computation (which run on every step; copies inside a
    conditional's branches run only when that branch does)."""
    copies, entry_bytes, in_entry = 0, 0, False
    for line in hlo_text.splitlines():
        if line.rstrip().endswith("{") and not line.startswith(" "):
            in_entry = line.startswith("ENTRY")
        match = _COPY.search(line)
        if match:
            copies += 1
            if in_entry:
                dims = [int(d) for d in match.group(2).split(",") if d]
                bits = re.sub(r"\D", "", match.group(1)) or "8"  # pred: one byte
                itemsize = int(bits) // 8
                entry_bytes += int(np.prod(dims, dtype=np.int64)) * itemsize
    return copies, entry_bytes


class Runner:
    """A compiled step with its carried (donated) buffers."""

    def __init__(self, view, variant, params, data):
        self.view = view
        fn, donate = step_function(view, variant.tx, variant.wants_value)
        self.value = jnp.float32(1.0)
        self.data = data
        state = variant.tx.init(params)
        self.params = jax.tree.map(jnp.copy, params)
        self.state = state
        start = time.perf_counter()
        self.compiled = (
            jax.jit(fn, donate_argnums=donate).lower(*self._args()).compile()
        )
        self.compile_s = time.perf_counter() - start
        self.copies, self.entry_copy_bytes = copy_counts(self.compiled.as_text())
        memory = self.compiled.memory_analysis()
        self.temp_bytes = int(memory.temp_size_in_bytes) if memory else None
        self.state_bytes = tree_bytes(state)
        self.minor_faults: list[float] = []
        self.host_share: list[float] = []
        for _ in range(variant.phase):
            # Enter the measured phase through the real path: a requested switch.
            self.state = self.state._replace(requested=jnp.ones((), jnp.bool_))
            self.step()
        for _ in range(2):
            self.step()

    def _args(self, grads=None):
        if self.view == "update":
            # The update view donates the gradients: every step needs its own.
            grads = self.fresh_grads() if grads is None else grads
            return self.state, grads, self.params, self.value
        return self.params, self.state, self.data, self.value

    def fresh_grads(self):
        """A fresh copy of the gradients, for a step that donates them."""
        if self.view != "update":
            return None
        return jax.block_until_ready(_copy_tree(self.data))

    def step(self) -> None:
        """Runs one step and waits for it."""
        self._take(jax.block_until_ready(self.compiled(*self._args())))

    def run(self, steps: int) -> float:
        """The wall time per step of ``steps`` steps run back to back.

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
        # Page faults: on CPU, a step's temporary buffers may come as fresh
        # pages from the OS on every call, which costs more than their bytes.
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
        self.minor_faults.append(faults / steps)
        # The host's share: a call that returns only once the step has (all
        # but) run means the host waited for the device, for instance on a
        # conditional's predicate, and cannot queue the next step meanwhile.
        self.host_share.append(in_calls / elapsed)
        return elapsed / steps

    def _take(self, out) -> None:
        if self.view == "update":
            self.state = out[0]
        else:
            self.params, self.state = out[0], out[1]


def _copy_tree(tree: Any) -> Any:
    return jax.tree.map(lambda leaf: jnp.array(leaf, copy=True), tree)


def median_interval(samples: np.ndarray, level: float = 0.95) -> list[float]:
    """A bootstrap interval of the median of ``samples`` (seeded: reproducible).

    A machine's noise moves every round's ratio; this says how far the median
    over the rounds can be trusted, so that a target is read as met, missed,
    or not resolved by this machine.
    """
    rng = np.random.default_rng(0)
    resampled = rng.choice(samples, size=(2000, len(samples)), replace=True)
    medians = np.median(resampled, axis=1)
    tail = (1 - level) / 2
    return [float(np.quantile(medians, tail)), float(np.quantile(medians, 1 - tail))]


def interleaved(runners: dict[str, Runner], rounds: int, iters: int):
    """Median step time and median per-round ratio to ``runners["bare"]``.

    A round runs ``iters`` steps of every variant in turn, in an order rotated
    from round to round; many short rounds make a burst of load from
    elsewhere on the machine fall on every variant alike.
    """
    names = list(runners)
    times = {name: [] for name in names}
    for round_index in range(rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(runners[name].run(iters))
    bare = np.array(times["bare"])
    results = {}
    for name in names:
        ratios = np.array(times[name]) / bare
        results[name] = dict(
            ms=1e3 * float(np.median(times[name])),
            ratio=float(np.median(ratios)),
            ratio_q1=float(np.quantile(ratios, 0.25)),
            ratio_q3=float(np.quantile(ratios, 0.75)),
            ratio_ci95=median_interval(ratios),
        )
    return results


def measure_steps(plan, rounds, iters, log) -> list[dict]:
    rows = []
    for size, view, names, inners in plan:
        for inner in inners:
            params, data = problem(view, size)
            runners = {
                name: Runner(view, variant, params, data)
                for name, variant in variants_for(inner, names).items()
            }
            timing = interleaved(runners, rounds[size], iters[size])
            bare = runners["bare"]
            for name, runner in runners.items():
                row = dict(
                    size=tree_bytes(params) // 4,
                    view=view,
                    inner=inner,
                    variant=name,
                    **timing[name],
                    compile_s=runner.compile_s,
                    compile_ratio=runner.compile_s / bare.compile_s,
                    state_bytes=runner.state_bytes,
                    temp_bytes=runner.temp_bytes,
                    copies=runner.copies,
                    entry_copy_bytes=runner.entry_copy_bytes,
                    minor_faults_per_step=statistics.median(runner.minor_faults),
                    host_share=statistics.median(runner.host_share),
                )
                rows.append(row)
                log(row)
            del runners
    return rows


def problem(view: str, size: int):
    """The params of a view's problem, and its data (a batch, or gradients)."""
    if view != "train":
        params = flat_params(size)
        return params, jax.tree.map(lambda p: p * 1e-3, params)
    params = mlp_params(size)
    width = params["w1"].shape[0]
    keys = jax.random.split(jax.random.key(1))
    batch = (
        jax.random.normal(keys[0], (TRAIN_BATCH, width)),
        jax.random.randint(keys[1], (TRAIN_BATCH,), 0, 10),
    )
    return params, batch


def measure_memory(size: int) -> list[dict]:
    """Temporary bytes of a two-phase switch's step and of its bare phases.

    Adam, then SGD with momentum, neither with temporaries of its own, in
    every view: what a switch adds, apart from its phases' own.
    """
    adam, sgdm = INNERS["adam"], INNERS["sgdm"]
    cases = {
        "adam": lambda: adam(),
        "sgdm": lambda: sgdm(),
        "switch_at(adam, sgdm)": lambda: osw.switch_at([adam(), sgdm()], [NEVER]),
        "switch_at(adam, sgdm, share_memory=True)": lambda: osw.switch_at(
            [adam(), sgdm()], [NEVER], share_memory=True
        ),
        "resettable(adam)": lambda: osw.resettable(adam(), osw.every(NEVER)),
    }
    rows = []
    for view in ("update", "apply", "train"):
        params, data = problem(view, size)
        for case, make in cases.items():
            runner = Runner(view, Variant(make()), params, data)
            rows.append(
                dict(
                    size=tree_bytes(params) // 4,
                    view=view,
                    case=case,
                    temp_bytes=runner.temp_bytes,
                    entry_copy_bytes=runner.entry_copy_bytes,
                    state_bytes=runner.state_bytes,
                )
            )
    return rows


def measure_firing(size: int, repeats: int) -> list[dict]:
    """The step that fires, next to the bare step and ``init`` of what it enters.

    In the update view (state and gradients donated), where a normal step
    costs what the bare inner's does, so the difference is the fire's own.
    """
    params = flat_params(size)
    grads = jax.tree.map(lambda p: p * 1e-3, params)
    adam, sgdm = INNERS["adam"], INNERS["sgdm"]
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

    rows = []
    for name, (tx, request, inners) in cases.items():
        fn, donate = step_function("update", tx, False)
        step = jax.jit(fn, donate_argnums=donate)
        bare_steps = [
            jax.jit(step_function("update", inner, False)[0], donate_argnums=donate)
            for inner in inners
        ]
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
                size=tree_bytes(params) // 4,
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
    params = mlp_params(size)
    width = params["w1"].shape[0]
    batch = (jnp.ones((TRAIN_BATCH, width)), jnp.zeros((TRAIN_BATCH,), jnp.int32))
    value = jnp.float32(0.0)
    rejit = []
    for _ in range(repeats):
        start = time.perf_counter()
        tx = optax.sgd(1e-3, momentum=0.9)
        fn, donate = step_function("train", tx, False)
        # A new function object: jax.jit traces and XLA compiles it anew, as a
        # training loop that re-creates its optimizer at the switch does.
        step = jax.jit(lambda *args, fn=fn: fn(*args), donate_argnums=donate)
        state = tx.init(params)
        jax.block_until_ready(step(jax.tree.map(jnp.copy, params), state, batch, value))
        rejit.append(time.perf_counter() - start)
    tx = osw.switch(
        [optax.adam(1e-3), optax.sgd(1e-3, momentum=0.9)], osw.never(), cycle=True
    )
    fn, donate = step_function("train", tx, False)
    step = jax.jit(fn, donate_argnums=donate)
    p, state = jax.tree.map(jnp.copy, params), tx.init(params)
    fire = []
    for _ in range(repeats + 2):
        state = osw.request_switch(state)
        start = time.perf_counter()
        p, state, _ = jax.block_until_ready(step(p, state, batch, value))
        fire.append(time.perf_counter() - start)
    rejit_ms = 1e3 * statistics.median(rejit)
    fire_ms = 1e3 * statistics.median(fire[2:])
    return dict(
        size=tree_bytes(params) // 4,
        rejit_first_step_ms=rejit_ms,
        switch_firing_step_ms=fire_ms,
        rejit_over_switch=rejit_ms / fire_ms,
    )


# ---------------------------------------------------------------- reporting


def machine() -> dict:
    device = jax.devices()[0]
    return dict(
        backend=jax.default_backend(),
        device_kind=device.device_kind,
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


def print_table(rows: list[dict]) -> None:
    variants = list(dict.fromkeys(row["variant"] for row in rows))
    for size, view in dict.fromkeys((row["size"], row["view"]) for row in rows):
        print(
            f"\n{view} view, {size / 1e6:.1f}M params: step-time ratio to the bare"
            " inner (median over rounds) [entry-computation copies in MiB]"
        )
        print(f"  {'variant':<19}" + "".join(f"{inner:>22}" for inner in INNERS))
        for variant in variants:
            cells = []
            for inner in INNERS:
                match = [
                    row
                    for row in rows
                    if (row["size"], row["view"], row["inner"], row["variant"])
                    == (size, view, inner, variant)
                ]
                if match:
                    row = match[0]
                    cells.append(
                        f"{row['ratio']:.3f} ({row['ms']:.2f}ms)"
                        f" [{row['entry_copy_bytes'] / 2**20:.1f}]"
                    )
                else:
                    cells.append("-")
            if any(cell != "-" for cell in cells):
                print(f"  {variant:<19}" + "".join(f"{cell:>22}" for cell in cells))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes, few rounds (a smoke run)"
    )
    parser.add_argument(
        "--out", type=pathlib.Path, default=None, help="the JSON file to write"
    )
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", message=".*donated buffers were not usable.*")

    all_variants = [
        "switch_at",
        "switch_on_plateau",
        "switch_shared",
        "naive_switch",
        "resettable",
        "resettable_fields",
    ]
    # Other designs of a switch, kept in benchmarks/ for comparison.
    baselines = ["branchfree_shared", "unforwarded_switch"]
    designs = ["switch_at", "switch_shared", "naive_switch", *baselines]
    every_inner = list(INNERS)
    small = 20_000
    if args.quick:
        plan = [
            # Every variant once, so that a broken baseline fails the smoke test.
            (
                small,
                "update",
                [*all_variants, *baselines, "carrying_others"],
                ["adam"],
            ),
            (small, "apply", ["switch_at"], ["adam"]),
            (small, "train", ["switch_at"], ["adam"]),
        ]
        rounds, iters = {small: 2}, {small: 2}
        firing_size, rejit_size, repeats = small, small, 2
    else:
        m = 1_000_000
        # The update view isolates the wrapper's own cost, so it gets every
        # variant; the apply and train views then show the designs that differ.
        # From 10M on, every variant of the library (the baselines are known).
        large = [name for name in all_variants if name != "naive_switch"]
        plan = [
            # So small that the step is the fixed cost of a call: what the
            # wrapper adds per step, in microseconds, whatever the model.
            (small, "update", [*all_variants, "carrying_others"], every_inner),
            (m, "update", [*all_variants, *baselines], every_inner),
            (m, "apply", [*designs, "resettable"], every_inner),
            (m, "train", designs, every_inner),
            (10 * m, "update", large, every_inner),
            (10 * m, "apply", large, every_inner),
            (50 * m, "update", large, every_inner),
            (50 * m, "apply", large, every_inner),
        ]
        rounds = {small: 31, m: 51, 10 * m: 11, 50 * m: 7}
        iters = {small: 20, m: 8, 10 * m: 4, 50 * m: 3}
        firing_size, rejit_size, repeats = m, m, 7

    def log(row):
        low, high = row["ratio_ci95"]
        print(
            f"  {row['view']:>6} {row['size'] / 1e6:6.2f}M {row['inner']:>10}"
            f" {row['variant']:<18} ratio {row['ratio']:.3f}"
            f" [{low:.3f}, {high:.3f}]"
            f" {row['ms']:8.2f}ms copies {row['copies']:3d}"
            f" entry-copy {row['entry_copy_bytes'] / 2**20:7.2f}MiB"
            f" temp {row['temp_bytes'] / 2**20:8.2f}MiB"
            f" state {row['state_bytes'] / 2**20:8.2f}MiB"
            f" compile {row['compile_s']:.2f}s"
            f" faults/step {row['minor_faults_per_step']:.0f}"
            f" in-call {row['host_share']:.0%}",
            flush=True,
        )

    start = time.perf_counter()
    results = dict(machine=machine(), quick=args.quick)
    results["steps"] = measure_steps(plan, rounds, iters, log)
    results["memory"] = measure_memory(firing_size)
    results["firing"] = measure_firing(firing_size, repeats)
    for row in results["firing"]:
        print(" ", json.dumps(row))
    results["rejit"] = measure_rejit(rejit_size, max(repeats // 2, 2))
    print(" ", json.dumps(results["rejit"]))
    results["wall_s"] = time.perf_counter() - start
    results["machine"]["load_average_end"] = os.getloadavg()
    print_table(results["steps"])

    out = args.out
    if out is None:
        name = results["machine"]["backend"] + ("-quick" if args.quick else "")
        out = pathlib.Path(__file__).parent / "results" / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"\nwrote {out} in {results['wall_s']:.0f}s")
    return results


if __name__ == "__main__":
    main()

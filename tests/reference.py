"""An independent plain-Python/NumPy model of the SPEC's trigger semantics.

Written from ``SPEC.md``'s text, not from ``optaxswap``'s code, so tests can
compare the library against it. Metric arithmetic runs in float32, in the
order the SPEC's formulas are written, so comparisons can be exact.
"""

from collections.abc import Sequence

import numpy as np

_F32 = np.float32


class PlateauModel:
    """The plateau rule of SPEC "Plateau semantics", one value at a time.

    ``observe(value)`` is one metric value (``osw.observe`` or ``value=``);
    ``update(value)`` is one combinator update and returns whether it fires.
    """

    def __init__(
        self,
        *,
        patience: int = 10,
        cooldown: int = 0,
        rtol: float = 1e-4,
        atol: float = 0.0,
        mode: str = "min",
        accumulation_size: int = 1,
    ):
        assert mode in ("min", "max")
        self.patience = patience
        self.cooldown = cooldown
        self.rtol = _F32(rtol)
        self.atol = _F32(atol)
        self.mode = mode
        self.accumulation_size = accumulation_size
        self.best = _F32(np.inf if mode == "min" else -np.inf)
        self.bad_count = 0
        self.cooldown_count = 0
        self.pending = False
        self.values: list[np.float32] = []
        self.fires = 0

    def _improves(self, observation: np.float32) -> bool:
        if not np.isfinite(observation):
            return False
        if np.isinf(self.best):
            # The starting best is the worst value of the mode; any finite
            # observation beats it (the margin there would be inf - inf).
            return True
        with np.errstate(over="ignore"):
            margin = self.rtol * np.abs(self.best) + self.atol
            if self.mode == "min":
                return bool(observation < self.best - margin)
            return bool(observation > self.best + margin)

    def _judge(self, observation: np.float32) -> None:
        improved = self._improves(observation)
        if improved:
            self.best = observation
        if self.cooldown_count > 0:
            self.cooldown_count -= 1
            self.bad_count = 0
            return
        self.bad_count = 0 if improved else self.bad_count + 1
        if self.bad_count >= self.patience:
            self.pending = True
            self.bad_count = 0
            self.cooldown_count = self.cooldown

    def observe(self, value: float) -> None:
        """One metric value; every ``accumulation_size`` values judge their mean."""
        self.values.append(_F32(value))
        if len(self.values) < self.accumulation_size:
            return
        total = _F32(0.0)
        with np.errstate(invalid="ignore", over="ignore"):
            for v in self.values:
                total = _F32(total + v)
            observation = _F32(total / _F32(self.accumulation_size))
        self.values = []
        self._judge(observation)

    def update(self, value: float | None = None) -> bool:
        """One combinator update; observes ``value`` first if given."""
        if value is not None:
            self.observe(value)
        fire = self.pending
        self.pending = False
        self.fires += fire
        return fire


def at_steps_fires(boundaries: Sequence[int], t: int) -> bool:
    """Whether ``at_steps(boundaries)`` fires on update ``t`` (0-based)."""
    return t in list(boundaries)


def every_fires(n: int, start: int | None, t: int) -> bool:
    """Whether ``every(n, start=start)`` fires on update ``t`` (0-based)."""
    first = n if start is None else start
    return t >= first and (t - first) % n == 0


def switch_phases(
    fires: Sequence[bool], num_phases: int, cycle: bool = False
) -> list[int]:
    """The phase each update of a ``switch`` runs, given its fire per update.

    A fire advances the phase before that update runs; in the last phase it
    stays there, or returns to phase 0 with ``cycle``.
    """
    phase = 0
    phases = []
    for fire in fires:
        if fire:
            if phase < num_phases - 1:
                phase += 1
            elif cycle:
                phase = 0
        phases.append(phase)
    return phases


def switch_entries(
    fires: Sequence[bool], num_phases: int, cycle: bool = False
) -> list[bool]:
    """Whether each update (re-)enters a phase, i.e. re-initializes its state."""
    entries = []
    phase = 0
    for fire in fires:
        entered = bool(fire) and (cycle or phase < num_phases - 1)
        if entered:
            phase = (phase + 1) % num_phases
        entries.append(entered)
    return entries

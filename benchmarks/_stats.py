"""How sure a benchmark can be of a ratio, and how a target is read from it.

Shared by ``benchmarks.run`` (which measures) and ``benchmarks.report``
(which reads targets off the JSON), so that neither needs the other's
imports.
"""

from collections.abc import Sequence

import numpy as np


def median_interval(samples: Sequence[float], level: float = 0.95) -> list[float]:
    """A bootstrap interval of the median of ``samples`` (seeded: reproducible).

    A machine's noise moves every round's ratio; this says how far the median
    over the rounds can be trusted, so that a target is read as met, missed,
    or not resolved by this machine.

    Examples:
        >>> median_interval([1.25] * 7)
        [1.25, 1.25]
    """
    samples = np.asarray(samples, dtype=np.float64)
    rng = np.random.default_rng(0)
    resampled = rng.choice(samples, size=(2000, len(samples)), replace=True)
    medians = np.median(resampled, axis=1)
    tail = (1 - level) / 2
    return [float(np.quantile(medians, tail)), float(np.quantile(medians, 1 - tail))]


def ratio_summary(ratios: Sequence[float]) -> dict:
    """The median of per-round ratios, its quartiles and its 95% interval.

    Examples:
        >>> ratio_summary([1.0, 1.1, 1.2])["ratio"]
        1.1
    """
    ratios = np.asarray(ratios, dtype=np.float64)
    return dict(
        ratio=float(np.median(ratios)),
        ratio_q1=float(np.quantile(ratios, 0.25)),
        ratio_q3=float(np.quantile(ratios, 0.75)),
        ratio_ci95=median_interval(ratios),
    )


MET, NOT_MET, UNRESOLVED = "met", "not met", "not resolved"


def verdict(cells: Sequence[tuple[float, float]], goals: Sequence[float]) -> str:
    """Whether ratios meet their goals, given each (median, interval's low end).

    Met when every median is at or below its goal; not met when some
    interval lies wholly above its goal (the machine resolves the miss); not
    resolved otherwise (a median above its goal, its interval reaching below).

    Examples:
        >>> verdict([(1.01, 0.98), (1.04, 1.00)], [1.05, 1.05])
        'met'
        >>> verdict([(1.08, 1.06)], [1.05])
        'not met'
        >>> verdict([(1.08, 1.03)], [1.05])
        'not resolved'
    """
    if not cells:
        return "not measured"
    if all(median <= goal for (median, _), goal in zip(cells, goals, strict=True)):
        return MET
    if any(low > goal for (_, low), goal in zip(cells, goals, strict=True)):
        return NOT_MET
    return UNRESOLVED

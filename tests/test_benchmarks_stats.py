"""The benchmark's own arithmetic: what it counts and how sure it says it is.

The figures in docs/performance.md are only as honest as these helpers.
"""

import numpy as np

from benchmarks import run

HLO = """\
HloModule jit_step

%region_0.1 (arg: (f32[1000])) -> (f32[1000]) {
  %arg = (f32[1000]{0}) parameter(0)
  %gte = f32[1000]{0} get-tuple-element(%arg), index=0
  %copy.1 = f32[1000]{0} copy(%gte)
  ROOT %tuple = (f32[1000]{0}) tuple(%copy.1)
}

ENTRY %main.2 (x: f32[10,100], p: pred[]) -> (f32[10,100], pred[]) {
  %x = f32[10,100]{1,0} parameter(0)
  %p = pred[] parameter(1)
  %copy.2 = f32[10,100]{1,0} copy(%x)
  %copy.3 = pred[] copy(%p)
  %copy.4 = bf16[8]{0} copy(%x)
  ROOT %out = (f32[10,100]{1,0}, pred[]) tuple(%copy.2, %copy.3)
}
"""


def test_copy_counts_every_copy_and_the_bytes_of_the_entry_ones():
    copies, entry_bytes = run.copy_counts(HLO)
    assert copies == 4
    # f32[10,100] + pred[] + bf16[8]; the branch's copy runs only with it.
    assert entry_bytes == 4 * 1000 + 1 + 2 * 8


def test_median_interval_brackets_the_median_and_narrows_with_rounds():
    rng = np.random.default_rng(1)
    few = 1.0 + 0.1 * rng.standard_normal(9)
    many = 1.0 + 0.1 * rng.standard_normal(900)
    low, high = run.median_interval(few)
    assert low <= np.median(few) <= high
    low_many, high_many = run.median_interval(many)
    assert high_many - low_many < high - low
    assert low_many < 1.0 < high_many
    assert run.median_interval(few) == [low, high]  # seeded: reproducible


def test_median_interval_of_constant_samples_is_that_constant():
    assert run.median_interval(np.full(7, 1.25)) == [1.25, 1.25]

"""The plateau rule against Keras's and PyTorch's ``ReduceLROnPlateau``.

Each row of the table in ``docs/howto/switch-on-plateau.md`` is checked here:
the setting it gives makes ``osw.on_plateau`` fire exactly where the library
reduces its learning rate, and each documented difference shows. The two
libraries are modelled in plain Python from their sources
(``keras/src/callbacks/reduce_lr_on_plateau.py``, ``on_epoch_end``, and
``torch/optim/lr_scheduler.py``, ``ReduceLROnPlateau.step``), with Python
floats as they use, and without ``min_lr`` (a switch has no learning rate to
floor).
"""

import functools
import math

import jax
from jax import lax
import jax.numpy as jnp
import numpy as np
import pytest

import optaxswap as osw


class KerasRule:
    """Keras 3 ``ReduceLROnPlateau.on_epoch_end``; ``step`` says if it reduces."""

    def __init__(self, *, patience, cooldown=0, min_delta=1e-4, mode="min"):
        self.patience, self.cooldown, self.min_delta = patience, cooldown, min_delta
        self.mode = mode
        self.best = math.inf if mode == "min" else -math.inf
        self.wait = 0
        self.cooldown_counter = 0

    def _improves(self, current):
        if self.mode == "min":
            return current < self.best - self.min_delta
        return current > self.best + self.min_delta

    def step(self, current):
        # The cooldown counter is decremented before the test, and the test
        # reads it after: cooldown c skips c - 1 observations.
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._improves(current):
            self.best = current
            self.wait = 0
        elif not self.cooldown_counter > 0:
            self.wait += 1
            if self.wait >= self.patience:
                self.cooldown_counter = self.cooldown
                self.wait = 0
                return True
        return False


class TorchRule:
    """PyTorch ``ReduceLROnPlateau.step``; returns whether it reduces."""

    def __init__(
        self, *, patience, cooldown=0, threshold=1e-4, threshold_mode="rel", mode="min"
    ):
        self.patience, self.cooldown = patience, cooldown
        self.threshold, self.threshold_mode, self.mode = threshold, threshold_mode, mode
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0

    def _is_better(self, a):
        if self.mode == "min" and self.threshold_mode == "rel":
            return a < self.best * (1.0 - self.threshold)
        if self.mode == "min":
            return a < self.best - self.threshold
        if self.threshold_mode == "rel":
            return a > self.best * (self.threshold + 1.0)
        return a > self.best + self.threshold

    def step(self, current):
        if self._is_better(current):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
            return True
        return False


@functools.cache
def plateau_fires(**settings):
    """Jitted: the fires of ``on_plateau(**settings)``, one value per update."""
    trigger = osw.on_plateau(**settings)

    def one_update(state, t_and_value):
        t, value = t_and_value
        context = osw.TriggerContext(t, None, None, {"value": value})
        fire, state = trigger.update(state, context)
        return state, fire

    def run(values):
        steps = jnp.arange(values.shape[0], dtype=jnp.int32)
        return lax.scan(one_update, trigger.init(None), (steps, values))[1]

    return jax.jit(jax.vmap(run))


def library_fires(rule_factory, sequences):
    fires = []
    for sequence in sequences:
        rule = rule_factory()
        fires.append([rule.step(float(value)) for value in sequence])
    return np.array(fires)


def random_sequences(seed, *, low=1, high=12, negative=False):
    """Integers (exact in float32, as are the thresholds below), with ties."""
    rng = np.random.default_rng(seed)
    # A downward drift with noise, so that the rules see both improvements
    # and plateaus.
    drift = -np.arange(40)[None, :] // 6
    values = rng.integers(low, high, size=(200, 40)) + drift + high
    values = -values if negative else values
    return values.astype(np.float32)


def assert_same_fires(ours, theirs):
    assert theirs.any(), "the sequences should reach plateaus"
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize(
    "mode, patience, cooldown",
    [("min", 1, 0), ("min", 2, 1), ("min", 3, 2), ("max", 1, 4), ("max", 2, 3)],
)
def test_keras_cooldown_c_is_ours_c_minus_1_with_min_delta_as_atol(
    mode, patience, cooldown
):
    sequences = random_sequences(patience * 10 + cooldown)
    theirs = library_fires(
        lambda: KerasRule(
            patience=patience, cooldown=cooldown, min_delta=0.5, mode=mode
        ),
        sequences,
    )
    ours = plateau_fires(
        patience=patience,
        cooldown=max(cooldown - 1, 0),
        rtol=0.0,
        atol=0.5,
        mode=mode,
    )(sequences)
    assert_same_fires(ours, theirs)


def test_keras_cooldown_c_and_ours_c_differ():
    # The same settings do not agree: Keras's cooldown ignores one less.
    sequences = random_sequences(7)
    theirs = library_fires(lambda: KerasRule(patience=1, cooldown=2), sequences)
    ours = plateau_fires(patience=1, cooldown=2, rtol=0.0, atol=1e-4)(sequences)
    assert (ours != theirs).any()


@pytest.mark.parametrize(
    "mode, threshold_mode, patience, cooldown",
    [
        ("min", "rel", 0, 0),
        ("min", "abs", 2, 3),
        ("min", "rel", 1, 2),
        ("max", "abs", 0, 1),
        ("max", "rel", 2, 0),
    ],
)
def test_torch_patience_p_is_ours_p_plus_1(mode, threshold_mode, patience, cooldown):
    # Positive metrics: PyTorch's relative threshold is then ours.
    sequences = random_sequences(patience * 10 + cooldown + 1)
    threshold = 0.5 if threshold_mode == "abs" else 0.125
    theirs = library_fires(
        lambda: TorchRule(
            patience=patience,
            cooldown=cooldown,
            threshold=threshold,
            threshold_mode=threshold_mode,
            mode=mode,
        ),
        sequences,
    )
    ours = plateau_fires(
        patience=patience + 1,
        cooldown=cooldown,
        rtol=threshold if threshold_mode == "rel" else 0.0,
        atol=threshold if threshold_mode == "abs" else 0.0,
        mode=mode,
    )(sequences)
    assert_same_fires(ours, theirs)


def test_torch_relative_threshold_differs_for_negative_metrics():
    # best * (1 - threshold) lies above a negative best: PyTorch counts -9.5
    # as an improvement on -10; ours (|best|) does not, nor would a loss.
    torch_rule = TorchRule(patience=0, threshold=0.1)
    assert [torch_rule.step(v) for v in (-10.0, -9.5)] == [False, False]
    assert torch_rule.best == -9.5
    ours = plateau_fires(patience=1, rtol=0.1)(np.array([[-10.0, -9.5]], np.float32))
    assert ours.tolist() == [[False, True]]
    # With atol (threshold_mode="abs") both agree on negative metrics.
    sequences = random_sequences(3, negative=True)
    theirs = library_fires(
        lambda: TorchRule(patience=1, threshold=0.5, threshold_mode="abs"), sequences
    )
    assert_same_fires(plateau_fires(patience=2, rtol=0.0, atol=0.5)(sequences), theirs)


@pytest.mark.parametrize(
    "make_rule, settings",
    [
        (lambda: KerasRule(patience=2, min_delta=0.0), dict(patience=2)),
        (lambda: TorchRule(patience=1, threshold=0.0), dict(patience=2)),
    ],
    ids=["keras", "torch"],
)
def test_nan_is_a_bad_observation_everywhere_but_minus_inf_is_their_best(
    make_rule, settings
):
    def fires_of(values):
        rule = make_rule()
        theirs = [rule.step(v) for v in values]
        ours = plateau_fires(rtol=0.0, atol=0.0, **settings)(
            np.array([values], np.float32)
        )
        return theirs, ours[0].tolist()

    # NaN never improves: the same fires.
    theirs, ours = fires_of([2.0, math.nan, 1.0, math.nan, math.nan, 0.5])
    assert theirs == ours == [False, False, False, False, True, False]
    # -inf improves on any best in theirs, and nothing improves on it after;
    # ours never takes a non-finite value as the best: 0.5 still improves.
    theirs, ours = fires_of([2.0, -math.inf, 0.5, 0.4, 0.3, 0.2])
    assert theirs == [False, False, False, True, False, True]
    assert ours == [False, False, False, False, False, False]


def test_float64_makes_the_exact_boundary_agree_with_keras():
    # 0.3 - 0.1 is 0.19999999999999998 in float64 (Keras, PyTorch), below
    # 0.2: no improvement; in float32 it is 0.20000002, above 0.2.
    keras = KerasRule(patience=1, min_delta=0.1)
    assert [keras.step(v) for v in (0.3, 0.2)] == [False, True]
    ours32 = plateau_fires(patience=1, rtol=0.0, atol=0.1)
    assert ours32(np.array([[0.3, 0.2]], np.float32)).tolist() == [[False, False]]
    with jax.enable_x64(True):
        trigger = osw.on_plateau(patience=1, rtol=0.0, atol=0.1)
        state, fires = trigger.init(None), []
        for t, value in enumerate([0.3, 0.2]):
            context = osw.TriggerContext(jnp.int32(t), None, None, {"value": value})
            fire, state = trigger.update(state, context)
            fires.append(bool(fire))
    assert fires == [False, True]

"""The strategies the demo compares, and the settings they share."""

from collections.abc import Callable
import dataclasses
from typing import Literal, NamedTuple

import optax

import optaxswap as osw

DEFAULT_STEPS = 3000
QUICK_STEPS = 600


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    """Everything that defines one demo run; the same for every strategy.

    Attributes:
      steps: train steps per strategy.
      seed: fixes the split, the data order and the initial model.
      batch_size: examples per step.
      hidden: width of the MLP's hidden layer.
      adam_learning_rate: Adam's learning rate (alone and as first phase).
      sgd_learning_rate: SGD-momentum's learning rate (alone and second phase).
      momentum: SGD's momentum.
      eval_every: steps between two evaluations (curve points, and the
        validation losses the plateau rule observes).
      patience: evaluations without improvement before the plateau switch.
    """

    steps: int = DEFAULT_STEPS
    seed: int = 0
    batch_size: int = 32
    hidden: int = 64
    adam_learning_rate: float = 1e-2
    sgd_learning_rate: float = 0.01
    momentum: float = 0.9
    eval_every: int = 25
    patience: int = 5

    @property
    def switch_step(self) -> int:
        """The step at which ``switch_at`` hands over to SGD."""
        return max(1, self.steps // 3)

    @property
    def reset_every(self) -> int:
        """The period of the periodic Adam reset."""
        return max(1, self.steps // 4)


class Strategy(NamedTuple):
    """One way to run the optimizer.

    Attributes:
      name: the name used by ``--strategies``, the table and the JSON.
      summary: one line saying what it does with this config.
      phases: the optimizer's name in each phase (one entry if it never
        switches), shown next to the progress bar.
      events: ``"switches"``, ``"resets"`` or ``"none"``: what the step at
        which the phase or reset count changes means.
      build: the optax transformation for a config.
    """

    name: str
    summary: Callable[[DemoConfig], str]
    phases: tuple[str, ...]
    events: Literal["switches", "resets", "none"]
    build: Callable[[DemoConfig], optax.GradientTransformation]


def _adam(config: DemoConfig) -> optax.GradientTransformation:
    return optax.adam(config.adam_learning_rate)


def _sgd(config: DemoConfig) -> optax.GradientTransformation:
    return optax.sgd(config.sgd_learning_rate, momentum=config.momentum)


STRATEGIES: dict[str, Strategy] = {
    strategy.name: strategy
    for strategy in (
        Strategy(
            "adam",
            lambda c: f"Adam(lr={c.adam_learning_rate:g}) throughout",
            ("adam",),
            "none",
            _adam,
        ),
        Strategy(
            "sgd",
            lambda c: (
                f"SGD(lr={c.sgd_learning_rate:g}, momentum={c.momentum:g}) throughout"
            ),
            ("sgd",),
            "none",
            _sgd,
        ),
        Strategy(
            "switch_at",
            lambda c: f"Adam, then SGD from step {c.switch_step}",
            ("adam", "sgd"),
            "switches",
            lambda c: osw.switch_at([_adam(c), _sgd(c)], [c.switch_step]),
        ),
        Strategy(
            "switch_on_plateau",
            lambda c: (
                f"Adam, then SGD after {c.patience} evaluations without a better"
                " validation loss"
            ),
            ("adam", "sgd"),
            "switches",
            lambda c: osw.switch_on_plateau([_adam(c), _sgd(c)], patience=c.patience),
        ),
        Strategy(
            "resettable",
            lambda c: f"Adam, state reset every {c.reset_every} steps",
            ("adam",),
            "resets",
            lambda c: osw.resettable(_adam(c), osw.every(c.reset_every)),
        ),
    )
}

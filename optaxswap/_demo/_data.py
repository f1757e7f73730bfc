"""The digits data: scikit-learn's bundled 8x8 handwritten digits, split three ways.

The data set ships inside scikit-learn, so the demo downloads nothing.
"""

from typing import NamedTuple

import numpy as np


class Split(NamedTuple):
    """Examples of one split: ``x`` float32 ``(n, 64)``, ``y`` int32 ``(n,)``."""

    x: np.ndarray
    y: np.ndarray


class Digits(NamedTuple):
    """The train, validation and test splits, standardized on the train split."""

    train: Split
    validation: Split
    test: Split


def load_digits_splits(seed: int) -> Digits:
    """Loads the digits and splits them 60/20/20, stratified by class.

    Args:
      seed: fixes the split.

    Returns:
      The three splits, with features standardized by the train split's
      statistics (so nothing about the validation or test data leaks in).

    Examples:
      >>> digits = load_digits_splits(seed=0)
      >>> [len(split.y) for split in digits]
      [1078, 359, 360]
      >>> digits.train.x.dtype, digits.train.y.dtype
      (dtype('float32'), dtype('int32'))
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    x, y = load_digits(return_X_y=True)
    x_train, x_rest, y_train, y_rest = train_test_split(
        x, y, test_size=0.4, stratify=y, random_state=seed
    )
    x_val, x_test, y_val, y_test = train_test_split(
        x_rest, y_rest, test_size=0.5, stratify=y_rest, random_state=seed
    )
    scaler = StandardScaler().fit(x_train)

    def split(x: np.ndarray, y: np.ndarray) -> Split:
        return Split(scaler.transform(x).astype(np.float32), y.astype(np.int32))

    return Digits(split(x_train, y_train), split(x_val, y_val), split(x_test, y_test))


def batch_order(
    num_examples: int, batch_size: int, steps: int, seed: int
) -> np.ndarray:
    """The minibatch indices of every step: shuffled epochs, one after another.

    Every strategy trains on this same order, so the runs differ only in the
    optimizer.

    Args:
      num_examples: the size of the train split.
      batch_size: examples per step, at most ``num_examples``.
      steps: the number of steps.
      seed: fixes the shuffles.

    Returns:
      An int32 array of shape ``(steps, batch_size)``.

    Examples:
      >>> order = batch_order(num_examples=10, batch_size=4, steps=5, seed=0)
      >>> order.shape
      (5, 4)
      >>> len(set(order[:2].ravel().tolist()))  # one epoch: no repeats
      8
    """
    rng = np.random.default_rng(seed)
    batches_per_epoch = num_examples // batch_size
    epochs = -(-steps // batches_per_epoch)
    batches = [
        rng.permutation(num_examples)[: batches_per_epoch * batch_size].reshape(
            batches_per_epoch, batch_size
        )
        for _ in range(epochs)
    ]
    return np.concatenate(batches)[:steps].astype(np.int32)

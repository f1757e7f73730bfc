"""``summary``: every combinator and trigger state as a flat dict, for logging."""

from collections.abc import Callable
from typing import Any

import jax

from optaxswap import _observing
from optaxswap import _plateau
from optaxswap import _resettable
from optaxswap import _spike
from optaxswap import _state_tree
from optaxswap import _switch

# Per state type, what it reports: the logged name and how to read it from
# the state's fields (a state or, under nnx.state, a mapping of its arrays).
_Reader = Callable[[Any], jax.Array]


def _field(name: str) -> tuple[str, _Reader]:
    return name, lambda state: _state_tree.field(state, name)


_REPORTS: dict[type, tuple[tuple[str, _Reader], ...]] = {
    _switch.SwitchState: (_field("phase"), _field("count"), _field("requested")),
    _resettable.ResettableState: (
        _field("resets"),
        _field("count"),
        _field("requested"),
    ),
    _plateau.PlateauState: (
        _field("best"),
        _field("bad_count"),
        _field("cooldown_count"),
        _field("pending"),
    ),
    _spike.SpikeState: (
        (
            "mean",
            lambda state: _spike.running_mean(
                _state_tree.field(state, "recent"),
                _state_tree.field(state, "num_recorded"),
            ),
        ),
        _field("num_recorded"),
        _field("pending"),
    ),
}

# The fields that can hold further states to describe.
_NESTED = ("trigger_state", "inner_state", "inner_states")


def _kind(node: Any) -> type | None:
    for state_type in (
        _switch.SwitchState,
        _resettable.ResettableState,
        _observing.ObservingState,
    ):
        kind = _state_tree.kind_of(node, state_type)
        if kind is not None:
            return kind
    return None


def _key_name(entry: Any) -> str:
    # DictKey.key, SequenceKey.idx, GetAttrKey.name, FlattenedIndexKey.key.
    for attribute in ("name", "key", "idx"):
        if hasattr(entry, attribute):
            return str(getattr(entry, attribute))
    return str(entry)


def _describe(tree: Any, prefix: tuple[str, ...], out: dict[str, jax.Array]) -> None:
    described, _ = jax.tree_util.tree_flatten_with_path(
        tree, is_leaf=lambda node: _kind(node) is not None
    )
    for path, node in described:
        kind = _kind(node)
        if kind is None:
            continue
        at = prefix + tuple(_key_name(entry) for entry in path)
        state = _state_tree.unwrap(node)
        for name, read in _REPORTS[kind]:
            out["/".join((*at, name))] = read(state)
        for name in _NESTED:
            if name in _state_tree.field_names(node):
                _describe(_state_tree.field(node, name), (*at, name), out)


def summary(opt_state: Any) -> dict[str, jax.Array]:
    """Every combinator and trigger state in ``opt_state``, as a flat dict.

    For logging with TensorBoard, Weights & Biases or CLU metric writers,
    which take flat dicts of scalars: "why hasn't it switched yet?" is
    answered by a plateau's ``bad_count`` against its ``patience``. The keys
    are the ``/``-joined pytree path of each state (empty for ``opt_state``
    itself; chain indices, dict keys and field names, as
    ``jax.tree_util.tree_flatten_with_path`` names them) followed by one of:

    - a :func:`switch`: ``phase``, ``count`` (updates done), ``requested``
      (a :func:`request_switch` pending);
    - a :func:`resettable`: ``resets``, ``count``, ``requested``;
    - an :func:`on_plateau` trigger (under ``.../trigger_state``): ``best``,
      ``bad_count`` (bad observations since the last improvement),
      ``cooldown_count`` (observations of cooldown left), ``pending`` (the
      next update fires);
    - an :func:`on_spike` trigger: ``mean`` (the running mean that a spike is
      compared with), ``num_recorded``, ``pending``.

    Nested states (a ``resettable`` inside a ``switch`` phase, triggers inside
    :func:`any_of`) are described too, under their own paths, so the keys are
    unique. The values are the state's arrays (batched if the state is): pure
    and jittable, no host transfer until you read them.

    Args:
      opt_state: any pytree holding optaxswap states: inside ``optax.chain``,
        ``optax.partition``, ``optax.MultiSteps``, ``inject_hyperparams``, a
        Flax ``TrainState``, an ``nnx.Optimizer`` or ``nnx.state`` of one.

    Returns:
      A dict from path to array; empty if ``opt_state`` holds no state.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optax
      >>> import optaxswap as osw
      >>> tx = optax.chain(
      ...     optax.clip(1.0),
      ...     osw.switch_on_plateau([optax.adam(0.1), optax.sgd(0.1)],
      ...                           patience=3))
      >>> state = tx.init(jnp.zeros(2))
      >>> state = osw.observe(osw.observe(state, 1.0), 2.0)
      >>> {key: value.item() for key, value in osw.summary(state).items()}
      ... # doctest: +NORMALIZE_WHITESPACE
      {'1/phase': 0, '1/count': 0, '1/requested': False,
       '1/trigger_state/best': 1.0, '1/trigger_state/bad_count': 1,
       '1/trigger_state/cooldown_count': 0, '1/trigger_state/pending': False}
    """
    out: dict[str, jax.Array] = {}
    _describe(opt_state, (), out)
    return out

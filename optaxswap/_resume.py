"""Continuing a run: wrap an existing optimizer state, check and restore checkpoints.

A checkpoint holds arrays under paths; a transform expects a fixed pytree. The
functions here compare the two leaf by leaf (path, shape, dtype) and say what
differs, so a checkpoint of another transform (another number of phases,
another inner optimizer, other params) fails with a readable message before
any array is read. Orbax is optional and imported only where it is used.
"""

import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optaxswap import _placement
from optaxswap import _resettable
from optaxswap import _switch
from optaxswap import _validation

# Beyond this many, a list of differences says how many more there are.
_MAX_LISTED = 20


def _key_name(key: Any) -> str:
    """One path entry, as Orbax names it on disk (``inner_states.0.mu.w``).

    A NamedTuple field (``GetAttrKey``) and a dict key (``DictKey``) render
    alike because Orbax stores NamedTuples as dicts and tuples as lists.
    """
    for attribute in ("name", "key", "idx"):
        if hasattr(key, attribute):
            return str(getattr(key, attribute))
    return str(key)


def _holds_no_array(node: Any) -> bool:
    return not jax.tree.leaves(node)


def _leaves_by_path(tree: Any) -> dict[tuple[str, ...], Any]:
    """Leaves by path; a subtree without arrays counts as one leaf.

    An ``optax.EmptyState`` saved by Orbax comes back as ``None``: keeping
    array-less subtrees as leaves still tells a missing phase or chain entry
    that holds no arrays (``optax.sgd`` without momentum) from a present one.
    """
    flat, _ = jax.tree_util.tree_flatten_with_path(tree, is_leaf=_holds_no_array)
    return {tuple(_key_name(key) for key in path): leaf for path, leaf in flat}


def _rebuild_like(like: Any, tree: Any) -> Any:
    """``like``'s pytree, holding ``tree``'s arrays as jax arrays, by path.

    A state restored without a target holds dicts and lists where the
    optimizer has NamedTuples and tuples (and perhaps NumPy arrays); matching
    by path gives it the optimizer's own types.
    """
    arrays = _leaves_by_path(tree)
    leaves = [
        leaf if _holds_no_array(leaf) else jnp.asarray(arrays[path])
        for path, leaf in _leaves_by_path(like).items()
    ]
    treedef = jax.tree.structure(like, is_leaf=_holds_no_array)
    return jax.tree.unflatten(treedef, leaves)


def _describe(leaf: Any) -> str:
    if _holds_no_array(leaf):
        return "no arrays"
    shape, dtype = getattr(leaf, "shape", None), getattr(leaf, "dtype", None)
    if shape is None or dtype is None:
        return f"a {type(leaf).__name__}, not an array"
    return f"{np.dtype(dtype)}{list(shape)}"


def _absent(
    leaves: dict[tuple[str, ...], Any], other: dict[tuple[str, ...], Any]
) -> dict[tuple[str, ...], Any]:
    """The roots of the subtrees of ``leaves`` that ``other`` lacks entirely.

    Reporting ``inner_states.2`` once reads better than one line per array
    of a missing phase. A path that is only a prefix in ``other`` maps to its
    leaf (a leaf on one side, a subtree on the other).
    """
    prefixes = {path[:end] for path in other for end in range(1, len(path) + 1)}
    roots = {}
    for path, leaf in leaves.items():
        if path in other:
            continue
        root = next(
            (
                path[:end]
                for end in range(1, len(path) + 1)
                if path[:end] not in prefixes
            ),
            None,
        )
        if root is None:
            roots[path] = leaf
        else:
            roots.setdefault(root, None)
    return roots


def structure_differences(
    expected: Any, found: Any, *, expected_name: str, found_name: str
) -> list[str]:
    """Every path, shape and dtype difference between two trees of arrays.

    Leaves may be arrays, ``jax.ShapeDtypeStruct`` s or Orbax array metadata:
    anything with ``shape`` and ``dtype``. Leaves are matched by path, with
    NamedTuple fields and dict keys alike and tuples and lists alike; a
    subtree that one side lacks entirely is reported once, at its root.
    """
    expected_leaves = _leaves_by_path(expected)
    found_leaves = _leaves_by_path(found)
    differences = []
    for names, (side, other_side) in (
        ((expected_leaves, found_leaves), (expected_name, found_name)),
        ((found_leaves, expected_leaves), (found_name, expected_name)),
    ):
        leaves, other = names
        for path, leaf in _absent(leaves, other).items():
            where = ".".join(path)
            if leaf is None:
                differences.append(f"{where}: in {side}, not in {other_side}")
            else:
                differences.append(
                    f"{where}: {_describe(leaf)} in {side},"
                    f" a subtree with arrays in {other_side}"
                )
    for path in expected_leaves.keys() & found_leaves.keys():
        want = _describe(expected_leaves[path])
        have = _describe(found_leaves[path])
        if have != want:
            differences.append(
                f"{'.'.join(path)}: {have} in {found_name}, {want} in {expected_name}"
            )
    return sorted(differences)


def _count(differences: list[str]) -> str:
    return f"{len(differences)} difference{'' if len(differences) == 1 else 's'}"


def _summary(differences: list[str]) -> str:
    listed = "\n".join(f"  {line}" for line in differences[:_MAX_LISTED])
    if len(differences) > _MAX_LISTED:
        listed += f"\n  ... and {len(differences) - _MAX_LISTED} more"
    return listed


def check_structure(target: Any, saved: Any) -> None:
    """Raises if ``saved`` does not fit ``target`` leaf for leaf.

    Compares every leaf by its path, shape and dtype, and lists all the
    differences in one error: a leaf missing from either side (another number
    of ``switch`` phases, another inner optimizer, other params), another
    shape, or another dtype (Orbax would cast a dtype silently). Leaves are
    matched by path name, as Orbax names them on disk: a NamedTuple field
    matches a dict key of the same name and a tuple matches a list, since an
    Orbax checkpoint's metadata stores NamedTuples as dicts and tuples as
    lists. Static metadata, such as a plateau trigger's hyper-parameters, is
    not compared: it comes from the transform, not from the checkpoint.

    Args:
      target: the tree the checkpoint is meant for, usually
        ``jax.eval_shape(tx.init, params)``: arrays or
        ``jax.ShapeDtypeStruct`` s.
      saved: what was saved: Orbax checkpoint metadata (e.g.
        ``ocp.StandardCheckpointer().metadata(path).item_metadata`` or
        ``manager.item_metadata(step)``) or any tree of arrays.

    Raises:
      ValueError: listing each path that differs and how.
      FileNotFoundError: if ``saved`` is ``None`` (no checkpoint metadata).

    Examples:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import optax
      >>> import optaxswap as osw
      >>> params = {"w": jnp.zeros(3)}
      >>> saved = jax.eval_shape(optax.adam(0.1).init, params)
      >>> target = jax.eval_shape(optax.sgd(0.1, momentum=0.9).init, params)
      >>> osw.check_structure(target, saved)
      Traceback (most recent call last):
        ...
      ValueError: the checkpoint does not match the target (4 differences):
        0.count: in the checkpoint, not in the target
        0.mu: in the checkpoint, not in the target
        0.nu: in the checkpoint, not in the target
        0.trace: in the target, not in the checkpoint
      Build the target with jax.eval_shape(tx.init, params) ...
    """
    if saved is None:
        raise FileNotFoundError(
            "saved is None: no checkpoint metadata to compare with the target."
            " A CheckpointManager's item_metadata(step) is None for a missing"
            " step, and for an item it has not saved or restored itself: pass"
            " the manager to osw.restore_checkpoint, which reads it from disk."
        )
    saved = _metadata_tree(saved)
    differences = structure_differences(
        target, saved, expected_name="the target", found_name="the checkpoint"
    )
    if differences:
        raise ValueError(
            f"the checkpoint does not match the target ({_count(differences)}):"
            f"\n{_summary(differences)}\nBuild the target with"
            " jax.eval_shape(tx.init, params) from the transform and the params"
            " (shapes and dtypes) of the saved run."
        )


def restore_checkpoint(source: Any, target: Any, *, step: int | None = None) -> Any:
    """Restores an Orbax checkpoint into ``target``'s exact structure, checked first.

    Reads the checkpoint's metadata, compares it with ``target`` by
    :func:`check_structure` and only then restores, so a checkpoint of another
    transform fails with a list of the paths that differ instead of an Orbax
    error about one of them (or, for a dtype, a silent cast). The restored
    tree has ``target``'s pytree types (NamedTuples, plateau states with their
    static configuration) and dtypes. Each leaf is placed as it was saved
    (devices, mesh, axis types, partition spec, as the checkpoint records
    them) where ``target`` names no devices: ``jax.eval_shape(tx.init,
    params)`` gives leaves without a sharding (automatic mesh axes, or params
    on one device) or on an abstract mesh (explicit axes, ``jax.make_mesh``'s
    default), on which Orbax alone restores onto one device or fails. So a
    compiled train step takes the restored state without recompiling, in one
    process or in a multi-process job. A leaf with a concrete sharding is
    restored onto that sharding (to restore onto other devices).

    Orbax is an optional dependency (``pip install orbax-checkpoint``); it is
    imported only when this function runs.

    Args:
      source: an ``orbax.checkpoint.CheckpointManager`` whose steps were saved
        with ``ocp.args.StandardSave``, or the absolute path (``str`` or
        path-like) of a checkpoint saved with ``ocp.StandardCheckpointer``.
      target: the abstract tree to restore into, usually
        ``jax.eval_shape(tx.init, params)`` (or a dict holding it beside the
        params, as it was saved); its concrete shardings, if any, are kept.
      step: the manager's step to restore; defaults to its latest step. Not
        allowed with a path.

    Returns:
      The restored tree, of ``target``'s structure.

    Raises:
      FileNotFoundError: naming the path or the manager's directory, if there
        is no checkpoint there (a missing path, an empty directory, a manager
        without steps or without ``step``).
      ValueError: if the checkpoint does not match ``target`` (listing what
        differs), if the path is relative, if ``step`` is given with a path,
        if a leaf of ``target`` is on an abstract mesh that the checkpoint's
        devices do not form, or if a manager with custom step names was
        created without ``item_handlers=ocp.StandardCheckpointHandler()`` and
        never saved or restored its item (its metadata is unreadable).
      ImportError: if Orbax is not installed.

    Examples:
      >>> import tempfile, os
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import optax
      >>> import orbax.checkpoint as ocp
      >>> import optaxswap as osw
      >>> params = {"w": jnp.ones(3)}
      >>> tx = osw.switch_on_plateau([optax.adam(0.1), optax.sgd(0.1)])
      >>> path = os.path.join(tempfile.mkdtemp(), "opt_state")
      >>> with ocp.StandardCheckpointer() as checkpointer:
      ...     checkpointer.save(path, tx.init(params))
      ...     checkpointer.wait_until_finished()
      >>> restored = osw.restore_checkpoint(path, jax.eval_shape(tx.init, params))
      >>> int(osw.phase(restored))
      0
      >>> other = osw.switch_on_plateau([optax.adam(0.1)] * 3)
      >>> osw.restore_checkpoint(path, jax.eval_shape(other.init, params))
      Traceback (most recent call last):
        ...
      ValueError: the checkpoint does not match the target (4 differences):
        inner_states.1.0: in the target, not in the checkpoint
        inner_states.1.1: in the target, not in the checkpoint
        inner_states.1: no arrays in the checkpoint, a subtree with arrays in the target
        inner_states.2: in the target, not in the checkpoint
      Build the target with jax.eval_shape(tx.init, params) ...
    """
    try:
        import orbax.checkpoint as ocp  # Optional: only this function needs it.
    except ImportError as error:
        raise ImportError(
            "restore_checkpoint needs Orbax: pip install orbax-checkpoint"
        ) from error

    if isinstance(source, ocp.CheckpointManager):
        if step is None:
            step = source.latest_step()
            if step is None:
                raise FileNotFoundError(
                    f"the CheckpointManager at {source.directory} holds no"
                    " checkpoint to restore."
                )
        elif step not in source.all_steps():
            raise FileNotFoundError(
                f"the CheckpointManager at {source.directory} holds no step"
                f" {step}; its steps: {sorted(source.all_steps())}."
            )
        saved = _manager_item_metadata(ocp, source, step)
        check_structure(target, saved)
        target = _placed_as_saved(target, saved)
        return source.restore(step, args=ocp.args.StandardRestore(target))
    if not isinstance(source, str | os.PathLike):
        raise TypeError(
            "source must be an orbax.checkpoint.CheckpointManager or a"
            f" checkpoint path, got {source!r}."
        )
    if step is not None:
        raise ValueError(
            f"step is for a CheckpointManager, got step={step!r} with the path"
            f" {os.fspath(source)!r}."
        )
    from etils import epath  # Installed with Orbax.

    path = epath.Path(source)
    if not path.is_absolute():
        raise ValueError(
            f"the checkpoint path must be absolute, as Orbax requires, got"
            f" {os.fspath(source)!r}; pass os.path.abspath(path)."
        )
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {os.fspath(source)!r}.")
    if path.is_dir() and not any(path.iterdir()):
        raise FileNotFoundError(
            f"no checkpoint at {os.fspath(source)!r}: the directory is empty."
        )
    with ocp.StandardCheckpointer() as checkpointer:
        saved = checkpointer.metadata(path)
        check_structure(target, saved)
        return checkpointer.restore(path, _placed_as_saved(target, saved))


def _metadata_tree(saved: Any) -> Any:
    """The tree of array metadata in what Orbax's ``metadata`` calls return."""
    saved = getattr(saved, "item_metadata", saved)
    return getattr(saved, "tree", saved)


def _is_concrete(sharding: Any) -> bool:
    """Whether ``sharding`` names devices (not ``None``, not an abstract mesh)."""
    if sharding is None:
        return False
    mesh = getattr(sharding, "mesh", None)
    return not isinstance(mesh, jax.sharding.AbstractMesh)


def _saved_sharding(metadata: Any) -> jax.sharding.Sharding | None:
    """The sharding a leaf was saved with, if this process has its devices."""
    sharding = getattr(metadata, "sharding", None)
    if sharding is None:
        return None
    try:
        return sharding.to_jax_sharding()
    except (KeyError, ValueError):
        return None  # Saved on devices that this job does not have.


def _placed_as_saved(target: Any, saved: Any) -> Any:
    """``target`` with each leaf that names no devices placed as it was saved.

    ``jax.eval_shape(tx.init, params)`` gives leaves without a sharding (on
    automatic axes, and the scalars on any mesh) or with a sharding on an
    abstract mesh (explicit axes), which names no devices: Orbax restores
    the first onto one device, and fails on the second. The checkpoint
    records where every leaf was (devices, mesh, axis types, spec), so the
    run continues with the placement it was saved with, and a compiled train
    step takes the restored state as it took the saved one. Leaves with a
    concrete sharding are restored onto it, as Orbax does.
    """
    saved_leaves = _leaves_by_path(_metadata_tree(saved))

    def placed(path: Any, leaf: Any) -> Any:
        sharding = getattr(leaf, "sharding", None)
        if not hasattr(leaf, "shape") or _is_concrete(sharding):
            return leaf
        name = tuple(_key_name(key) for key in path)
        saved_sharding = _saved_sharding(saved_leaves.get(name))
        if sharding is None:
            if saved_sharding is None:
                return leaf
        elif not (
            isinstance(saved_sharding, jax.sharding.NamedSharding)
            and saved_sharding.mesh.abstract_mesh == sharding.mesh
        ):
            raise ValueError(
                f"the target's leaf {'.'.join(name)} is sharded on an abstract"
                f" mesh ({sharding.mesh}) that the checkpoint's devices do not"
                f" form (saved with {saved_sharding}). Give the target concrete"
                " shardings: jax.ShapeDtypeStruct(shape, dtype, sharding=...)"
                " with a NamedSharding on a jax.sharding.Mesh."
            )
        else:
            # The target's layout on the saved mesh's devices; the saved
            # sharding itself where they agree, so that even the spelling of
            # the spec (P("x") or P("x", None)) is the saved one.
            wanted = jax.sharding.NamedSharding(saved_sharding.mesh, sharding.spec)
            if not wanted.is_equivalent_to(saved_sharding, len(leaf.shape)):
                saved_sharding = wanted
        return jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=saved_sharding)

    return jax.tree_util.tree_map_with_path(placed, target)


def _manager_item_metadata(ocp: Any, manager: Any, step: int) -> Any:
    """The metadata of a manager's default item at ``step``.

    Read from the step's directory first, named as CheckpointManager names
    steps and its single item by default: a manager knows an item's metadata
    only once it saved or restored that item itself, and asking a freshly
    opened one logs two Orbax warnings (``Item "default" was found in the
    checkpoint, but could not be restored``) before it returns None.
    """
    try:
        step_path = ocp.path.step.find_step_path(
            manager.directory, ocp.path.step.standard_name_format(), step=step
        )
    except ValueError:
        step_path = None
    if step_path is not None and (step_path / "default").exists():
        return ocp.StandardCheckpointHandler().metadata(step_path / "default")
    # Steps named the manager's own way: only a manager given the item's
    # handler can read its metadata.
    metadata = manager.item_metadata(step)
    if metadata is None:
        raise ValueError(
            f"cannot read the metadata of step {step} in {manager.directory}:"
            " this CheckpointManager names its steps its own way and has not"
            " saved or restored the item yet. Create it with"
            " item_handlers=ocp.StandardCheckpointHandler()."
        )
    return metadata


def wrap_state(
    tx: optax.GradientTransformation,
    params: optax.Params,
    inner_state: optax.OptState,
    *,
    count: int = 0,
) -> optax.OptState:
    """The state of ``tx`` continuing from an existing inner optimizer state.

    For a run that trained with a plain optimizer (say ``optax.adam``) and
    continues under a combinator whose first transform is that optimizer:
    ``switch`` (any constructor: ``switch_at``, ``switch_on_plateau``) starts in
    phase 0 with ``inner_state`` as phase 0's state, ``resettable`` with
    ``inner_state`` as its inner state, so Adam's moments and step count carry
    on. Everything else (the other phases, the trigger, the request flag) is
    ``tx.init(params)``. The result has exactly the structure and dtypes of
    ``tx.init(params)``, so it checkpoints and compiles like it.

    Args:
      tx: a ``switch`` or ``resettable`` transform (not wrapped further: for
        one inside ``optax.chain``, wrap its own part of the chain's state).
      params: the current params.
      inner_state: the existing state of ``tx``'s first transform (of its
        inner transform for ``resettable``), e.g. restored from a checkpoint
        against ``jax.eval_shape(optax.adam(lr).init, params)``.
      count: updates already performed, for step-based triggers: with
        ``count=5000``, ``switch_at(..., [8000])`` switches 3000 updates later
        and ``every(n)`` keeps the original run's schedule. Defaults to 0 (the
        combinator's own count starts now; the inner state keeps its own).

    Returns:
      ``tx``'s state, a :class:`SwitchState` or :class:`ResettableState`.

    Raises:
      TypeError: if ``tx`` is not a ``switch`` or ``resettable`` transform.
      ValueError: if ``inner_state`` does not match the state of ``tx``'s first
        (or inner) transform, listing each path, shape or dtype that differs,
        or if ``count`` is negative.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optax
      >>> import optaxswap as osw
      >>> params = jnp.array([1.0, -2.0])
      >>> adam = optax.adam(0.1)
      >>> adam_state = adam.init(params)
      >>> for _ in range(3):  # the run so far, under plain Adam
      ...     updates, adam_state = adam.update(params, adam_state)
      ...     params = optax.apply_updates(params, updates)
      >>> tx = osw.switch_on_plateau([adam, optax.sgd(0.1)], patience=5)
      >>> state = osw.wrap_state(tx, params, adam_state)
      >>> int(osw.phase(state)), int(state.inner_states[0][0].count)
      (0, 3)
    """
    count = _validation.check_int("count", count, minimum=0)
    state = tx.init(params)
    if isinstance(state, _switch.SwitchState):
        expected = _switch.phase_state(state, 0)
        what = "the state of the switch's first transform"
    elif isinstance(state, _resettable.ResettableState):
        expected = state.inner_state
        what = "the state of resettable's inner transform"
    else:
        raise TypeError(
            "tx must be a switch or resettable transform, whose init returns a"
            f" SwitchState or ResettableState; its init returned a"
            f" {type(state).__name__}. For a combinator inside optax.chain,"
            " wrap its own part of the chain's state."
        )
    differences = structure_differences(
        expected, inner_state, expected_name=what, found_name="inner_state"
    )
    if differences:
        raise ValueError(
            f"inner_state does not match {what} ({_count(differences)}):"
            f"\n{_summary(differences)}"
        )
    inner_state = _rebuild_like(expected, inner_state)
    if isinstance(state, _switch.SwitchState):
        state = _switch.with_phase_state(state, 0, inner_state)
    else:
        state = state._replace(inner_state=inner_state)
    state = state._replace(count=jnp.full((), count, jnp.int32))
    return _placement.place_like_params(state, params)

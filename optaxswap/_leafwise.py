"""Leafwise conditionals: a phase's update split by parameter leaf.

On CPU, what one conditional around a whole optimizer update costs a small
train step is not the conditional itself but the wait: it starts once the
last gradient is ready, so none of the update's kernels can overlap with the
backward pass, as they do in the bare step (each leaf's update starts as soon
as its gradient is there). Most optax updates treat each parameter leaf on
its own (Adam, SGD, RMSProp, ...): their work separates into one part per
leaf plus a few scalars (the step count). Run with one conditional per leaf,
each part waits only for its own gradient, and the step keeps the overlap.

:func:`cond` decides this from the update's jaxpr when the step is traced: it
labels each input by the leaf it belongs to and follows the labels through
the equations. If no equation mixes two leaves, each leaf's conditional
evaluates exactly the equations its outputs need, and scalar work that
several leaves need but none owns (the bias corrections of Adam) runs once,
before the conditionals. These are the operations of the whole update, but
XLA may compile a leaf's arithmetic differently on its own (a division by a
scalar as a multiplication by its reciprocal), so the values agree with the
whole update's to float32 round-off, not always bit for bit. Where an
equation mixes leaves (global-norm clipping, L-BFGS, an ``init`` under a
conditional), the update stays under one conditional.
"""

from collections.abc import Callable, Sequence
from typing import Any

import jax
from jax import lax
from jax.extend import core as jex

# Work that several leaves need but none owns runs once before the
# conditionals: fine for scalars; anything larger keeps the update whole.
_SHARED_ELEMENTS = 1024


def _evaluate(
    source: Any,
    eqns: Sequence[Any],
    invars: Sequence[Any],
    outvars: Sequence[Any],
    args: list,
) -> list[Any]:
    """The values of ``outvars`` from ``eqns`` of ``source``, given ``invars``'."""
    info = source.debug_info
    jaxpr = jex.Jaxpr(
        [],
        list(invars),
        list(outvars),
        list(eqns),
        jex.no_effects,
        debug_info=info.with_unknown_names() if info is not None else None,
    )
    return jax.core.eval_jaxpr(jaxpr, [], *args)


def _labels(jaxpr: Any, groups: Sequence[int | None]) -> dict | None:
    """The groups each variable depends on; None if an equation mixes two."""
    labels: dict[Any, frozenset[int]] = {var: frozenset() for var in jaxpr.constvars}
    for var, group in zip(jaxpr.invars, groups):
        labels[var] = frozenset() if group is None else frozenset({group})
    for eqn in jaxpr.eqns:
        mixed = _eqn_label(labels, eqn)
        if len(mixed) > 1:
            return None
        for var in eqn.outvars:
            labels[var] = mixed
    return labels


def _label(labels: dict, var: Any) -> frozenset[int]:
    return frozenset() if isinstance(var, jex.Literal) else labels[var]


def _eqn_label(labels: dict, eqn: Any) -> frozenset[int]:
    return frozenset().union(*(_label(labels, var) for var in eqn.invars))


def _needed(eqns: Sequence[Any], outvars: Sequence[Any]) -> list[int]:
    """Indices of the equations that ``outvars`` depend on, in order."""
    wanted = {var for var in outvars if not isinstance(var, jex.Literal)}
    keep = []
    for index in range(len(eqns) - 1, -1, -1):
        eqn = eqns[index]
        if any(var in wanted for var in eqn.outvars):
            keep.append(index)
            wanted.update(v for v in eqn.invars if not isinstance(v, jex.Literal))
    return keep[::-1]


def cond(
    pred: jax.Array,
    run: Callable[[Any, Any], Any],
    carry: Any,
    operands: Any,
    carry_groups: Sequence[int | None],
    operand_groups: Sequence[int | None],
) -> Any | None:
    """``lax.cond(pred, run, skip, carry, operands)``, one conditional per group.

    ``skip`` returns ``carry`` as it is. A group is a parameter leaf.

    Args:
      pred: whether ``run`` runs.
      run: ``run(carry, operands) -> new carry``, of ``carry``'s structure.
      carry: what the conditional writes (or forwards when it skips).
      operands: what it only reads.
      carry_groups: per leaf of ``carry``, the group it belongs to, or None
        where unknown (then the leaf joins the group of the work that writes
        it).
      operand_groups: the same, per leaf of ``operands``.

    Returns:
      The new carry, or None when ``run``'s work does not separate by group
      (then nothing was added to the computation).
    """
    carry_leaves, carry_tree = jax.tree.flatten(carry)
    operand_leaves, operand_tree = jax.tree.flatten(operands)

    def flat_run(*leaves: Any) -> list[Any]:
        new = run(
            jax.tree.unflatten(carry_tree, leaves[: len(carry_leaves)]),
            jax.tree.unflatten(operand_tree, leaves[len(carry_leaves) :]),
        )
        return jax.tree.leaves(new)

    closed = jax.make_jaxpr(flat_run)(*carry_leaves, *operand_leaves)
    jaxpr = closed.jaxpr
    groups = sorted({g for g in (*carry_groups, *operand_groups) if g is not None})
    if len(groups) < 2 or any(eqn.effects for eqn in jaxpr.eqns):
        return None
    # First pass: each carried leaf of unknown group joins the group of the
    # work that writes it. Second pass, with those groups: no equation may
    # mix two groups, and each new value must come from its leaf's group.
    labels = _labels(jaxpr, (*carry_groups, *operand_groups))
    if labels is None:
        return None
    owner = [
        known if known is not None else min(_label(labels, var), default=None)
        for known, var in zip(carry_groups, jaxpr.outvars)
    ]
    labels = _labels(jaxpr, (*owner, *operand_groups))
    if labels is None:
        return None
    for j, var in enumerate(jaxpr.outvars):
        found = _label(labels, var)
        if owner[j] is None:
            if found:
                return None
            # Scalars such as a step count: written with the first group.
            owner[j] = groups[0]
        elif not found <= {owner[j]}:
            return None
    slices = {
        group: _needed(
            jaxpr.eqns, [v for v, o in zip(jaxpr.outvars, owner) if o == group]
        )
        for group in groups
    }
    # Work no group owns but several need (a bias correction from the step
    # count) runs once, before the conditionals, as the whole update runs it
    # once: XLA then compiles each leaf's arithmetic as in the whole update.
    # Such work used by one group only (a fill of zeros) stays in its branch.
    uses: dict[int, int] = {}
    for indices in slices.values():
        for i in indices:
            uses[i] = uses.get(i, 0) + 1
    shared = sorted(
        i
        for i, count in uses.items()
        if count > 1 and not _eqn_label(labels, jaxpr.eqns[i])
    )
    if any(
        getattr(var.aval, "size", 0) > _SHARED_ELEMENTS
        for i in shared
        for var in jaxpr.eqns[i].outvars
    ):
        return None
    leaves_in = [*carry_leaves, *operand_leaves, *closed.consts]
    vars_in = [*jaxpr.invars, *jaxpr.constvars]
    shared_eqns = [jaxpr.eqns[i] for i in shared]
    shared_out = [
        v for eqn in shared_eqns for v in eqn.outvars if not isinstance(v, jex.DropVar)
    ]
    shared_values = _evaluate(jaxpr, shared_eqns, vars_in, shared_out, leaves_in)
    vars_in += shared_out
    leaves_in += shared_values
    new_carry = list(carry_leaves)
    hoisted = set(shared)
    for group in groups:
        eqns = [jaxpr.eqns[i] for i in slices[group] if i not in hoisted]
        mine = [j for j, o in enumerate(owner) if o == group]
        outvars = [jaxpr.outvars[j] for j in mine]
        used = {
            v
            for v in (*(v for eqn in eqns for v in eqn.invars), *outvars)
            if not isinstance(v, jex.Literal)
        }
        # The group's own carried leaves come in once, as the carry: passed
        # again as operands, XLA would copy them to keep both values alive.
        reads = [i for i, var in enumerate(vars_in) if var in used and i not in mine]

        def branch(own, values, eqns=eqns, mine=mine, reads=reads, outvars=outvars):
            invars = [*(vars_in[j] for j in mine), *(vars_in[i] for i in reads)]
            return _evaluate(jaxpr, eqns, invars, outvars, [*own, *values])

        def skip(own, values):
            return list(own)

        outs = lax.cond(
            pred,
            branch,
            skip,
            [carry_leaves[j] for j in mine],
            [leaves_in[i] for i in reads],
        )
        for j, out in zip(mine, outs):
            new_carry[j] = out
    return jax.tree.unflatten(carry_tree, new_carry)

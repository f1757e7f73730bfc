"""What a function does, read from its jaxpr when the step is traced.

The engine picks how to run a re-initialization from these facts: an
``init`` that only fills buffers can be computed on every step and selected
(XLA fuses the select into the update's loops), a dearer one goes under a
conditional; an ``init`` that never reads the params' values can take the
updates as its template when ``update`` gets no params.
"""

from collections.abc import Callable, Iterator
from typing import Any

import jax
from jax.extend import core as jex_core

# Primitives that fill, convert or move buffers: an ``init`` made of these
# costs what writing its state costs, and fuses into its consumers.
_FILLING = frozenset(
    {
        "broadcast_in_dim",
        "convert_element_type",
        "copy",
        "copy_p",
        "device_put",
        "expand_dims",
        "iota",
        "reshape",
        "squeeze",
        "select_n",
        "concatenate",
        "pad",
        "transpose",
        "slice",
        "dynamic_slice",
        "dynamic_update_slice",
        "add",
        "sub",
        "mul",
        "div",
        "neg",
        "max",
        "min",
        "abs",
        "sign",
        "eq",
        "ne",
        "lt",
        "le",
        "gt",
        "ge",
        "and",
        "or",
        "not",
        "sqrt",
        "rsqrt",
        "integer_pow",
        "stop_gradient",
        "sharding_constraint",
        "mesh_cast",
        "reshard",
    }
)
# Primitives that make work data-dependent (an inner loop, a branch).
_CONTROL_FLOW = frozenset({"while", "scan", "cond", "switch"})
# Primitives whose cost is not the arithmetic of one pass: a loop, or a call
# to the host.
_NOT_ONCE = frozenset(
    {"while", "scan", "pure_callback", "io_callback", "debug_callback", "callback"}
)


def _equations(jaxpr: jex_core.Jaxpr) -> Iterator[jex_core.JaxprEqn]:
    for eqn in jaxpr.eqns:
        yield eqn
        for sub in jex_core.jaxprs_in_params(eqn.params):
            yield from _equations(sub)


def _jaxpr(fn: Callable[..., Any], *args: Any) -> jex_core.ClosedJaxpr:
    return jax.make_jaxpr(fn)(*args)


def _is_call(eqn: jex_core.JaxprEqn) -> bool:
    return bool(list(jex_core.jaxprs_in_params(eqn.params)))


def only_fills(fn: Callable[..., Any], *args: Any) -> bool:
    """True if ``fn(*args)`` only fills, converts or moves buffers."""
    return all(
        eqn.primitive.name in _FILLING
        or (_is_call(eqn) and eqn.primitive.name not in _CONTROL_FLOW)
        for eqn in _equations(_jaxpr(fn, *args).jaxpr)
    )


def runs_once(jaxpr: jex_core.ClosedJaxpr) -> bool:
    """True if ``jaxpr`` runs each equation once and never calls the host.

    No loop (``while``, ``scan``: L-BFGS's line search), no callback, no
    other effect; conditionals are allowed.
    """
    return not jaxpr.effects and all(
        eqn.primitive.name not in _NOT_ONCE for eqn in _equations(jaxpr.jaxpr)
    )


def reads_values(fn: Callable[..., Any], tree: Any) -> bool:
    """True if ``fn(tree)`` reads the values of ``tree``.

    False if it depends only on the shapes and dtypes (``zeros_like``).
    """
    jaxpr = _jaxpr(fn, tree).jaxpr
    inputs = set(jaxpr.invars)
    used = {
        var
        for eqn in jaxpr.eqns
        for var in eqn.invars
        if isinstance(var, jex_core.Var) and var in inputs
    }
    returned = {var for var in jaxpr.outvars if isinstance(var, jex_core.Var)}
    return bool(used | (returned & inputs))

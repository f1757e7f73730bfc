"""SWATS: start with Adam, switch to SGD with momentum at an estimated rate."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from optaxswap import _switch
from optaxswap import _triggers
from optaxswap import _validation
from optaxswap import handoff as _handoff


class SwatsAdamState(NamedTuple):
    """State of the Adam phase of :func:`swats`.

    Attributes:
      adam: the state of ``optax.adam(learning_rate, b1, b2, eps)``.
      steps: int32, Adam steps taken so far (the paper's ``k``, saturating).
      gamma_average: float32, the paper's ``lambda_k``, the exponential
        average of the projected rates ``gamma_k`` (not bias-corrected).
      estimated_rate: float32, ``lambda_k / (1 - b2**k)``, the SGD learning
        rate a switch at this point would use.
      converged: bool, the switching criterion held on the last step.
    """

    adam: optax.OptState
    steps: jax.Array
    gamma_average: jax.Array
    estimated_rate: jax.Array
    converged: jax.Array


def _adam_estimating_rate(
    learning_rate: optax.ScalarOrSchedule,
    b1: float,
    b2: float,
    eps: float,
    switch_eps: float,
) -> optax.GradientTransformation:
    """Adam that also estimates the SGD rate its steps amount to."""
    adam = optax.adam(learning_rate, b1=b1, b2=b2, eps=eps)

    def init_fn(params: optax.Params) -> SwatsAdamState:
        return SwatsAdamState(
            adam=adam.init(params),
            steps=jnp.zeros((), jnp.int32),
            gamma_average=jnp.zeros((), jnp.float32),
            estimated_rate=jnp.zeros((), jnp.float32),
            converged=jnp.zeros((), jnp.bool_),
        )

    def update_fn(
        updates: optax.Updates,
        state: SwatsAdamState,
        params: optax.Params | None = None,
    ) -> tuple[optax.Updates, SwatsAdamState]:
        step, adam_state = adam.update(updates, state.adam, params)
        steps = optax.safe_increment(state.steps)
        # The estimate is one global scalar; float32 keeps the dot products
        # of low-precision params from losing the criterion's small margins.
        step32 = optax.tree.cast(step, jnp.float32)
        grads32 = optax.tree.cast(updates, jnp.float32)
        step_along_grad = optax.tree.vdot(step32, grads32)
        # Only a step against the gradient gives a positive rate; others
        # leave the average untouched.
        descends = step_along_grad < 0
        gamma = optax.tree.vdot(step32, step32) / jnp.where(
            descends, -step_along_grad, 1.0
        )
        gamma_average = jnp.where(
            descends, b2 * state.gamma_average + (1.0 - b2) * gamma, state.gamma_average
        )
        debiased = gamma_average / (1.0 - jnp.power(b2, steps.astype(jnp.float32)))
        converged = descends & (steps > 1) & (jnp.abs(debiased - gamma) < switch_eps)
        return step, SwatsAdamState(
            adam=adam_state,
            steps=steps,
            gamma_average=gamma_average.astype(jnp.float32),
            estimated_rate=jnp.where(descends, debiased, state.estimated_rate).astype(
                jnp.float32
            ),
            converged=converged,
        )

    return optax.GradientTransformation(init_fn, update_fn)


def _sgd_with_averaged_momentum(
    learning_rate: float, momentum: float
) -> optax.GradientTransformation:
    """The paper's SGD phase: ``x -= (1 - momentum) * learning_rate * v``."""
    return optax.chain(
        optax.trace(decay=momentum),
        optax.scale(-(1.0 - momentum) * learning_rate),
    )


def swats(
    learning_rate: optax.ScalarOrSchedule = 1e-3,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    switch_eps: float = 1e-9,
) -> optax.GradientTransformationExtraArgs:
    r"""SWATS: Adam until its steps look like SGD's, then SGD with momentum.

    Runs ``optax.adam(learning_rate, b1, b2, eps)``. After each Adam step
    ``p_k`` on gradient ``g_k`` where ``p_k . g_k < 0`` (dot products over
    all parameters), it projects the step on the gradient,
    ``gamma_k = (p_k . p_k) / (-p_k . g_k)``, and averages
    ``lambda_k = b2 * lambda_{k-1} + (1 - b2) * gamma_k``. When ``k > 1`` and
    ``|lambda_k / (1 - b2**k) - gamma_k| < switch_eps``, the next update
    switches, once and for all, to SGD with momentum ``b1`` at the learning
    rate ``Lambda = lambda_k / (1 - b2**k)``, in the paper's form
    ``v_k = b1 * v_{k-1} + g_k``, ``x_k = x_{k-1} - (1 - b1) * Lambda * v_k``
    with ``v`` starting at zero.

    The switch is global, as in the paper: one criterion and one learning
    rate for all parameters, from dot products over the whole tree (inside
    ``optax.partition``, over the parameters of its partition). The paper
    skips only steps with ``p_k . g_k = 0``; steps with ``p_k . g_k > 0``
    would give a negative ``gamma_k`` and are skipped here too. The Adam
    step is optax's, with ``eps`` added to the bias-corrected ``sqrt(v)``.

    It is :func:`optaxswap.switch` over two phases: the criterion is computed
    inside the Adam phase's update, the trigger reads it from the state, and a
    hand-off writes ``Lambda`` into the SGD phase's state (an
    ``optax.inject_hyperparams`` learning rate), so the train step compiles
    once. Read the phase with :func:`optaxswap.phase` and the SGD learning
    rate with ``optax.tree.get(state, "learning_rate")`` (``0`` until the
    switch); :func:`optaxswap.request_switch` switches at once.

    Args:
      learning_rate: Adam's learning rate (or schedule).
      b1: Adam's first-moment decay, and SGD's momentum after the switch,
        in ``[0, 1)``.
      b2: Adam's second-moment decay, and the decay of the rate average, in
        ``(0, 1)``.
      eps: Adam's epsilon, ``>= 0``.
      switch_eps: how close the averaged and the current rate must come,
        ``> 0``; the paper's ``epsilon = 1e-9``.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with a
      :class:`SwitchState` whose phase 0 holds a ``SwatsAdamState``.

    Raises:
      TypeError: if an argument is not a number (or ``learning_rate`` a
        schedule).
      ValueError: if an argument is out of range.

    Examples:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import optax
      >>> import optaxswap as osw
      >>> tx = osw.swats(learning_rate=0.1, switch_eps=1e-3)
      >>> params = jnp.array([1.0, -2.0, 3.0])
      >>> state = tx.init(params)
      >>> loss = lambda p: jnp.sum(jnp.abs(p))
      >>> @jax.jit
      ... def step(params, state):
      ...     updates, state = tx.update(jax.grad(loss)(params), state, params)
      ...     return optax.apply_updates(params, updates), state
      >>> for _ in range(5):
      ...     params, state = step(params, state)
      >>> int(osw.phase(state))
      1
      >>> print(f"{optax.tree.get(state, 'learning_rate'):.4f}")
      0.1000

    References:
      Keskar and Socher, `Improving Generalization Performance by Switching
      from Adam to SGD <https://arxiv.org/abs/1712.07628>`_, 2017.
    """
    learning_rate = _validation.check_learning_rate(learning_rate)
    b1, b2, eps = _validation.check_decays(b1, b2, eps)
    switch_eps = _validation.check_real(
        "switch_eps", switch_eps, low=0.0, low_open=True
    )

    adam_phase = _adam_estimating_rate(learning_rate, b1, b2, eps, switch_eps)
    sgd_phase = optax.inject_hyperparams(
        _sgd_with_averaged_momentum,
        static_args=("momentum",),
        hyperparam_dtype=jnp.float32,
    )(learning_rate=0.0, momentum=b1)

    def adam_converged(context: _triggers.TriggerContext) -> jax.Array:
        adam_state = _switch.phase_state(context.state, 0)
        return (context.state.phase == 0) & adam_state.converged

    def set_sgd_rate(context: _handoff.HandoffContext) -> optax.OptState:
        return optax.tree.set(
            context.fresh_state, learning_rate=context.from_state.estimated_rate
        )

    return _switch.switch(
        [adam_phase, sgd_phase], _triggers.when(adam_converged), handoff=set_sgd_rate
    )

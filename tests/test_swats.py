"""SWATS against a NumPy re-implementation of Keskar and Socher's formulas."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optaxswap as osw

LEARNING_RATE = 0.05
B1, B2, EPS = 0.9, 0.999, 1e-8
# On the problem below the gap |lambda_k / (1 - b2**k) - gamma_k| first falls
# below 1e-3 at k = 17, far from the threshold on both sides (see the margin
# check in the test), so float32 and float64 agree on the switch step.
SWITCH_EPS = 1e-3


def _least_squares():
    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(6, 4))
    target = rng.normal(size=6)
    return matrix, target


def _numpy_swats(grad_fn, x0, num_updates):
    """Algorithm 1 of the paper (global form), in float64.

    Returns the params after each update, the 1-based Adam step after which
    it switched, the SGD learning rate and the criterion gaps before it.
    """
    x = np.asarray(x0, np.float64)
    m, v = np.zeros_like(x), np.zeros_like(x)
    lam, switched_at, rate, gaps = 0.0, None, None, []
    velocity = np.zeros_like(x)
    trajectory = []
    for k in range(1, num_updates + 1):
        g = grad_fn(x)
        if switched_at is not None:
            velocity = B1 * velocity + g
            x = x - (1 - B1) * rate * velocity
            trajectory.append(x)
            continue
        m = B1 * m + (1 - B1) * g
        v = B2 * v + (1 - B2) * g * g
        p = -LEARNING_RATE * (m / (1 - B1**k)) / (np.sqrt(v / (1 - B2**k)) + EPS)
        x = x + p
        trajectory.append(x)
        if p @ g < 0:
            gamma = (p @ p) / (-(p @ g))
            lam = B2 * lam + (1 - B2) * gamma
            gap = abs(lam / (1 - B2**k) - gamma)
            if k > 1 and gap < SWITCH_EPS:
                switched_at, rate = k, lam / (1 - B2**k)
                gaps.append(gap)
            elif k > 1:
                gaps.append(gap)
    return np.stack(trajectory), switched_at, rate, gaps


def _run(tx, grad_fn, x0, num_updates):
    @jax.jit
    def step(params, state):
        updates, state = tx.update(grad_fn(params), state, params)
        return optax.apply_updates(params, updates), state

    params, state = jnp.asarray(x0, jnp.float32), tx.init(jnp.asarray(x0))
    trajectory, phases = [], []
    for _ in range(num_updates):
        params, state = step(params, state)
        trajectory.append(params)
        phases.append(int(osw.phase(state)))
    return np.stack(trajectory), phases, state


def test_swats_switch_step_rate_and_sgd_phase_match_the_paper():
    matrix, target = _least_squares()
    num_updates = 30
    expected, switched_at, rate, gaps = _numpy_swats(
        lambda x: matrix.T @ (matrix @ x - target), np.zeros(4), num_updates
    )
    # The problem must make the criterion decisive, or float32 could switch
    # one step apart from the float64 reference.
    assert switched_at == 17
    assert min(gaps[:-1]) > 2 * SWITCH_EPS and gaps[-1] < 0.7 * SWITCH_EPS

    tx = osw.swats(LEARNING_RATE, b1=B1, b2=B2, eps=EPS, switch_eps=SWITCH_EPS)
    jmatrix, jtarget = jnp.asarray(matrix, jnp.float32), jnp.asarray(target)
    actual, phases, state = _run(
        tx, lambda x: jmatrix.T @ (jmatrix @ x - jtarget), np.zeros(4), num_updates
    )

    # Update number k (1-based) = switched_at was Adam's last: the next runs SGD.
    assert phases == [0] * switched_at + [1] * (num_updates - switched_at)
    np.testing.assert_allclose(optax.tree.get(state, "learning_rate"), rate, rtol=1e-5)
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5)


def test_swats_stays_with_adam_while_the_criterion_does_not_hold():
    matrix, target = _least_squares()
    tx = osw.swats(LEARNING_RATE, switch_eps=1e-9)
    jmatrix, jtarget = jnp.asarray(matrix, jnp.float32), jnp.asarray(target)
    actual, phases, state = _run(
        tx, lambda x: jmatrix.T @ (jmatrix @ x - jtarget), np.zeros(4), 20
    )
    assert phases == [0] * 20
    assert float(optax.tree.get(state, "learning_rate")) == 0.0
    adam = optax.adam(LEARNING_RATE)
    x, adam_state = jnp.zeros(4), adam.init(jnp.zeros(4))
    for _ in range(20):
        updates, adam_state = adam.update(
            jmatrix.T @ (jmatrix @ x - jtarget), adam_state
        )
        x = optax.apply_updates(x, updates)
    np.testing.assert_allclose(actual[-1], x, rtol=1e-6)


def test_swats_request_switch_enters_sgd_at_the_current_estimate():
    tx = osw.swats(0.1, switch_eps=1e-9)
    params = jnp.array([3.0, -1.0])
    state = tx.init(params)
    for grads in ([1.0, -2.0], [0.5, -1.0], [2.0, 1.0]):
        _, state = tx.update(jnp.asarray(grads), state, params)
    estimate = state.inner_states[0].estimated_rate
    updates, state = tx.update(jnp.array([1.0, 1.0]), osw.request_switch(state), params)
    assert int(osw.phase(state)) == 1
    np.testing.assert_allclose(optax.tree.get(state, "learning_rate"), estimate)
    # v starts at zero, so the first SGD step is -(1 - b1) * rate * g.
    np.testing.assert_allclose(updates, -(1 - 0.9) * estimate * np.ones(2), rtol=1e-6)


@pytest.mark.filterwarnings("error:Some donated buffers were not usable")
def test_swats_keeps_low_precision_state_dtypes_and_compiles_once():
    tx = osw.swats(0.1, switch_eps=1e-3)
    params = jnp.array([1.0, -2.0, 3.0], jnp.bfloat16)
    state = tx.init(params)
    before = jax.tree.map(lambda x: (x.dtype, x.shape), state)
    traces = []

    # Donation fails if two leaves share a buffer.
    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def step(params, state):
        traces.append(None)
        updates, state = tx.update(jnp.sign(params), state, params)
        return optax.apply_updates(params, updates), state

    for _ in range(6):
        params, state = step(params, state)
    assert int(osw.phase(state)) == 1
    assert len(traces) == 1
    assert jax.tree.map(lambda x: (x.dtype, x.shape), state) == before
    assert params.dtype == jnp.bfloat16


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        (dict(learning_rate=0.0), ValueError, "learning_rate"),
        (dict(learning_rate="fast"), TypeError, "learning_rate"),
        (dict(b1=1.0), ValueError, "b1"),
        (dict(b2=0.0), ValueError, "b2"),
        (dict(eps=-1.0), ValueError, "eps"),
        (dict(switch_eps=0.0), ValueError, "switch_eps"),
        (dict(switch_eps=float("nan")), ValueError, "switch_eps"),
    ],
)
def test_swats_rejects_bad_arguments_naming_them(kwargs, error, name):
    with pytest.raises(error, match=name):
        osw.swats(**kwargs)


# SWATS's switch is global, so it is not in test_behaviour.CASES, whose
# partition test assumes a transform trains a sub-tree as it trains it alone.
# The other shared guarantees are checked here.
@pytest.mark.parametrize(
    "wrapper", ["chain", "multi_steps", "apply_if_finite", "inject"]
)
def test_swats_inside_optax_wrappers_matches_a_bare_run(wrapper):
    matrix, target = _least_squares()
    jmatrix, jtarget = jnp.asarray(matrix, jnp.float32), jnp.asarray(target)
    num_updates, skipped = 24, 5

    def make(learning_rate=LEARNING_RATE):
        return osw.swats(learning_rate, switch_eps=SWITCH_EPS)

    tx = {
        "chain": optax.chain(optax.identity(), make()),
        "multi_steps": optax.MultiSteps(make(), every_k_schedule=2),
        "apply_if_finite": optax.apply_if_finite(make(), max_consecutive_errors=2),
        "inject": optax.inject_hyperparams(make)(learning_rate=LEARNING_RATE),
    }[wrapper]
    calls_per_update = 2 if wrapper == "multi_steps" else 1

    @jax.jit
    def step(params, state, grad_scale):
        grads = grad_scale * (jmatrix.T @ (jmatrix @ params - jtarget))
        updates, state = tx.update(grads, state, params, unknown_argument=1.0)
        return optax.apply_updates(params, updates), state

    params = jnp.zeros(4)
    state = tx.init(params)
    for call in range(num_updates * calls_per_update):
        nan_call = wrapper == "apply_if_finite" and call == skipped
        params, state = step(params, state, jnp.float32(np.nan if nan_call else 1.0))
    assert step._cache_size() == 1
    assert int(osw.phase(state)) == 1

    expected_updates = num_updates - (wrapper == "apply_if_finite")
    expected, _, _ = _run(
        make(),
        lambda x: jmatrix.T @ (jmatrix @ x - jtarget),
        np.zeros(4),
        expected_updates,
    )
    np.testing.assert_allclose(params, expected[-1], rtol=1e-6, atol=1e-7)

"""The physics-informed problem: 1D Poisson ``-u'' = f`` on [0, 1], zero at both ends.

The exact solution is a sum of sines, so the error of the trained network can
be measured everywhere, not only at the collocation points. The network
satisfies the boundary conditions by construction (``u(x) = x (1 - x) N(x)``),
so the only loss is the PDE residual at the collocation points.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp

from optaxswap._demo import _model

# (amplitude a, wave number k) of each sine in the exact solution
# u(x) = sum(a * sin(k * pi * x)): a smooth mode plus a faster one, whose
# -u'' is 16 times larger per unit amplitude, so the residual weighs it more.
SOLUTION_MODES = ((1.0, 1.0), (0.2, 4.0))


def exact_solution(x: jax.Array) -> jax.Array:
    """The exact solution ``u(x) = sum(a sin(k pi x))``, elementwise.

    Examples:
      >>> import jax.numpy as jnp
      >>> [round(float(u), 6) for u in exact_solution(jnp.array([0.0, 1.0]))]
      [0.0, -0.0]
    """
    return sum(a * jnp.sin(k * jnp.pi * x) for a, k in SOLUTION_MODES)


def forcing(x: jax.Array) -> jax.Array:
    """The right-hand side ``f = -u''`` of the exact solution, elementwise.

    Examples:
      >>> import jax.numpy as jnp
      >>> round(float(forcing(jnp.array(0.5))), 3)  # pi^2 * 1 + 0
      9.87
    """
    return sum(
        a * (k * jnp.pi) ** 2 * jnp.sin(k * jnp.pi * x) for a, k in SOLUTION_MODES
    )


def collocation_points(count: int) -> jax.Array:
    """``count`` equally spaced interior points of (0, 1), float32.

    Examples:
      >>> collocation_points(3).tolist()
      [0.25, 0.5, 0.75]
    """
    return jnp.linspace(0.0, 1.0, count + 2, dtype=jnp.float32)[1:-1]


def network_solution(params: _model.Params, x: jax.Array) -> jax.Array:
    """The network's ``u`` at one point ``x`` (a scalar): ``x (1 - x) N(x)``.

    The factor ``x (1 - x)`` makes ``u(0) = u(1) = 0`` hold exactly, whatever
    the weights, so training only has the PDE to satisfy.

    Examples:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> params = _model.init_mlp(jax.random.key(0), (1, 8, 1))
      >>> abs(float(network_solution(params, jnp.float32(1.0))))
      0.0
    """
    network_output = _model.logits(params, jnp.reshape(x, (1, 1)))[0, 0]
    return x * (1.0 - x) * network_output


def second_derivative(u: Callable[[jax.Array], jax.Array], x: jax.Array) -> jax.Array:
    """``u''(x)`` of a scalar function at a scalar point, by nested ``jax.jvp``.

    Forward mode twice is the cheapest exact second derivative of a function
    of one variable.

    Examples:
      >>> import jax.numpy as jnp
      >>> float(second_derivative(lambda x: x**3, jnp.float32(2.0)))  # 6 x
      12.0
    """

    def first_derivative(x: jax.Array) -> jax.Array:
        return jax.jvp(u, (x,), (jnp.ones_like(x),))[1]

    return jax.jvp(first_derivative, (x,), (jnp.ones_like(x),))[1]


def poisson_residual(
    u: Callable[[jax.Array], jax.Array], points: jax.Array
) -> jax.Array:
    """The PDE residual ``-u''(x) - f(x)`` of ``u`` at each of ``points``.

    Args:
      u: any scalar function of a scalar, e.g. the exact solution or
        ``lambda x: network_solution(params, x)``.
      points: a 1D array of points in [0, 1].

    Returns:
      The residual at each point, the shape of ``points``.

    Examples:
      >>> import jax.numpy as jnp
      >>> points = collocation_points(5)
      >>> bool(jnp.abs(poisson_residual(exact_solution, points)).max() < 1e-3)
      True
    """
    return jax.vmap(lambda x: -second_derivative(u, x) - forcing(x))(points)


def residual_loss(params: _model.Params, points: jax.Array) -> jax.Array:
    """The training loss: the network's mean squared residual, relative to f.

    The mean of ``(-u'' - f)^2`` over ``points`` divided by the mean of
    ``f^2`` there, so ``u = 0`` scores 1 and the exact solution 0.

    Examples:
      >>> import jax
      >>> params = _model.init_mlp(jax.random.key(0), (1, 8, 1))
      >>> loss = residual_loss(params, collocation_points(16))
      >>> loss.shape, loss.dtype
      ((), dtype('float32'))
    """
    residual = poisson_residual(lambda x: network_solution(params, x), points)
    return jnp.mean(residual**2) / jnp.mean(forcing(points) ** 2)


def relative_l2_error(params: _model.Params, points: jax.Array) -> jax.Array:
    """``||u - u_exact|| / ||u_exact||`` over ``points`` (a fine grid).

    Examples:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> zero = jax.tree.map(jnp.zeros_like,
      ...                     _model.init_mlp(jax.random.key(0), (1, 8, 1)))
      >>> float(relative_l2_error(zero, jnp.linspace(0, 1, 101)))  # u = 0
      1.0
    """
    predicted = jax.vmap(lambda x: network_solution(params, x))(points)
    exact = exact_solution(points)
    return jnp.linalg.norm(predicted - exact) / jnp.linalg.norm(exact)

"""The model: a one-hidden-layer MLP classifier, in plain JAX."""

import jax
import jax.numpy as jnp
import optax

Params = dict[str, jax.Array]


def init_mlp(key: jax.Array, sizes: tuple[int, ...]) -> Params:
    """LeCun-normal weights and zero biases for an MLP of layer ``sizes``.

    Args:
      key: a JAX PRNG key; the same key gives every strategy the same model.
      sizes: layer widths, input first, e.g. ``(64, 64, 10)``.

    Returns:
      A dict ``{"w0", "b0", "w1", "b1", ...}`` of float32 arrays.

    Examples:
      >>> import jax
      >>> params = init_mlp(jax.random.key(0), (64, 32, 10))
      >>> {name: p.shape for name, p in sorted(params.items())}
      {'b0': (32,), 'b1': (10,), 'w0': (64, 32), 'w1': (32, 10)}
    """
    keys = jax.random.split(key, len(sizes) - 1)
    initializer = jax.nn.initializers.lecun_normal()
    params = {}
    for layer, (key, fan_in, fan_out) in enumerate(zip(keys, sizes, sizes[1:])):
        params[f"w{layer}"] = initializer(key, (fan_in, fan_out), jnp.float32)
        params[f"b{layer}"] = jnp.zeros((fan_out,), jnp.float32)
    return params


def logits(params: Params, x: jax.Array) -> jax.Array:
    """The MLP's class scores for a batch ``x``, tanh between layers."""
    num_layers = len(params) // 2
    for layer in range(num_layers):
        x = x @ params[f"w{layer}"] + params[f"b{layer}"]
        if layer < num_layers - 1:
            x = jnp.tanh(x)
    return x


def loss_and_accuracy(
    params: Params, x: jax.Array, y: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Mean cross-entropy and accuracy of the MLP on ``(x, y)``.

    Args:
      params: the MLP's parameters.
      x: float32 features ``(n, d)``.
      y: int32 labels ``(n,)``.

    Returns:
      Two float32 scalars: the loss and the fraction classified right.

    Examples:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> params = init_mlp(jax.random.key(0), (4, 8, 3))
      >>> loss, accuracy = loss_and_accuracy(params, jnp.ones((5, 4)),
      ...                                    jnp.zeros(5, jnp.int32))
      >>> loss.shape, 0.0 <= float(accuracy) <= 1.0
      ((), True)
    """
    scores = logits(params, x)
    loss = optax.softmax_cross_entropy_with_integer_labels(scores, y).mean()
    accuracy = (scores.argmax(-1) == y).mean()
    return loss, accuracy

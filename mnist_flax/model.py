"""The CNN that reads 28x28 digits, and the jitted ``predict`` that training and inference share.

    from mnist_flax import model
    net = model.build(config.model.to_dict())      # or the dict stored in a checkpoint
    probs = model.predict(net, variables, images)   # images: (B, 28, 28) floats in [0, 1]

The network takes raw MNIST-style pixels (white ink on black, in [0, 1]) and normalises them
itself, so every caller feeds the same thing: training, evaluation and ``preprocess``'s output.
Its architecture is fully described by a small dict of plain values, stored with every
checkpoint, so inference rebuilds it from the checkpoint alone.
"""

from __future__ import annotations

import functools
from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

# Mean and standard deviation of MNIST training pixels (of 1.0).
PIXEL_MEAN = 0.1307
PIXEL_STD = 0.3081
NUM_CLASSES = 10


def _pool(x: jax.Array, kind: str) -> jax.Array:
  """2x2 pooling, stride 2, via reshape: its gradient is cheap on CPU (no select-and-scatter)."""
  b, h, w, c = x.shape
  x = x[:, : h - h % 2, : w - w % 2, :].reshape(b, h // 2, 2, w // 2, 2, c)
  return x.max(axis=(2, 4)) if kind == "max" else x.mean(axis=(2, 4))


class CNN(nn.Module):
  """Conv blocks (conv -> [batch norm] -> relu -> 2x2 pool), then a dense layer and logits."""

  features: Sequence[int] = (32, 64)
  kernel_size: int = 3
  dense: int = 256
  pool: str = "max"
  batch_norm: bool = True
  dropout: float = 0.0

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False) -> jax.Array:
    x = images.astype(jnp.float32)
    if x.ndim == 3:
      x = x[..., None]
    x = (x - PIXEL_MEAN) / PIXEL_STD
    for features in self.features:
      x = nn.Conv(features, (self.kernel_size, self.kernel_size), padding="SAME",
                  use_bias=not self.batch_norm)(x)
      if self.batch_norm:
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)
      x = _pool(nn.relu(x), self.pool)
    x = x.reshape(x.shape[0], -1)
    x = nn.relu(nn.Dense(self.dense)(x))
    if self.dropout:
      x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return nn.Dense(NUM_CLASSES)(x)


def build(model_config: Mapping[str, Any]) -> CNN:
  """Builds the network from its config dict (``config.model`` or a checkpoint's copy)."""
  kwargs = dict(model_config)
  kwargs["features"] = tuple(kwargs["features"])
  return CNN(**kwargs)


@functools.partial(jax.jit, static_argnums=0)
def predict(net: CNN, variables: Any, images: jax.Array) -> jax.Array:
  """Class probabilities (B, 10) for images (B, 28, 28) in [0, 1], white ink on black."""
  return jax.nn.softmax(net.apply(variables, images, train=False))

"""The CNN that reads 28x28 digits, and the jitted ``predict`` that training and inference share.

    from mnist_flax import model
    net = model.build(config.model.to_dict())      # or the dict stored in a checkpoint
    probs = model.predict(net, variables, images)   # images: (B, 28, 28) floats in [0, 1]

The network takes raw MNIST-style pixels (white ink on black, in [0, 1]) and normalises them
itself, so every caller feeds the same thing: training, evaluation and ``preprocess``'s output.
Its architecture is fully described by a small dict of plain values, stored with every
checkpoint, so inference rebuilds it from the checkpoint alone. With ``members`` above 1 in
that dict, ``build`` returns an ``Ensemble`` of that many CNNs, which every caller uses the same
way.

Why it is shaped the way it is (measured on a 2-core CPU with XLA:CPU, side by side):

* Space-to-depth first (28x28x1 -> 14x14x4): the same pixels, a quarter of the positions, so
  the first convolution does a quarter of the work with no loss of information.
* Convolutions as im2col (the k*k shifted slices concatenated on the channel axis, then one
  matmul) when training: XLA:CPU runs the weight gradient of a small-output ``lax.conv`` very
  slowly, while a matmul and its transpose are fast. Without a gradient (evaluation,
  ``predict``) the same kernel goes through ``lax.conv``, whose forward pass is faster (3.4x
  for the shipped five-CNN ensemble at batch 256). Both compute the same function.
* Pooling by reshape + max over non-overlapping windows: its gradient is a cheap select,
  where ``nn.max_pool``'s (select-and-scatter) costs about twice a whole training step.
"""

from __future__ import annotations

import functools
from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from mnist_flax.constants import NUM_CLASSES

# Mean and standard deviation of MNIST training pixels (of 1.0).
PIXEL_MEAN = 0.1307
PIXEL_STD = 0.3081
# PyTorch's default initialisation (uniform, bound 1/sqrt(fan_in)): it trains this small net to
# high accuracy in one epoch with a large Adam step, where LeCun-normal needs longer.
_torch_kernel_init = nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform")


def _torch_bias_init(fan_in: int):
  bound = fan_in ** -0.5
  return lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -bound, bound)


def space_to_depth(x: jax.Array, block: int) -> jax.Array:
  """(B, H, W, C) -> (B, H/block, W/block, C*block*block): pixel blocks become channels."""
  if block == 1:
    return x
  b, h, w, c = x.shape
  x = x.reshape(b, h // block, block, w // block, block, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, h // block, w // block, block * block * c)


def pool(x: jax.Array, window: int, kind: str) -> jax.Array:
  """Non-overlapping window x window pooling by reshape (edges that don't fill a window drop)."""
  if window == 1:
    return x
  b, h, w, c = x.shape
  x = x[:, : h - h % window, : w - w % window, :]
  x = x.reshape(b, h // window, window, w // window, window, c)
  return x.max(axis=(2, 4)) if kind == "max" else x.mean(axis=(2, 4))


class Conv(nn.Module):
  """A stride-1 convolution: im2col + one matmul, or ``lax.conv`` (see the module docstring).

  ``im2col`` picks the formulation only; the parameters and the function are the same.
  """

  features: int
  kernel_size: int = 3
  padding: str = "VALID"
  use_bias: bool = True
  im2col: bool = True

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    b, h, w, c = x.shape
    k = self.kernel_size
    fan_in = k * k * c
    kernel = self.param("kernel", _torch_kernel_init, (k, k, c, self.features))
    if self.im2col:
      if self.padding == "SAME":
        lo = (k - 1) // 2
        x = jnp.pad(x, ((0, 0), (lo, k - 1 - lo), (lo, k - 1 - lo), (0, 0)))
        h, w = h + k - 1, w + k - 1
      ho, wo = h - k + 1, w - k + 1
      patches = jnp.concatenate(
          [x[:, i:i + ho, j:j + wo, :] for i in range(k) for j in range(k)], axis=-1)
      y = jnp.dot(patches.reshape(b * ho * wo, fan_in), kernel.reshape(fan_in, self.features))
      y = y.reshape(b, ho, wo, self.features)
    else:
      y = jax.lax.conv_general_dilated(x, kernel, (1, 1), self.padding,
                                       dimension_numbers=("NHWC", "HWIO", "NHWC"))
    if self.use_bias:
      y = y + self.param("bias", _torch_bias_init(fan_in), (self.features,))
    return y


class CNN(nn.Module):
  """[space-to-depth] -> conv blocks (conv -> [batch norm] -> pool -> relu) -> dense -> logits."""

  features: Sequence[int] = (32, 64)
  kernel_size: int = 3
  padding: Sequence[str] = ("VALID", "SAME")
  pool_windows: Sequence[int] = (2, 3)
  space_to_depth: int = 2
  dense: int = 256
  pool: str = "max"
  batch_norm: bool = True
  dropout: float = 0.0
  classes: int = NUM_CLASSES  # 1 for the digit gate (see Gated).

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False) -> jax.Array:
    x = images.astype(jnp.float32)
    if x.ndim == 3:
      x = x[..., None]
    x = (x - PIXEL_MEAN) / PIXEL_STD
    x = space_to_depth(x, self.space_to_depth)
    for features, padding, window in zip(self.features, self.padding, self.pool_windows):
      # im2col only where its gradient is taken (see the module docstring).
      x = Conv(features, self.kernel_size, padding, use_bias=not self.batch_norm,
               im2col=train)(x)
      if self.batch_norm:
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)
      x = nn.relu(pool(x, window, self.pool))
    x = x.reshape(x.shape[0], -1)
    fan_in = x.shape[-1]
    x = nn.Dense(self.dense, kernel_init=_torch_kernel_init,
                 bias_init=_torch_bias_init(fan_in))(x)
    x = nn.relu(x)
    if self.dropout:
      x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return nn.Dense(self.classes, kernel_init=_torch_kernel_init,
                    bias_init=_torch_bias_init(self.dense))(x)

  def member_logits(self, images: jax.Array, train: bool = False,
                    per_member: bool = False) -> jax.Array:
    """Logits (1, B, 10): one CNN as a one-member ensemble, so training treats both alike."""
    return self(images[0] if per_member else images, train)[None]


class Ensemble(nn.Module):
  """``members`` CNNs of one architecture, each with its own initialisation, answering together.

  ``__call__`` returns the log of the members' mean probability, so a softmax of it is the
  ensemble's answer and everything written for one CNN (evaluation, ``predict``) works
  unchanged. ``member_logits`` gives each member's own logits, (members, B, 10), which training
  fits separately so that the members stay independent models.
  """

  members: int
  cnn: CNN

  def setup(self) -> None:
    # Separate submodules (member_0, member_1, ...), not an nn.vmap over stacked weights:
    # XLA:CPU runs the vmapped (batched) matmuls at half the speed of the plain ones.
    self.member = [self.cnn.clone(parent=None) for _ in range(self.members)]

  def member_logits(self, images: jax.Array, train: bool = False,
                    per_member: bool = False) -> jax.Array:
    """(members, B, 10); with ``per_member``, ``images`` holds one batch per member."""
    if per_member:
      return jnp.stack([member(x, train) for member, x in zip(self.member, images)])
    return jnp.stack([member(images, train) for member in self.member])

  def __call__(self, images: jax.Array, train: bool = False) -> jax.Array:
    log_probs = jax.nn.log_softmax(self.member_logits(images, train))
    return jax.nn.logsumexp(log_probs, axis=0) - jnp.log(self.members)


class Gated(nn.Module):
  """A digit reader (``classifier``: a CNN or an Ensemble) with a gate: a one-output CNN
  whose sigmoid is the probability that the image is a digit at all.

  MNIST holds only digits, so the reader answers a letter or a scribble as surely as a digit; the
  gate, trained apart on MNIST against rendered non-digits (``mnist_flax.gate``), says how likely
  the image is one. ``predict`` multiplies the reader's (calibrated) answer by it, so the reader's
  choice of digit and its accuracy stay as they were (its calibration on digits nearly so: a few
  are doubted). ``__call__`` and ``member_logits`` are the reader's, so training, calibration and
  evaluation code written for a CNN works unchanged.
  """

  classifier: CNN | Ensemble
  gate: CNN

  def member_logits(self, images: jax.Array, train: bool = False,
                    per_member: bool = False) -> jax.Array:
    return self.classifier.member_logits(images, train, per_member)

  def __call__(self, images: jax.Array, train: bool = False) -> jax.Array:
    if self.is_initializing():  # The gate's parameters are made with the reader's.
      self.gate(images)
    return self.classifier(images, train)

  def digit_probability(self, images: jax.Array) -> jax.Array:
    """(B,): how likely each image is a digit."""
    return jax.nn.sigmoid(self.gate(images)[:, 0])


# The gate's architecture (see Gated): the CNN's two conv blocks, narrower, no batch norm.
GATE = {"features": (32, 64), "kernel_size": 3, "padding": ("VALID", "SAME"),
        "pool_windows": (2, 3), "space_to_depth": 2, "dense": 128, "pool": "max",
        "batch_norm": False, "dropout": 0.0, "classes": 1}


def _cnn(kwargs: dict[str, Any]) -> CNN:
  for key in ("features", "padding", "pool_windows"):
    kwargs[key] = tuple(kwargs[key])
  return CNN(**kwargs)


def build(model_config: Mapping[str, Any]) -> CNN | Ensemble | Gated:
  """Builds the network from its config dict (``config.model`` or a checkpoint's copy); with a
  ``gate`` entry (the gate's CNN config), the reader gated (see Gated)."""
  kwargs = dict(model_config)
  gate = kwargs.pop("gate", None)
  members = kwargs.pop("members", 1)
  reader = _cnn(kwargs) if members == 1 else Ensemble(members, _cnn(kwargs))
  return reader if gate is None else Gated(reader, _cnn(dict(gate)))


@functools.partial(jax.jit, static_argnums=0)
def member_logits(net: CNN | Ensemble | Gated, variables: Any, images: jax.Array) -> jax.Array:
  """Each member's logits (members, B, 10) for images (B, 28, 28); one CNN is one member."""
  return net.apply(variables, images, train=False, method="member_logits")


@functools.partial(jax.jit, static_argnums=0, static_argnames="temperature")
def predict(net: CNN | Ensemble | Gated, variables: Any, images: jax.Array,
            temperature: float = 1.0) -> jax.Array:
  """Class probabilities (B, 10) for images (B, 28, 28) in [0, 1], white ink on black.

  ``temperature`` is a checkpoint's calibration (``mnist_flax.calibration``): the network's
  answer (an ensemble's log mean probability) is divided by it before the softmax, which
  changes how sure the answer is, never which class it is. A gated model's rows are scaled by
  its gate's probability that the image is a digit: they sum to that, not to 1 (the rest is
  "not a digit").
  """
  probs = jax.nn.softmax(net.apply(variables, images, train=False) / temperature)
  if isinstance(net, Gated):
    probs = probs * net.apply(variables, images, method="digit_probability")[:, None]
  return probs

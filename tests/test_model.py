"""The CNN's shapes and size, predict's output, and that train_step learns."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from conftest import ROOT
from mnist_flax import config as config_lib, model, train


def _config(name: str = "default"):
  return config_lib.load_config_file(ROOT / "configs" / f"{name}.py")


def _expected_param_count(features, kernel_size, dense, batch_norm) -> int:
  count, channels, side = 0, 1, 28
  for f in features:
    count += kernel_size * kernel_size * channels * f + (0 if batch_norm else f)
    count += 2 * f if batch_norm else 0  # scale and bias
    channels, side = f, side // 2
  count += side * side * channels * dense + dense
  return count + dense * 10 + 10


def test_output_shape_and_parameter_count():
  config = _config()
  net = model.build(config.model.to_dict())
  variables = net.init(jax.random.key(0), jnp.zeros((1, 28, 28)))
  logits = net.apply(variables, jnp.zeros((5, 28, 28)))
  assert logits.shape == (5, 10)
  m = config.model
  expected = _expected_param_count(m.features, m.kernel_size, m.dense, m.batch_norm)
  assert sum(x.size for x in jax.tree.leaves(variables["params"])) == expected


def test_predict_gives_probabilities_and_accepts_a_channel_axis():
  net = model.build(_config("test").model.to_dict())
  variables = net.init(jax.random.key(1), jnp.zeros((1, 28, 28)))
  images = jax.random.uniform(jax.random.key(2), (4, 28, 28))
  probs = model.predict(net, variables, images)
  assert probs.shape == (4, 10)
  np.testing.assert_allclose(np.asarray(probs).sum(-1), 1.0, rtol=1e-5)
  np.testing.assert_allclose(model.predict(net, variables, images[..., None]), probs, rtol=1e-6)


def test_train_step_lowers_the_loss_and_donates_the_state():
  config = _config("test")
  state = train.create_train_state(jax.random.key(0), config)
  rng = np.random.default_rng(0)
  # A learnable toy task: the label is which quadrant holds a bright square.
  labels = rng.integers(0, 4, 64)
  images = np.zeros((64, 28, 28), np.uint8)
  for i, label in enumerate(labels):
    r, c = divmod(int(label), 2)
    images[i, r * 14 + 3:r * 14 + 11, c * 14 + 3:c * 14 + 11] = 255
  batch = {"image": jnp.asarray(images), "label": jnp.asarray(labels, jnp.int32)}
  losses = []
  for step in range(30):
    old = state
    state, metrics = train.train_step(state, batch, jax.random.key(step))
    losses.append(float(metrics["loss"]))
  assert old.params["Dense_0"]["kernel"].is_deleted()  # Donated: no second copy kept.
  assert losses[-1] < 0.5 * losses[0], losses
  assert int(state.step) == 30


def test_create_train_state_is_pure():
  config = _config("test")
  a = train.create_train_state(jax.random.key(7), config)
  b = train.create_train_state(jax.random.key(7), config)
  for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
    np.testing.assert_array_equal(x, y)

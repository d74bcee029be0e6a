"""The CNN's shapes and size, predict's output, and that train_step learns."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from conftest import ROOT
from mnist_flax import config as config_lib, model, train


def _config(name: str = "default"):
  return config_lib.load_config_file(ROOT / "configs" / f"{name}.py")


def _expected_param_count(m) -> int:
  """Counted by hand from the architecture the config describes."""
  count, channels, side = 0, m.space_to_depth ** 2, 28 // m.space_to_depth
  for features, padding, window in zip(m.features, m.padding, m.pool_windows):
    count += m.kernel_size ** 2 * channels * features
    count += 2 * features if m.batch_norm else features  # BN scale and bias, or conv bias
    side = (side - (m.kernel_size - 1 if padding == "VALID" else 0)) // window
    channels = features
  flat = side * side * channels
  return count + flat * m.dense + m.dense + m.dense * 10 + 10


def test_output_shape_and_parameter_count():
  config = _config()
  net = model.build(config.model.to_dict())
  variables = net.init(jax.random.key(0), jnp.zeros((1, 28, 28)))
  logits = net.apply(variables, jnp.zeros((5, 28, 28)))
  assert logits.shape == (5, 10)
  assert sum(x.size for x in jax.tree.leaves(variables["params"])) == _expected_param_count(
      config.model)
  # The default: 43,488 conv and batch-norm parameters, 2x2x96 -> 256 -> 10 dense: 101,130.
  assert _expected_param_count(config.model) == 144618


def test_im2col_convolution_equals_lax_conv():
  conv = model.Conv(5, 3, "SAME")
  x = jax.random.normal(jax.random.key(0), (2, 7, 7, 3))
  variables = conv.init(jax.random.key(1), x)
  expected = jax.lax.conv_general_dilated(
      x, variables["params"]["kernel"], (1, 1), "SAME",
      dimension_numbers=("NHWC", "HWIO", "NHWC")) + variables["params"]["bias"]
  np.testing.assert_allclose(conv.apply(variables, x), expected, rtol=1e-5, atol=1e-5)
  # The formulation used without a gradient: same parameters, same function.
  direct = model.Conv(5, 3, "SAME", im2col=False)
  np.testing.assert_allclose(direct.apply(variables, x), expected, rtol=1e-5, atol=1e-5)


def test_space_to_depth_keeps_every_pixel():
  x = jnp.arange(2 * 28 * 28, dtype=jnp.float32).reshape(2, 28, 28, 1)
  y = model.space_to_depth(x, 2)
  assert y.shape == (2, 14, 14, 4)
  np.testing.assert_array_equal(np.sort(np.asarray(y).ravel()), np.asarray(x).ravel())
  np.testing.assert_array_equal(y[0, 3, 5], [x[0, 6, 10, 0], x[0, 6, 11, 0], x[0, 7, 10, 0],
                                             x[0, 7, 11, 0]])


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


def _ensemble_config(members: int):
  config = _config("test")
  config.model.members = members
  return config


def test_ensemble_answers_with_the_mean_probability_of_distinct_members():
  net = model.build(_ensemble_config(3).model.to_dict())
  variables = net.init(jax.random.key(0), jnp.zeros((1, 28, 28)))
  images = jax.random.uniform(jax.random.key(1), (5, 28, 28))
  kernels = [variables["params"][f"member_{i}"]["Dense_1"]["kernel"] for i in range(3)]
  assert not np.allclose(kernels[0], kernels[1]) and not np.allclose(kernels[1], kernels[2])
  members = net.apply(variables, images, method="member_logits")
  assert members.shape == (3, 5, 10)
  for i in range(3):  # Each member is a plain CNN with its own variables.
    own = {k: v[f"member_{i}"] for k, v in variables.items()}
    np.testing.assert_allclose(members[i], net.cnn.apply(own, images), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(model.predict(net, variables, images),
                             jax.nn.softmax(members).mean(axis=0), rtol=1e-5, atol=1e-7)


def test_ensemble_members_train_as_independent_models():
  """Member 0 of a 2-member ensemble follows the steps a lone CNN takes from its weights."""
  ensemble = train.create_train_state(jax.random.key(0), _ensemble_config(2))
  lone = train.create_train_state(jax.random.key(0), _config("test"))
  own = jax.tree.map(jnp.copy, {"params": ensemble.params["member_0"],  # train_step donates.
                                "batch_stats": ensemble.batch_stats["member_0"]})
  lone = lone.replace(params=own["params"], batch_stats=own["batch_stats"],
                      opt_state=lone.tx.init(own["params"]))
  rng = np.random.default_rng(0)
  for step in range(5):
    batch = {"image": jnp.asarray(rng.integers(0, 256, (32, 28, 28), np.uint8)),
             "label": jnp.asarray(rng.integers(0, 10, 32), jnp.int32)}
    ensemble, _ = train.train_step(ensemble, batch, jax.random.key(step))
    lone, _ = train.train_step(lone, batch, jax.random.key(step))
  for a, b in zip(jax.tree.leaves(ensemble.params["member_0"]), jax.tree.leaves(lone.params)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  assert not np.allclose(ensemble.params["member_1"]["Dense_1"]["kernel"],
                         lone.params["Dense_1"]["kernel"])

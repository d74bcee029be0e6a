"""Training beyond MNIST (mnist_flax/extra_data.py): rendered non-digits taught as "unsure" and
printed digits; off by default, the same images from the same seed, resumed exactly.
"""

from __future__ import annotations

import signal

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from mnist_flax import config as config_lib, errors, extra_data, extra_render, train
from test_train_resume import digest, finish, start, wait_for

EXTRA = ["--config.extra_data.nondigits=300", "--config.extra_data.printed=200"]


def _config(nondigits: int = 0, printed: int = 0):
  config = config_lib.load_config_file(config_lib.CONFIGS_DIR / "test.py")
  config.extra_data.nondigits, config.extra_data.printed = nondigits, printed
  return config


def test_off_by_default_so_runs_train_on_mnist_alone():
  config = config_lib.load_config_file(config_lib.CONFIGS_DIR / "default.py")
  images, labels = extra_data.for_config(config)
  assert images.shape == (0, 28, 28) and labels.shape == (0,)
  assert extra_data.compat(config) == {}


def test_the_same_seed_draws_the_same_images_and_another_seed_others():
  images, labels = extra_data.make(12, 10, 3)
  assert images.shape == (22, 28, 28) and images.dtype == np.uint8
  assert list(labels) == [extra_data.NOT_A_DIGIT] * 12 + list(range(10))
  assert all(image.max() == 255 for image in images)  # Normalised like a photo's digit.
  assert np.array_equal(extra_render.nondigit(5, 3), images[5])
  assert np.array_equal(extra_render.printed(7, 3), images[12 + 7])
  assert not np.array_equal(extra_render.nondigit(5, 4), images[5])
  assert extra_data.digest(images, labels) != extra_data.digest(*extra_data.make(12, 10, 4))


def test_a_non_digits_target_is_uniform_and_a_digits_unchanged():
  logits = jnp.array([[3.0, 0, 0, 0, 0, 0, 0, 0, 0, 0], [0.0] * 10, [3.0] + [0.0] * 9])
  labels = jnp.array([extra_data.NOT_A_DIGIT, extra_data.NOT_A_DIGIT, 0])
  loss = train._cross_entropy(logits, labels, 0.1)
  assert float(loss[1]) == pytest.approx(np.log(10), rel=1e-6)  # Least at equal logits.
  assert float(loss[0]) > float(loss[1])
  expected = optax.softmax_cross_entropy(
      logits[2], optax.smooth_labels(jnp.eye(10)[0], 0.1))
  assert float(loss[2]) == pytest.approx(float(expected), rel=1e-6)


@pytest.mark.parametrize("value", [-1, 200001])
def test_a_count_that_is_not_a_count_is_refused(value):
  config = _config()
  config.extra_data.printed = value
  with pytest.raises(errors.ConfigError, match="config.extra_data.printed"):
    config_lib.validate(config)


@pytest.fixture(scope="module")
def uninterrupted_with_extra(tmp_path_factory, mnist_dir) -> str:
  workdir = tmp_path_factory.mktemp("uninterrupted_extra")
  result = finish(workdir, mnist_dir, *EXTRA)
  assert result.returncode == 0, result.stderr
  return digest(workdir)


def test_resume_with_extra_data_is_exact_and_another_set_is_refused(uninterrupted_with_extra,
                                                                   tmp_path, mnist_dir):
  proc = start(tmp_path, mnist_dir, *EXTRA)
  wait_for(tmp_path / "checkpoints" / "20", proc)
  proc.send_signal(signal.SIGTERM)
  _, stderr = proc.communicate(timeout=120)
  assert proc.returncode == 143, stderr
  other = finish(tmp_path, mnist_dir, "--config.extra_data.nondigits=301",
                 "--config.extra_data.printed=200")
  assert other.returncode == errors.CheckpointError.exit_code, other.stderr
  assert "extra_data" in other.stderr
  assert "Traceback" not in other.stderr
  result = finish(tmp_path, mnist_dir, *EXTRA)
  assert result.returncode == 0, result.stderr
  assert "resuming from checkpoint at step" in result.stdout
  assert digest(tmp_path) == uninterrupted_with_extra

"""Default config: 5000 iterations of the project's CNN on MNIST, checkpoints every 1000 steps.

Run it with:

    python -m mnist_flax.main --config=configs/default.py

Override any field the absl way, for example
``--config.num_iterations=300 --config.data.dir=../shared/data/mnist``. Variants (``test.py``,
``speedrun.py``, ``shipped.py``) start from this one and change only what they must.
"""

import ml_collections
from ml_collections import config_dict


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.num_iterations = 5000
  config.checkpoint_every = 1000
  config.log_every = 100
  # Global batch: split over every device of every process, so it must divide by their count.
  config.batch_size = 128
  config.eval_batch_size = 1000
  # Selected on a validation split (the last 10k training images), never on test.
  config.label_smoothing = 0.1

  # Stored in every checkpoint; a resume with a different model or optimizer is refused.
  config.model = ml_collections.ConfigDict()
  # 28x28 -> space-to-depth 14x14x4 -> conv 3x3 (VALID) 12x12 -> pool 2 -> 6x6
  # -> conv 3x3 (SAME) 6x6 -> pool 3 -> 2x2x96 -> dense 256 -> 10. See mnist_flax/model.py.
  # Widths 48/96 scored best of 32/64, 48/96 and batch 256 on a validation split.
  config.model.space_to_depth = 2
  config.model.features = (48, 96)
  config.model.kernel_size = 3
  config.model.padding = ("VALID", "SAME")
  config.model.pool_windows = (2, 3)
  config.model.dense = 256
  config.model.pool = "max"
  config.model.batch_norm = True
  config.model.dropout = 0.0
  # More than 1: an ensemble of that many CNNs, trained side by side from different inits; its
  # answer is their mean probability (see configs/shipped.py).
  config.model.members = 1

  config.optimizer = ml_collections.ConfigDict()
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 5e-3
  config.optimizer.b1 = 0.9
  config.optimizer.b2 = 0.999
  config.optimizer.weight_decay = 0.0
  # "onecycle": warm-up from lr/25 over warmup_fraction of the run, then cosine decay to ~0.
  config.optimizer.schedule = "onecycle"
  config.optimizer.warmup_fraction = 0.2

  # On-device augmentation: random shifts of up to `translate` pixels; with `rotate` (degrees)
  # or `scale` (zoom fraction) set, a random affine map per image instead.
  config.augment = ml_collections.ConfigDict()
  config.augment.translate = 2
  config.augment.rotate = 0.0
  config.augment.scale = 0.0

  config.data = ml_collections.ConfigDict()
  # A folder with the four MNIST IDX files; unset: $MNIST_DATA_DIR, then tensorflow-datasets.
  config.data.dir = config_dict.placeholder(str)
  # Hold out the last N training images (e.g. 10000): never trained on, they fit the promoted
  # model's temperature (honest probabilities, see mnist_flax/calibration.py) and are the
  # split recipes are chosen on. 0: train on all 60k.
  config.data.validation = 0

  # Rendered images trained on besides MNIST (mnist_flax/extra_data.py): that many non-digits
  # (letters, symbols, marks; taught as "unsure", a uniform target) and printed digits. 0: none.
  config.extra_data = ml_collections.ConfigDict()
  config.extra_data.nondigits = 0
  config.extra_data.printed = 0

  # The temperature for a run that holds out no validation split: one measured on a held-out
  # replica of the same recipe (see configs/shipped.py). Unset: such a run is not calibrated.
  config.calibration = ml_collections.ConfigDict()
  config.calibration.temperature = config_dict.placeholder(float)
  return config

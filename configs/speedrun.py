"""Speed config: the whole process to >= 99.0% test accuracy as fast as a CPU allows.

    python -m mnist_flax.main --config=configs/speedrun.py --workdir=$(mktemp -d)

One pass over the training set with batch 128 (468 steps), Adam with a large one-cycle step
(as the PyTorch peer in ../shared/bench uses), evaluation and a checkpoint only at the end.
Both convolutions VALID with 2x2 pools: 14x14x4 -> 12 -> 6 -> 4 -> 2x2x64. Label smoothing 0.1
(from the default) was worth +0.2 points on a validation split of the last 10k training images.
"""

import ml_collections

from mnist_flax.config import sibling_config

default = sibling_config(__file__, "default")


def get_config() -> ml_collections.ConfigDict:
  config = default.get_config()
  config.batch_size = 128
  config.num_iterations = 468  # One epoch: 60000 // 128.
  config.checkpoint_every = 468
  config.log_every = 117
  config.eval_batch_size = 2000
  config.model.features = (32, 64)
  config.model.padding = ("VALID", "VALID")
  config.model.pool_windows = (2, 2)
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 1e-2
  config.optimizer.b1 = 0.7
  config.optimizer.b2 = 0.9
  config.optimizer.weight_decay = 0.0
  config.optimizer.warmup_fraction = 0.3
  config.augment.translate = 0  # One epoch is too short for augmentation to pay off.
  return config

"""Tiny, fast variant of the default config for tests and smoke runs (seconds on a CPU).

    python -m mnist_flax.main --config=configs/test.py --workdir=$(mktemp -d)
"""

import ml_collections

from mnist_flax.config import sibling_config

default = sibling_config(__file__, "default")


def get_config() -> ml_collections.ConfigDict:
  config = default.get_config()
  config.num_iterations = 60
  config.checkpoint_every = 20
  config.log_every = 20
  config.batch_size = 64
  config.model.features = (8, 16)
  config.model.dense = 32
  config.optimizer.learning_rate = 1e-2
  return config

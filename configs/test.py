"""Tiny, fast variant of the default config for tests and smoke runs (under a minute on a CPU).

    python -m mnist_flax.main --config=configs/test.py --workdir=$(mktemp -d)

A narrow CNN, 300 steps of batch 128 (about 0.6 epoch): about 97-98% test accuracy.
"""

import ml_collections

from mnist_flax.config import sibling_config

default = sibling_config(__file__, "default")


def get_config() -> ml_collections.ConfigDict:
  config = default.get_config()
  config.num_iterations = 300
  config.checkpoint_every = 100
  config.log_every = 50
  config.batch_size = 128
  config.model.features = (16, 32)
  config.model.dense = 64
  config.optimizer.learning_rate = 1e-2
  return config

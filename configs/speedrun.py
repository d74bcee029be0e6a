"""Speed config: the whole process to >= 99.0% test accuracy as fast as a CPU allows.

    python -m mnist_flax.main --config=configs/speedrun.py --workdir=$(mktemp -d)

One pass over the training set, evaluation and a checkpoint only at the end.
"""

import ml_collections

from mnist_flax.config import sibling_config

default = sibling_config(__file__, "default")


def get_config() -> ml_collections.ConfigDict:
  config = default.get_config()
  config.batch_size = 256
  config.num_iterations = 234  # One epoch: 60000 // 256.
  config.checkpoint_every = 234
  config.log_every = 50
  config.eval_batch_size = 2000
  config.model.features = (24, 32)
  config.model.dense = 256
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 1e-2
  config.optimizer.b1 = 0.7
  config.optimizer.b2 = 0.9
  config.optimizer.weight_decay = 0.0
  return config

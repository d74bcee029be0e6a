"""The model that ships in checkpoints/final: wider, longer, with shifts for augmentation.

    python -m mnist_flax.main --config=configs/shipped.py --workdir=runs/shipped
    cp -r runs/shipped/checkpoints/final checkpoints/final

Same architecture family as the default (space-to-depth, two im2col conv blocks, batch norm),
twice as wide, trained three times as long on the full training split with random shifts of up
to 2 pixels. About 0.8 MB of parameters.
"""

import ml_collections

from mnist_flax.config import sibling_config

default = sibling_config(__file__, "default")


def get_config() -> ml_collections.ConfigDict:
  config = default.get_config()
  config.num_iterations = 15000
  config.checkpoint_every = 3000
  config.log_every = 500
  config.model.features = (64, 128)
  config.optimizer.learning_rate = 5e-3
  config.optimizer.warmup_fraction = 0.2
  config.augment.translate = 2
  return config

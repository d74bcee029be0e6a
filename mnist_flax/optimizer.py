"""The optimizer and learning-rate schedule a config asks for (``config.optimizer``).

    from mnist_flax import optimizer
    tx = optimizer.make_optimizer(config.optimizer, config.num_iterations)
    lr = optimizer.make_schedule(config.optimizer, config.num_iterations)(step)

``train`` builds its ``TrainState`` with the first and logs the learning rate with the second.
"""

from __future__ import annotations

import ml_collections
import optax


def make_schedule(opt: ml_collections.ConfigDict, num_iterations: int) -> optax.Schedule:
  if opt.schedule == "constant":
    return optax.constant_schedule(opt.learning_rate)
  warmup = int(opt.warmup_fraction * num_iterations)
  if opt.schedule == "cosine":
    return optax.warmup_cosine_decay_schedule(
        0.0, opt.learning_rate, max(warmup, 1), num_iterations, end_value=0.0)
  # One-cycle: linear warm-up from lr/25, then cosine annealing to ~0 (as in PyTorch's OneCycleLR).
  return optax.cosine_onecycle_schedule(
      num_iterations, opt.learning_rate, pct_start=max(opt.warmup_fraction, 1e-3),
      div_factor=25.0, final_div_factor=1e4)


def make_optimizer(opt: ml_collections.ConfigDict,
                   num_iterations: int) -> optax.GradientTransformation:
  lr = make_schedule(opt, num_iterations)
  if opt.name == "adam":
    return optax.adam(lr, b1=opt.b1, b2=opt.b2)
  if opt.name == "adamw":
    return optax.adamw(lr, b1=opt.b1, b2=opt.b2, weight_decay=opt.weight_decay)
  if opt.name == "lion":
    return optax.lion(lr, b1=opt.b1, b2=opt.b2, weight_decay=opt.weight_decay)
  return optax.chain(optax.add_decayed_weights(opt.weight_decay),
                     optax.sgd(lr, momentum=opt.b1, nesterov=True))

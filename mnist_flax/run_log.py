"""What a training run shows and records while it runs.

    log = run_log.RunLog(workdir, total_steps=config.num_iterations, config=config_dict)
    log.start(first_step)                       # after restoring, before the first step
    log.step(step)                              # after every step: cheap
    log.train(step, {"loss": ..., "accuracy": ..., "learning_rate": ..., "images_per_second": ...})
    log.evaluation(step, {"test_loss": ..., "test_accuracy": ...})
    log.note("checkpoint saved at step 1000")   # events worth a line
    log.close()

Only process 0 shows or writes anything; the other processes get a silent log.
"""

from __future__ import annotations

import pathlib
import sys
from typing import Any, Mapping


class RunLog:
  """Plain lines on stdout at the log interval."""

  def __init__(self, workdir: pathlib.Path, *, total_steps: int,
               config: Mapping[str, Any] | None = None, enabled: bool = True) -> None:
    self.workdir = workdir
    self.total_steps = total_steps
    self.config = dict(config or {})
    self.enabled = enabled

  def _print(self, text: str) -> None:
    if self.enabled:
      print(text, file=sys.stdout, flush=True)

  def start(self, first_step: int) -> None:
    del first_step

  def step(self, step: int) -> None:
    del step

  def train(self, step: int, metrics: Mapping[str, float]) -> None:
    self._print(f"step {step}/{self.total_steps}  loss {metrics['loss']:.4f}  "
                f"train_accuracy {metrics['accuracy']:.4f}  lr {metrics['learning_rate']:.2e}  "
                f"{metrics['images_per_second']:,.0f} images/s")

  def evaluation(self, step: int, metrics: Mapping[str, float]) -> None:
    self._print(f"step {step}: test_accuracy {metrics['test_accuracy']:.4f}  "
                f"test_loss {metrics['test_loss']:.4f}")

  def note(self, text: str) -> None:
    self._print(text)

  def close(self) -> None:
    pass

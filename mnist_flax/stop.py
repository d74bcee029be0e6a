"""Stopping a training run cleanly on SIGINT/SIGTERM: finish the step, save, exit.

    with stop.StopRequest() as request:
      while training:
        ...one step...
        if request.requested(sync_point=at_log_or_checkpoint):
          ...save a checkpoint, raise errors.Interrupted...

The first Ctrl-C or SIGTERM (a preempted VM, a SLURM time limit) only sets a flag the loop
checks after the step; a second Ctrl-C exits at once without saving. Outside the main thread
(tests calling ``train_and_evaluate`` from a worker) no handler is installed.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any

import jax
import numpy as np


class StopRequest:
  """First SIGINT/SIGTERM: finish the step, save, exit. A second SIGINT: exit at once."""

  def __init__(self) -> None:
    self.signum: int | None = None
    self._previous: dict[int, Any] = {}

  def _handle(self, signum: int, frame: Any) -> None:
    del frame
    if self.signum is not None and signum == signal.SIGINT:
      print("\nsecond interrupt: exiting now without saving", file=sys.stderr, flush=True)
      os._exit(128 + signum)
    self.signum = signum
    print(f"\n{signal.Signals(signum).name} received: finishing this step and saving a "
          "checkpoint (press Ctrl-C again to exit at once)", file=sys.stderr, flush=True)

  def __enter__(self) -> "StopRequest":
    if threading.current_thread() is threading.main_thread():
      for s in (signal.SIGINT, signal.SIGTERM):
        self._previous[s] = signal.signal(s, self._handle)
    return self

  def __exit__(self, *exc: Any) -> None:
    for s, handler in self._previous.items():
      signal.signal(s, handler)

  def requested(self, sync_point: bool) -> bool:
    """Whether any process was asked to stop.

    Single-process: checked after every step. Multi-process: only at ``sync_point`` steps (the
    log and checkpoint steps), where all processes agree through one small all-gather, since
    a signal may reach only some of them and all must save the same step together.
    """
    if jax.process_count() == 1:
      return self.signum is not None
    if not sync_point:
      return False
    from jax.experimental import multihost_utils
    flags = multihost_utils.process_allgather(np.int32(self.signum or 0))
    if self.signum is None and np.any(flags):
      self.signum = int(np.max(flags))
    return self.signum is not None

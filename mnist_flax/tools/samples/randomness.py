"""The random draws the photo samples share: a choice, a log-uniform size, smooth noise.

All randomness comes from the generator passed in, so a seeded generator repeats a picture.

    import numpy as np
    from mnist_flax.tools.samples.randomness import log_uniform, pick, smooth
    rng = np.random.default_rng(0)
    pick(rng, ("pen", "pencil"), [0.7, 0.3]); log_uniform(rng, 6, 90); smooth(rng, (60, 80), 4)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import cv2
import numpy as np
from numpy.typing import ArrayLike

T = TypeVar("T")


def pick(rng: np.random.Generator, options: Sequence[T], p: ArrayLike | None = None) -> T:
  """One of ``options``, with probabilities ``p`` (uniform if None)."""
  return options[int(rng.choice(len(options), p=p))]


def log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
  """A size between ``lo`` and ``hi`` (at least ``lo``), as likely small as large in ratio."""
  return float(np.exp(rng.uniform(np.log(lo), np.log(max(lo, hi)))))


def smooth(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
  """Smooth noise in [0, 1] with about ``cells`` blobs across the longer side."""
  h, w = shape
  ch, cw = max(2, int(cells * h / max(h, w)) + 2), max(2, int(cells * w / max(h, w)) + 2)
  return cv2.resize(rng.random((ch, cw), np.float32), (w, h), interpolation=cv2.INTER_CUBIC)

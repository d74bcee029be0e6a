"""Training images beyond MNIST: rendered non-digits (taught as "unsure") and printed digits.

    from mnist_flax import extra_data
    images, labels = extra_data.make(nondigits=8000, printed=6000, seed=0)
    images.shape, images.dtype     # (14000, 28, 28) uint8, as MNIST's
    labels                         # 0-9 for printed digits, NOT_A_DIGIT (10) for the others

MNIST holds only handwritten digits, so a model trained on it alone answers a letter "A" with
"4" at 0.999, and reads a printed "1" with a flag as a 7 (issue 13). A run whose config sets
``config.extra_data`` trains on these too (``configs/shipped.py``: the printed digits only; see
"Measured"):

* non-digits: letters and symbols that cannot be read as a digit (no O, I, l, S, Z, B, G, T,
  q, ... : ``extra_render.LETTERS``), printed in every font at hand or drawn as pen strokes
  (OpenCV's stroke fonts), and marks drawn here (scribbles, loops, spirals, zigzags, hatching,
  stars, faces whole or cut apart, a mouth alone). Their target is the uniform distribution over
  the ten digits (``train``'s loss, for label ``NOT_A_DIGIT``): outlier exposure, so the model
  keeps its ten outputs and says "unsure" on them;
* printed digits, labelled: 0-9 in the same fonts, regular and bold, with the variants print
  has (a "1" with a flag and a foot, a "7" with a bar, an open "4").

Measured (dev photos drawn by ``tools.samples --seed 4242``, 200 per kind; never the benchmark's
seeds): configs/shipped.py with ``--config.extra_data.nondigits=14000
--config.extra_data.printed=6000`` (chosen on validation with one CNN, 3000 steps: 99.46% against
99.36% on MNIST alone; 24k + 8k: 99.37%) says "unsure" of 49.5% of non-digits (the shipped model:
5.0%) and reads 92.5% of printed digits (89.0%), photos 81.0% (80.5%), numbers 60% (58%), but
scored 99.64% on the test split (the bar is 99.65%) and 998/1000 plain drawings (999): not
shipped. What is left: handwritten "A"s read as 4, and faces that the preprocessing cuts into
pieces each read as a digit.

A second try (2026-12-02) gave each CNN the shipped recipe's MNIST exposure back: 20k extra
images make a quarter of every batch, so 13,400 steps instead of 10,000. Its held-out replica
(``--config.data.validation=10000``) scored 99.57% on those 10k (the shipped recipe's replica:
99.56%) and fitted T = 0.4703; the full run then said "unsure" of 60 of 100 non-digits (seed 14;
the shipped model: 2), read 196/200 printed digits (188) and 99/150 numbers (seed 7; 94), but
scored 99.62% on the test split (38 wrong; ECE 0.0014): not shipped either. Two full runs of
this kind at 99.64% and 99.62% around a bar the shipped model meets at 99.65% is noise of a few
images, and training again until one passes would choose on the test split. What ships instead
is a gate beside the reader (``mnist_flax.gate``), trained on these images against MNIST:
"unsure" of 83 of those 100 non-digits, the reader's answers untouched.

A third try (2026-12-02, later) left the non-digits to the gate and taught the shipped recipe
the 6,000 printed digits alone, 11,000 steps. The full run was trained alongside its held-out
replica, under a rule set beforehand: ship it if the replica beats the MNIST-only recipe's
99.56% on the last 10k and the full run meets the 99.65% bar. The replica scored 99.69%, the
full run 99.65% on the test split (35 wrong, as the MNIST-only model). It ships: printed
digits the generator drew (seeds 21 and 5153) 281 -> 295 of 300, numbers (seeds 7, 11, 9001,
31337) 546 -> 567 of 800, photos of one digit (seeds 13, 5152, 9001, 31337) 766 -> 774 of 900;
most of the gain is a printed "1" no longer read as 7 ("2019" was "2079", "1000" "7000").

Fonts: Pillow's own scalable font (``ImageFont.load_default(size)``, always there) and the
DejaVu and Liberation families where the system has them. Every image gets its own random
slant, shear, aspect, rotation, pen and blur, then goes through ``preprocess.normalise.to_field``
as a glyph found on a photo does, so it looks like what the model sees at inference
(``mnist_flax.extra_render`` draws them). Each image comes from its own random stream of
``(seed, kind, index)``: the same arguments and fonts give the same bytes, and ``digest`` names
them (a resumed run checks it). Rendering costs about 2 ms of CPU per image (40 s for 20,000),
once per process: ``make`` keeps its last answers.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any

import ml_collections
import numpy as np

from mnist_flax.constants import IMAGE_SIZE, NUM_CLASSES

NOT_A_DIGIT = NUM_CLASSES  # The label of a non-digit: its target is uniform over the digits.


@functools.lru_cache(maxsize=2)
def make(nondigits: int, printed: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """``nondigits`` non-digits then ``printed`` printed digits (0-9 in turn): uint8 images
  (n, 28, 28) and uint8 labels (NOT_A_DIGIT, or the digit). Read-only: the cache shares them."""
  images = np.zeros((nondigits + printed, IMAGE_SIZE, IMAGE_SIZE), np.uint8)
  if len(images):
    from mnist_flax import extra_render  # Lazy: cv2, Pillow and fonts, only when asked for.
    images = np.stack([extra_render.nondigit(i, seed) for i in range(nondigits)]
                      + [extra_render.printed(i, seed) for i in range(printed)])
  labels = np.array([NOT_A_DIGIT] * nondigits + [i % 10 for i in range(printed)], np.uint8)
  images.flags.writeable = labels.flags.writeable = False
  return images, labels


@functools.lru_cache(maxsize=1)
def lookalikes(count: int, seed: int) -> np.ndarray:
  """``count`` letters that MNIST's readers take for digits (``extra_render.lookalike``: an "A"
  is read as 4), uint8 (count, 28, 28), for the gate (``mnist_flax.gate``) to learn apart."""
  from mnist_flax import extra_render
  images = np.stack([extra_render.lookalike(i, seed) for i in range(count)]) if count else (
      np.zeros((0, IMAGE_SIZE, IMAGE_SIZE), np.uint8))
  images.flags.writeable = False
  return images


def digest(images: np.ndarray, labels: np.ndarray) -> str:
  """The sha256 of the images and labels: the same only for the same set."""
  return hashlib.sha256(images.tobytes() + labels.tobytes()).hexdigest()


def for_config(config: ml_collections.ConfigDict) -> tuple[np.ndarray, np.ndarray]:
  """The extra images and labels ``config.extra_data`` asks for (none by default)."""
  return make(config.extra_data.nondigits, config.extra_data.printed, config.seed)


def compat(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """What a resumed run must share with its checkpoint: the set's digest (other fonts would
  render other images), or nothing for a run without extra images (as runs before them)."""
  images, labels = for_config(config)
  return {"extra_data": digest(images, labels)} if len(labels) else {}

"""Training-time augmentation of uint8 digit images: random shifts, rotations and zooms.

    from mnist_flax import augment
    images = augment.augment(batch["image"], rng, translate=2, rotate=10.0, scale=0.1)

Pure and jittable: ``train.train_step`` calls it inside its jitted update, with a key derived
from the step, so a resumed run draws the same augmentation as an uninterrupted one.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def augment(images: jax.Array, rng: jax.Array, translate: int, rotate: float = 0.0,
            scale: float = 0.0) -> jax.Array:
  """Random shifts of up to ``translate`` pixels, and optionally small rotations and zooms.

  With ``rotate`` (degrees) and ``scale`` (fraction) at 0, shifts are whole pixels, zero-filled
  (the background), and exact. Otherwise each image gets a random affine map (rotation in
  [-rotate, rotate] degrees, zoom in [1 - scale, 1 + scale], shift in [-translate, translate]
  pixels) about its centre, sampled bilinearly: what handwriting varies by.
  """
  if not (translate or rotate or scale):
    return images
  b, h, w = images.shape
  if not (rotate or scale):
    padded = jnp.pad(images, ((0, 0), (translate, translate), (translate, translate)))
    offsets = jax.random.randint(rng, (b, 2), 0, 2 * translate + 1)
    crop = lambda image, offset: jax.lax.dynamic_slice(image, (offset[0], offset[1]), (h, w))
    return jax.vmap(crop)(padded, offsets)
  k_angle, k_zoom, k_shift = jax.random.split(rng, 3)
  angle = jnp.deg2rad(jax.random.uniform(k_angle, (b,), minval=-rotate, maxval=rotate))
  zoom = jax.random.uniform(k_zoom, (b,), minval=1.0 - scale, maxval=1.0 + scale)
  shift = jax.random.uniform(k_shift, (b, 2), minval=-translate, maxval=translate)
  rows, cols = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32),
                            indexing="ij")
  cy, cx = (h - 1) / 2, (w - 1) / 2

  def warp(image: jax.Array, angle: jax.Array, zoom: jax.Array, shift: jax.Array) -> jax.Array:
    # Output pixel -> source pixel: the inverse of rotate-zoom-shift about the centre.
    y, x = rows - cy - shift[0], cols - cx - shift[1]
    cos, sin = jnp.cos(angle) / zoom, jnp.sin(angle) / zoom
    src_y, src_x = cos * y - sin * x + cy, sin * y + cos * x + cx
    out = jax.scipy.ndimage.map_coordinates(image.astype(jnp.float32), [src_y, src_x],
                                            order=1, mode="constant", cval=0.0)
    return jnp.clip(jnp.round(out), 0, 255).astype(images.dtype)

  return jax.vmap(warp)(images, angle, zoom, shift)

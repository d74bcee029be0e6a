"""Inference's one home: which checkpoint, its model loaded, ``predict`` compiled, images batched.

    from mnist_flax import predictor
    path = predictor.resolve_checkpoint(args.checkpoint)   # None: checkpoints/final
    model_config, variables, metadata = predictor.load_final(path)
    predict, metadata = predictor.load_predict(path, batch_size=256)   # (256, 28, 28) -> (256, 10)
    probs = predictor.in_batches(predict, images, 256)    # any number of images, one compilation

``infer``, ``evaluate``, ``calibrate`` and ``serve`` all find, load and run a promoted
checkpoint through here, so they accept the same ``--checkpoint`` values and refuse the same
ones in the same words (exit 3, ``CheckpointError``): a promoted ``final``, a training workdir
or its ``checkpoints/`` folder (meaning that run's ``final``); a step checkpoint is named as
such, with the path to use instead.

``load_final`` checks every file of the checkpoint against its checksum manifest on every call
and serves the variables from ``mnist_flax.cache`` when it holds them (Orbax is imported only
to fill it). ``load_predict`` is ``model.predict`` at the checkpoint's calibration temperature,
exported with ``jax.export`` into the same cache, so a later process needs neither Flax nor the
model code; its output is checked finite (non-finite probabilities are a CheckpointError,
never an answer). Importing this module costs nothing beyond the standard library (JAX,
Orbax and Flax are imported by the calls that need them), so commands import it at start.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
from typing import Any, Callable, Iterator, Sequence

from mnist_flax import cache, errors, integrity
from mnist_flax.constants import IMAGE_SIZE, PROJECT_ROOT
from mnist_flax.workdir import CHECKPOINTS

DEFAULT_CHECKPOINT = pathlib.Path(CHECKPOINTS) / integrity.FINAL
# Orbax writes this into every checkpoint folder it commits, a step's as a final's.
_ORBAX_MARK = "_CHECKPOINT_METADATA"
# What a step checkpoint holds beside its run metadata, and a final does not (see checkpoint).
_STEP_STATE = "state"


def resolve_checkpoint(value: str | None) -> pathlib.Path:
  """The promoted checkpoint a ``--checkpoint`` value names.

  None is ``checkpoints/final`` in the working directory, else the shipped one. A training
  workdir, or its ``checkpoints/`` folder, means that run's ``final``. A step checkpoint
  (``checkpoints/5000``: a whole train state, which inference cannot use) is a CheckpointError
  naming the ``final`` to use. Anything else is returned as given, for ``load_final`` to check.
  """
  if value is None:
    if DEFAULT_CHECKPOINT.exists():
      return DEFAULT_CHECKPOINT
    return PROJECT_ROOT / DEFAULT_CHECKPOINT  # The shipped model, from any working directory.
  path = pathlib.Path(value)
  if not path.is_dir() or _is_checkpoint(path):
    if (path / _STEP_STATE).is_dir():
      raise _step_checkpoint(path)
    return path
  if (path / CHECKPOINTS).is_dir():
    return path / CHECKPOINTS / integrity.FINAL
  if path.name == CHECKPOINTS or any(
      os.path.lexists(path / name) for name in (integrity.FINAL, integrity.NEW, integrity.OLD)):
    return path / integrity.FINAL
  return path


def _is_checkpoint(folder: pathlib.Path) -> bool:
  return os.path.lexists(folder / integrity.MANIFEST) or os.path.lexists(folder / _ORBAX_MARK)


def _step_checkpoint(path: pathlib.Path) -> errors.CheckpointError:
  """The one-line refusal of a step checkpoint, saying which path to use instead."""
  step = path.name.split(".")[0]
  what = f"{errors.shown_path(path)} is a training step checkpoint" + (
      f" (step {step})" if step.isdigit() else "") + ", not a promoted model"
  final = path.parent / integrity.FINAL
  if integrity.readable_final(final).is_dir():
    return errors.CheckpointError(f"{what}: use --checkpoint {errors.shown_path(final)}")
  return errors.CheckpointError(
      f"{what}, and its run has promoted none yet ({errors.shown_path(final)} is missing): run "
      "its training command again to finish it (it resumes from its latest step)")


def load_final(path: str | os.PathLike) -> tuple[dict[str, Any], Any, dict[str, Any]]:
  """``(model_config, variables, metadata)`` of a promoted checkpoint, every file checked.

  Raises ``CheckpointError`` (exit 3) for a missing, partial, damaged or foreign checkpoint,
  never returning unusable weights. Served from the cache when it holds this exact content
  (variables as NumPy arrays), else restored by Orbax onto the default device and cached.
  """
  return _load_final(pathlib.Path(path).absolute())[:3]


def _load_final(path: pathlib.Path) -> tuple[dict[str, Any], Any, dict[str, Any], str]:
  """``load_final`` and the digest of the checkpoint's manifest (its cache key)."""
  if cache.cache_dir() is not None:
    _, digest = integrity.checked_final(path)  # Exit 3 here for a damaged one, cached or not.
    cached = cache.read_final(digest)
    if cached is not None:
      return (*cached, digest)
  from mnist_flax import checkpoint  # Orbax: only when the cache cannot serve it.
  model_config, variables, metadata, digest = checkpoint.load_verified(path)
  cache.store_final(digest, model_config, variables, metadata)  # What Orbax read.
  return model_config, variables, metadata, digest


def load_predict(path: str | os.PathLike, batch_size: int
                 ) -> tuple[Callable[[Any], Any], dict[str, Any]]:
  """``(predict, metadata)``: predict maps images (batch_size, 28, 28) in [0, 1] to
  probabilities (batch_size, 10), at the checkpoint's calibration temperature.

  The first call for a checkpoint, batch size and temperature exports ``model.predict``
  (``jax.export``: serialized StableHLO, the variables as arguments, the temperature baked in)
  into the cache; later processes load that, and with JAX's persistent compilation cache
  (turned on here) the executable too. It is compiled before this returns, so the first call
  is as fast as the others. (Storing XLA executables ourselves with
  ``jax.experimental.serialize_executable`` was tried and dropped: on XLA:CPU the loaded
  executables failed when called, "Function ... not found".)
  """
  predicts, metadata, _ = load_predicts(path, (batch_size,))
  return predicts[batch_size], metadata


def load_predicts(path: str | os.PathLike, batch_sizes: Sequence[int]
                  ) -> tuple[dict[int, Callable[[Any], Any]], dict[str, Any], Any]:
  """``load_predict`` for several batch sizes at once (the server's): the checkpoint checked,
  read and put on the device once for all of them. Also returns the variables, on the host."""
  cache.enable_compilation_cache()
  import jax
  path = pathlib.Path(path).absolute()
  model_config, variables, metadata, digest = _load_final(path)  # Checked once for all.
  from mnist_flax import calibration
  temperature = calibration.temperature_of(metadata)
  on_device = jax.device_put(variables)
  predicts = {size: _compiled(path, model_config, variables, on_device, digest, temperature, size)
              for size in batch_sizes}
  return predicts, metadata, variables


def _compiled(path: pathlib.Path, model_config: dict[str, Any], variables: Any, on_device: Any,
              digest: str, temperature: float, batch_size: int) -> Callable[[Any], Any]:
  """The exported, compiled ``predict`` for one batch size (see ``load_predict``)."""
  import jax
  import numpy as np
  from jax import export
  exported, serialized = None, cache.read_export(digest, temperature, batch_size) or b""
  if serialized:
    try:
      exported = export.deserialize(bytearray(serialized))
    except Exception:  # Whole but unusable (written by another jax): redone below.
      exported = None
  if exported is None:
    from mnist_flax import model  # Flax: only when the export is not cached.
    net = model.build(model_config)
    images = jax.ShapeDtypeStruct((batch_size, IMAGE_SIZE, IMAGE_SIZE), np.float32)
    exported = export.export(jax.jit(lambda v, x: model.predict(net, v, x, temperature)))(
        jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), variables), images)
    serialized = bytes(exported.serialize())
    cache.store_export(digest, temperature, batch_size, serialized)
  args, kwargs = exported.in_tree.unflatten(
      [jax.ShapeDtypeStruct(a.shape, a.dtype) for a in exported.in_avals])
  with _no_lapack_setup(b"lapack" not in serialized):
    # Compiled now (from the persistent cache when it has it), not at the first call.
    compiled = jax.jit(exported.call).lower(*args, **kwargs).compile()

  def predict(x: Any) -> Any:
    probabilities = compiled(on_device, np.asarray(x, np.float32))
    if not np.isfinite(np.asarray(probabilities)).all():
      raise errors.CheckpointError(f"{errors.shown_path(path)} gives non-finite "
                                   "probabilities; its weights are unusable")
    return probabilities

  return predict


@contextlib.contextmanager
def _no_lapack_setup(safe: bool) -> Iterator[None]:
  """Lets an exported call lower without setting up LAPACK first, when ``safe``.

  jax.export lowers every call of an exported function for the CPU by first initialising
  LAPACK, which imports SciPy's BLAS bindings: 0.25 s, a quarter of a cold inference command,
  even for a module that never calls LAPACK, as ``predict`` never does. ``safe`` says the
  serialized module names no LAPACK routine. The hook is JAX-internal: where it is missing
  (another JAX version), lowering goes the usual way, only slower; a test watches for that.
  """
  try:
    from jax._src.export import _export
    hook = _export._ensure_backends_initialized
  except (ImportError, AttributeError):
    safe = False
  if not safe:
    yield
    return
  _export._ensure_backends_initialized = lambda platforms: None
  try:
    yield
  finally:
    _export._ensure_backends_initialized = hook


def in_batches(fn: Callable[[Any], Any], images: Any, batch_size: int, axis: int = 0) -> Any:
  """``fn`` (a compiled call on float images (batch_size, 28, 28) in [0, 1]) over any number
  of images, in batches of that one size (so it is compiled once), the last one padded with
  zeros; the results joined along ``axis`` (the images' axis of ``fn``'s output). uint8 images
  (MNIST's 0-255 pixels) are scaled to [0, 1] batch by batch; float ones are taken as given.
  """
  import numpy as np
  scale = np.float32(255) if images.dtype == np.uint8 else None
  out = []
  for start in range(0, len(images), batch_size):
    chunk = images[start:start + batch_size]
    padded = np.zeros((batch_size, *images.shape[1:]), np.float32)
    padded[:len(chunk)] = chunk if scale is None else chunk / scale
    out.append(np.take(np.asarray(fn(padded)), np.arange(len(chunk)), axis=axis))
  return np.concatenate(out, axis=axis)

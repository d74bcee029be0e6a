"""Local caches that make repeated commands start fast; safe to delete at any time.

    from mnist_flax import cache
    cache.enable_compilation_cache()                  # before the first jit compile
    model_config, variables, metadata = cache.load_final("checkpoints/final")

Two caches live under ``$MNIST_FLAX_CACHE_DIR`` (default ``$XDG_CACHE_HOME/mnist_flax`` or
``~/.cache/mnist_flax``; set it to ``off`` to disable both):

* ``xla/``: JAX's persistent compilation cache, so a command run twice skips XLA compilation
  (training steps, evaluation, ``predict``).
* ``final/``: the variables of a promoted checkpoint as one ``.npz``, written after Orbax has
  restored and checked them, keyed by the checkpoint's content: every call checks each of its
  files against the checkpoint's checksum manifest (``mnist_flax.integrity``, a few ms for the
  shipped 2.7 MB) and the key is the manifest's hash. Any change to the checkpoint, even bytes
  rewritten in place at the same size with the old modification time, either fails that check
  (exit 3, cached or not) or is a new promotion with a new key. This spares the inference
  command importing Orbax and restoring through it on every call, which is most of its
  start-up time. Beside it, under the same key, ``predict`` for that checkpoint exported with
  ``jax.export`` (one file per batch size, and keyed by the source of ``mnist_flax/model.py``
  too, as the export holds the model's code), so the inference command does not import Flax.
  The export bakes in the checkpoint's calibration temperature, and its file name carries it
  too: a recalibrated checkpoint never answers through an export made for another temperature.

Every entry carries the SHA-256 of its own content and is checked before use; one that is
truncated, flipped, of another format or holding non-finite weights is deleted and rebuilt
from the checkpoint, silently. Probabilities that come out non-finite are refused (exit 3),
never printed.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import pathlib
from typing import Any, Iterator

from mnist_flax.constants import IMAGE_SIZE

ENV_VAR = "MNIST_FLAX_CACHE_DIR"
_FORMAT = 2
_TRAILER = b"mnist_flax-sha256:"  # Ends every exported entry, followed by the hash of the rest.


def cache_dir() -> pathlib.Path | None:
  """The cache root, or None when caching is disabled."""
  value = os.environ.get(ENV_VAR)
  if value is not None:
    return None if value.strip().lower() in ("", "off", "0", "none") else pathlib.Path(value)
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return pathlib.Path(base) / "mnist_flax"


def enable_compilation_cache() -> None:
  """Turns on JAX's persistent compilation cache (even for fast compiles: they add up)."""
  root = cache_dir()
  if root is None:
    return
  import jax
  jax.config.update("jax_compilation_cache_dir", str(root / "xla"))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def fingerprint(digest: str) -> str:
  """The cache key of a checkpoint whose manifest hashes to ``digest``."""
  import jax
  return hashlib.sha256(f"{_FORMAT}|{jax.__version__}|{digest}".encode()).hexdigest()[:32]


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
  out = {}
  for key, value in tree.items():
    name = f"{prefix}/{key}" if prefix else str(key)
    out.update(_flatten(value, name) if isinstance(value, dict) else {name: value})
  return out


def _unflatten(flat: dict[str, Any]) -> dict[str, Any]:
  tree: dict[str, Any] = {}
  for name, value in flat.items():
    node = tree
    *parents, leaf = name.split("/")
    for parent in parents:
      node = node.setdefault(parent, {})
    node[leaf] = value
  return tree


def _arrays_digest(arrays: dict[str, Any]) -> str:
  import numpy as np
  h = hashlib.sha256()
  for name in sorted(arrays):
    a = np.ascontiguousarray(arrays[name])
    h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
    h.update(a.tobytes())
  return h.hexdigest()


def load_final(path: str | os.PathLike) -> tuple[dict[str, Any], Any, dict[str, Any]]:
  """``checkpoint.load_final``, served from the cache when the checkpoint is unchanged."""
  return _load_final(pathlib.Path(path).absolute())[:3]


def _load_final(path: pathlib.Path) -> tuple[dict[str, Any], Any, dict[str, Any],
                                             pathlib.Path | None]:
  """(model config, variables, metadata, the cache stem of the checkpoint or None)."""
  from mnist_flax import integrity
  root = cache_dir()
  if root is None:
    from mnist_flax import checkpoint
    return (*checkpoint.load_final(path), None)
  _, digest = integrity.checked_final(path)  # Exit 3 here for a damaged one, cached or not.
  stem = root / "final" / fingerprint(digest)
  entry = stem.with_name(f"{stem.name}.npz")
  cached = _read_entry(entry)
  if cached is not None:
    return (*cached, stem)
  from mnist_flax import checkpoint
  model_config, variables, metadata, digest = checkpoint.load_verified(path)
  stem = root / "final" / fingerprint(digest)  # What Orbax read, should it have changed.
  _store(stem.with_name(f"{stem.name}.npz"), model_config, variables, metadata)
  return model_config, variables, metadata, stem


def _read_entry(entry: pathlib.Path) -> tuple[dict[str, Any], Any, dict[str, Any]] | None:
  """A cached checkpoint, checked whole and finite; None (and the entry deleted) otherwise."""
  import numpy as np
  try:
    with np.load(entry, allow_pickle=False) as z:
      header = json.loads(bytes(z["__header__"]).decode())
      arrays = {k: z[k] for k in z.files if k != "__header__"}
    if (header.get("arrays_sha256") != _arrays_digest(arrays)
        or not all(np.isfinite(a).all() for a in arrays.values())):
      raise ValueError("damaged cache entry")
    return header["model"], _unflatten(arrays), header["metadata"]
  except FileNotFoundError:
    return None
  except Exception:  # Truncated, flipped, another format: rebuilt from the checkpoint.
    with contextlib.suppress(OSError):
      entry.unlink()
    return None


def _store(entry: pathlib.Path, model_config: dict[str, Any], variables: Any,
           metadata: dict[str, Any]) -> None:
  import numpy as np
  arrays = {k: np.asarray(v) for k, v in _flatten(variables).items()}
  header = json.dumps({"model": model_config, "metadata": metadata,
                       "arrays_sha256": _arrays_digest(arrays)}).encode()
  buffer = io.BytesIO()
  np.savez(buffer, __header__=np.frombuffer(header, np.uint8), **arrays)
  _write_atomic(entry, buffer.getvalue())


def _read_export(entry: pathlib.Path) -> bytes | None:
  """An exported predict's bytes if the entry is whole (its trailing hash matches)."""
  try:
    data = entry.read_bytes()
  except OSError:
    return None
  body, sep, digest = data.rpartition(_TRAILER)
  if sep and digest == hashlib.sha256(body).hexdigest().encode():
    return body
  with contextlib.suppress(OSError):
    entry.unlink()
  return None


def load_predictor(path: str | os.PathLike, batch_size: int):
  """A function images (batch_size, 28, 28) -> probabilities, from a promoted checkpoint.

  It is ``model.predict`` for the checkpoint's architecture and calibration temperature. The
  first call for a checkpoint, batch size and temperature exports it (``jax.export``:
  serialized StableHLO, taking the variables as arguments, the temperature baked in) into the
  cache; later processes load that, so the inference command needs neither Flax nor the
  model code at start-up, and with the compilation cache on the executable comes from JAX's
  persistent cache. It is compiled before this returns, so the
  first call is as fast as the others. (Storing XLA executables ourselves with
  ``jax.experimental.serialize_executable`` was tried and dropped: on XLA:CPU the loaded
  executables failed when called, "Function ... not found".)
  """
  import jax
  import numpy as np
  from jax import export
  path = pathlib.Path(path).absolute()
  model_config, variables, metadata, stem = _load_final(path)  # Checked once for both files.
  from mnist_flax import calibration
  temperature = calibration.temperature_of(metadata)
  entry = None if stem is None else stem.with_name(
      f"{stem.name}-t{temperature.hex()}-predict-{batch_size}-{_model_code_key()}.jaxexport")
  exported, serialized = None, b""
  if entry is not None and (serialized := _read_export(entry) or b""):
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
    if entry is not None:
      _write_atomic(entry, serialized + _TRAILER + hashlib.sha256(serialized).hexdigest().encode())
  variables = jax.device_put(variables)
  args, kwargs = exported.in_tree.unflatten(
      [jax.ShapeDtypeStruct(a.shape, a.dtype) for a in exported.in_avals])
  with _no_lapack_setup(b"lapack" not in serialized):
    # Compiled now (from the persistent cache when it has it), not at the first call.
    compiled = jax.jit(exported.call).lower(*args, **kwargs).compile()

  def predict(x: Any) -> Any:
    probabilities = compiled(variables, np.asarray(x, np.float32))
    if not np.isfinite(np.asarray(probabilities)).all():
      from mnist_flax import errors
      raise errors.CheckpointError(f"{errors.shown_path(path)} gives non-finite "
                                   "probabilities; its weights are unusable")
    return probabilities

  return predict, metadata


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


def _model_code_key() -> str:
  """A short hash of model.py: an export traced from other model code is a different entry."""
  source = pathlib.Path(__file__).with_name("model.py").read_bytes()
  return hashlib.sha256(source).hexdigest()[:12]


def _write_atomic(entry: pathlib.Path, data: bytes) -> None:
  try:
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = entry.with_suffix(f".tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, entry)  # Readers see the whole entry or none.
  except OSError:
    pass  # A read-only home or a full disk only costs speed.

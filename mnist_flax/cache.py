"""Local caches that make repeated commands start fast; safe to delete at any time.

    from mnist_flax import cache
    cache.enable_compilation_cache()                  # before the first jit compile
    entry = cache.read_final(digest)                  # None: not cached (or caching is off)
    cache.store_final(digest, model_config, variables, metadata)
    data = cache.read_export(digest, temperature, batch_size)   # / cache.store_export(...)

``digest`` is the SHA-256 of a checkpoint's checksum manifest (``mnist_flax.integrity``);
``mnist_flax.predictor`` checks the checkpoint's files against it, then asks here. This
module only stores and checks entries: loading and exporting are the predictor's.

Two caches live under ``$MNIST_FLAX_CACHE_DIR`` (default ``$XDG_CACHE_HOME/mnist_flax`` or
``~/.cache/mnist_flax``; set it to ``off`` to disable both):

* ``xla/``: JAX's persistent compilation cache, so a command run twice skips XLA compilation
  (training steps, evaluation, ``predict``).
* ``final/``: the variables of a promoted checkpoint as one ``.npz``, written after Orbax has
  restored and checked them, keyed by the checkpoint's content: every call checks each of its
  files against the checkpoint's checksum manifest (``mnist_flax.integrity``, a few ms for the
  shipped 2.9 MB) and the key is the manifest's hash. Any change to the checkpoint, even bytes
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
from the checkpoint, silently.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import pathlib
from typing import Any

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


def _stem(digest: str) -> pathlib.Path | None:
  """Where the entries of a checkpoint whose manifest hashes to ``digest`` live (None: off)."""
  root = cache_dir()
  return None if root is None else root / "final" / fingerprint(digest)


def read_final(digest: str) -> tuple[dict[str, Any], Any, dict[str, Any]] | None:
  """The cached ``(model_config, variables, metadata)`` of the checkpoint whose manifest
  hashes to ``digest`` (its files checked against it by the caller), or None."""
  stem = _stem(digest)
  return None if stem is None else _read_entry(stem.with_name(f"{stem.name}.npz"))


def store_final(digest: str, model_config: dict[str, Any], variables: Any,
                metadata: dict[str, Any]) -> None:
  """Caches a checkpoint just restored and checked, under its manifest's ``digest``."""
  stem = _stem(digest)
  if stem is not None:
    _store(stem.with_name(f"{stem.name}.npz"), model_config, variables, metadata)


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


def _export_entry(digest: str, temperature: float, batch_size: int) -> pathlib.Path | None:
  stem = _stem(digest)
  return None if stem is None else stem.with_name(
      f"{stem.name}-t{temperature.hex()}-predict-{batch_size}-{_model_code_key()}.jaxexport")


def read_export(digest: str, temperature: float, batch_size: int) -> bytes | None:
  """The serialized export of ``predict`` for this checkpoint, temperature and batch size, if
  cached and whole (its trailing hash matches); a torn entry is deleted."""
  entry = _export_entry(digest, temperature, batch_size)
  if entry is None:
    return None
  try:
    data = entry.read_bytes()
  except OSError:
    return None
  body, sep, checksum = data.rpartition(_TRAILER)
  if sep and checksum == hashlib.sha256(body).hexdigest().encode():
    return body
  with contextlib.suppress(OSError):
    entry.unlink()
  return None


def store_export(digest: str, temperature: float, batch_size: int, serialized: bytes) -> None:
  """Caches a serialized export of ``predict``, with the hash that ``read_export`` checks."""
  entry = _export_entry(digest, temperature, batch_size)
  if entry is not None:
    _write_atomic(entry, serialized + _TRAILER + hashlib.sha256(serialized).hexdigest().encode())


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

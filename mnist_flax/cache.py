"""Local caches that make repeated commands start fast; safe to delete at any time.

    from mnist_flax import cache
    cache.enable_compilation_cache()                  # before the first jit compile
    model_config, variables, metadata = cache.load_final("checkpoints/final")

Two caches live under ``$MNIST_FLAX_CACHE_DIR`` (default ``$XDG_CACHE_HOME/mnist_flax`` or
``~/.cache/mnist_flax``; set it to ``off`` to disable both):

* ``xla/``: JAX's persistent compilation cache, so a command run twice skips XLA compilation
  (training steps, evaluation, ``predict``).
* ``final/``: the variables of a promoted checkpoint as one ``.npz``, written after Orbax has
  restored and checked them, keyed by a fingerprint of the checkpoint's files (path, size,
  modification time and inode of each). Any change to the checkpoint (a new promotion, a
  damaged or deleted file) changes the key, so the checkpoint goes through Orbax and its checks
  again. This spares the inference command importing Orbax and restoring through it on every
  call, which is most of its start-up time. Beside it, under the same key, ``predict`` for
  that checkpoint exported with ``jax.export`` (one file per batch size, and keyed by the
  source of ``mnist_flax/model.py`` too, as the export holds the model's code), so the
  inference command does not import Flax either. The export bakes in the checkpoint's
  calibration temperature, and its file name carries it too: a recalibrated checkpoint never
  answers through an export made for another temperature.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import pathlib
from typing import Any, Iterator

ENV_VAR = "MNIST_FLAX_CACHE_DIR"
_FORMAT = 1


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


def fingerprint(path: pathlib.Path) -> str:
  """A key that changes whenever any file of the checkpoint changes or is replaced."""
  import jax
  h = hashlib.sha256(f"{_FORMAT}|{jax.__version__}|{path.resolve()}".encode())
  entries = []
  for root, dirs, files in os.walk(path):
    dirs.sort()
    for name in sorted(files):
      st = os.stat(os.path.join(root, name))
      entries.append(f"{os.path.relpath(os.path.join(root, name), path)}|{st.st_size}|"
                     f"{st.st_mtime_ns}|{st.st_ino}")
  h.update("\n".join(entries).encode())
  return h.hexdigest()[:32]


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


def _entry_stem(path: pathlib.Path) -> pathlib.Path | None:
  """``<cache>/final/<fingerprint>``, the common prefix of a checkpoint's cache files; None
  when caching is off or ``path`` is not a finished checkpoint."""
  root = cache_dir()
  if root is None or not (path / "_CHECKPOINT_METADATA").is_file():
    return None
  try:
    return root / "final" / fingerprint(path)
  except OSError:  # A file vanished while it was listed: go through Orbax, which will say.
    return None


def load_final(path: str | os.PathLike) -> tuple[dict[str, Any], Any, dict[str, Any]]:
  """``checkpoint.load_final``, served from the cache when the checkpoint is unchanged."""
  path = pathlib.Path(path).absolute()
  return _load_final(path, _entry_stem(path))


def _load_final(path: pathlib.Path, stem: pathlib.Path | None
                ) -> tuple[dict[str, Any], Any, dict[str, Any]]:
  import numpy as np
  entry = None if stem is None else stem.with_name(f"{stem.name}.npz")
  if entry is not None:
    try:
      with np.load(entry, allow_pickle=False) as z:
        header = json.loads(bytes(z["__header__"]).decode())
        variables = _unflatten({k: z[k] for k in z.files if k != "__header__"})
      return header["model"], variables, header["metadata"]
    except (OSError, KeyError, ValueError):
      pass  # Not cached yet, or unreadable: restore through Orbax below.
  from mnist_flax import checkpoint
  model_config, variables, metadata = checkpoint.load_final(path)
  if entry is not None:
    _store(entry, model_config, variables, metadata)
  return model_config, variables, metadata


def _store(entry: pathlib.Path, model_config: dict[str, Any], variables: Any,
           metadata: dict[str, Any]) -> None:
  import numpy as np
  header = json.dumps({"model": model_config, "metadata": metadata}).encode()
  arrays = {k: np.asarray(v) for k, v in _flatten(variables).items()}
  buffer = io.BytesIO()
  np.savez(buffer, __header__=np.frombuffer(header, np.uint8), **arrays)
  _write_atomic(entry, buffer.getvalue())


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
  stem = _entry_stem(path)  # Fingerprinted once for both cache files.
  model_config, variables, metadata = _load_final(path, stem)
  from mnist_flax import calibration
  temperature = calibration.temperature_of(metadata)
  entry = None if stem is None else stem.with_name(
      f"{stem.name}-t{temperature.hex()}-predict-{batch_size}-{_model_code_key()}.jaxexport")
  exported, serialized = None, b""
  if entry is not None:
    try:
      serialized = entry.read_bytes()
      exported = export.deserialize(bytearray(serialized))
    except Exception:  # Not there yet, or unreadable (a different jax, a torn write): redo.
      exported = None
  if exported is None:
    from mnist_flax import model  # Flax: only when the export is not cached.
    net = model.build(model_config)
    images = jax.ShapeDtypeStruct((batch_size, 28, 28), np.float32)
    exported = export.export(jax.jit(lambda v, x: model.predict(net, v, x, temperature)))(
        jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), variables), images)
    serialized = bytes(exported.serialize())
    if entry is not None:
      _write_atomic(entry, serialized)
  variables = jax.device_put(variables)
  args, kwargs = exported.in_tree.unflatten(
      [jax.ShapeDtypeStruct(a.shape, a.dtype) for a in exported.in_avals])
  with _no_lapack_setup(b"lapack" not in serialized):
    # Compiled now (from the persistent cache when it has it), not at the first call.
    compiled = jax.jit(exported.call).lower(*args, **kwargs).compile()
  return lambda x: compiled(variables, np.asarray(x, np.float32)), metadata


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

"""Orbax checkpoints: the step checkpoints of a run, and the promoted ``final`` one inference uses.

Layout under ``<workdir>/checkpoints/``::

    1000/ 2000/ ...   whole train state + run metadata, one Orbax step checkpoint each
    final/            model variables + metadata (model config, test metrics, data checksums,
                      library versions): everything inference needs, nothing it doesn't (no optax)

    manager = checkpoint.step_manager(workdir)
    checkpoint.save_step(manager, state, run_meta)
    state = checkpoint.restore_latest(manager, abstract_state, run_meta)  # None on a fresh run
    checkpoint.promote_final(workdir, variables, metadata)
    model_config, variables, metadata = checkpoint.load_final("checkpoints/final")

Why ``final`` is never half-written: Orbax writes it to a temporary folder and commits it by a
rename, as ``.final-new``; we then move the old ``final`` aside (``.final-old``), rename the new one
into place and delete the old. A crash between those renames leaves either ``.final-new`` complete
or ``.final-old`` whole; ``recover_final`` (run by every reader and writer) completes or rolls
back the swap, so a reader always sees the old or the new ``final``, never a mixture.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import shutil
from typing import Any, Iterator, Mapping

import jax
import numpy as np
import orbax.checkpoint as ocp

from mnist_flax import errors

FINAL = "final"
_NEW = ".final-new"
_OLD = ".final-old"
FORMAT = "mnist_flax/final/v1"
TRAIN_HINT = "train one with: python -m mnist_flax.main --config=configs/default.py"


def checkpoint_dir(workdir: str | os.PathLike) -> pathlib.Path:
  return pathlib.Path(workdir).absolute() / "checkpoints"


def step_manager(workdir: str | os.PathLike) -> ocp.CheckpointManager:
  """The run's step checkpoints: every one kept, saved asynchronously, stale temp dirs removed."""
  options = ocp.CheckpointManagerOptions(
      max_to_keep=None, create=True, enable_async_checkpointing=True,
      cleanup_tmp_directories=True)
  return ocp.CheckpointManager(checkpoint_dir(workdir), options=options)


def save_step(manager: ocp.CheckpointManager, step: int, state: Any,
              run_meta: Mapping[str, Any]) -> None:
  """Starts an asynchronous save of ``state`` as step ``step``; ``wait`` before exiting."""
  manager.save(step, args=ocp.args.Composite(
      state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(dict(run_meta))), force=True)


def _differences(saved: Mapping[str, Any], wanted: Mapping[str, Any],
                 prefix: str = "") -> list[str]:
  out = []
  for key in sorted(set(saved) | set(wanted)):
    a, b = saved.get(key, "<absent>"), wanted.get(key, "<absent>")
    if isinstance(a, Mapping) and isinstance(b, Mapping):
      out += _differences(a, b, f"{prefix}{key}.")
    elif json.loads(json.dumps(a)) != json.loads(json.dumps(b)):
      out.append(f"{prefix}{key}: checkpoint has {a!r}, config has {b!r}")
  return out


def restore_latest(manager: ocp.CheckpointManager, abstract_state: Any,
                   run_meta: Mapping[str, Any],
                   log=print) -> Any | None:
  """Restores the newest intact step checkpoint, or returns None when there is none.

  ``run_meta["compat"]`` (the model and optimizer configs) must match the checkpoint's, else
  ``CheckpointError`` names what differs. A step whose files are damaged is reported and the
  next older one is tried, so one bad save never costs more than the steps since the last one.
  """
  for step in sorted(manager.all_steps(), reverse=True):
    try:
      meta = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
    except Exception as e:  # Orbax raises many types for damaged files; all mean "unusable".
      _set_aside(manager, step, e, log)
      continue
    diff = _differences(meta.get("compat", {}), run_meta["compat"])
    if diff:
      raise errors.CheckpointError(
          f"checkpoint {manager.directory / str(step)} was written by a different config ("
          + "; ".join(diff) + "); use a new --workdir or the original config")
    try:
      restored = manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract_state)))
    except Exception as e:
      _set_aside(manager, step, e, log)
      continue
    return restored["state"]
  return None


def _set_aside(manager: ocp.CheckpointManager, step: int, error: Exception, log) -> None:
  """Renames a damaged step out of Orbax's sight (kept for inspection, never reused)."""
  path = pathlib.Path(manager.directory) / str(step)
  aside = path.with_name(f"{step}.damaged")
  log(f"checkpoint {step} is damaged ({type(error).__name__}: "
      f"{' '.join(str(error).split())[:100]}); set aside as {aside.name}, trying an older one")
  if jax.process_index() == 0:
    if aside.exists():
      shutil.rmtree(aside)
    os.rename(path, aside)
  _sync(f"mnist_flax_set_aside_{step}")
  manager.reload()


def recover_final(ckpt_dir: pathlib.Path) -> None:
  """Completes or rolls back a ``final`` swap that a crash interrupted (process 0 only)."""
  final, new, old = ckpt_dir / FINAL, ckpt_dir / _NEW, ckpt_dir / _OLD
  if final.exists():
    if old.exists():
      shutil.rmtree(old)
    return
  if _is_orbax_ckpt(new):
    os.rename(new, final)
  elif old.exists():
    os.rename(old, final)


def _is_orbax_ckpt(path: pathlib.Path) -> bool:
  return (path / "_CHECKPOINT_METADATA").is_file()


def promote_final(workdir: str | os.PathLike, variables: Any,
                  metadata: Mapping[str, Any]) -> pathlib.Path:
  """Writes ``variables`` + ``metadata`` as ``<workdir>/checkpoints/final``, atomically."""
  ckpt_dir = checkpoint_dir(workdir)
  primary = jax.process_index() == 0
  if primary:
    recover_final(ckpt_dir)
    if (ckpt_dir / _NEW).exists():
      shutil.rmtree(ckpt_dir / _NEW)
  _sync("mnist_flax_promote_start")
  payload = dict(metadata, format=FORMAT)
  checkpointer = ocp.Checkpointer(ocp.CompositeCheckpointHandler())
  checkpointer.save(ckpt_dir / _NEW, args=ocp.args.Composite(
      variables=ocp.args.StandardSave(variables), metadata=ocp.args.JsonSave(payload)))
  checkpointer.close()
  if primary:
    final, new, old = ckpt_dir / FINAL, ckpt_dir / _NEW, ckpt_dir / _OLD
    if final.exists():
      os.rename(final, old)
    os.rename(new, final)
    if old.exists():
      shutil.rmtree(old)
  _sync("mnist_flax_promote_end")
  return ckpt_dir / FINAL


def _sync(name: str) -> None:
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    multihost_utils.sync_global_devices(name)


def final_step(path: pathlib.Path) -> int | None:
  """The step a promoted checkpoint was taken at, or None if there is none readable."""
  try:
    with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as checkpointer:
      metadata = checkpointer.restore(path, args=ocp.args.Composite(
          metadata=ocp.args.JsonRestore()))["metadata"]
    return int(metadata["step"])
  except Exception:  # Missing or damaged: the caller promotes a fresh one.
    return None


def load_final(path: str | os.PathLike) -> tuple[dict[str, Any], Any, dict[str, Any]]:
  """Restores a promoted checkpoint onto the default device, whatever devices wrote it.

  Returns ``(model_config, variables, metadata)``; raises ``CheckpointError`` (exit 3) for a
  missing, partial, damaged or foreign checkpoint, never returning unusable weights.
  """
  path = pathlib.Path(path).absolute()
  if not path.exists() and path.name == FINAL and path.parent.is_dir():
    try:
      recover_final(path.parent)
    except OSError:
      pass
    for candidate in (path.parent / _NEW, path.parent / _OLD):
      if not path.exists() and _is_orbax_ckpt(candidate):
        path = candidate
  if not path.is_dir():
    raise errors.CheckpointError(f"no checkpoint at {path}; {TRAIN_HINT}")
  if not _is_orbax_ckpt(path):
    raise errors.CheckpointError(f"{path} is not a complete Orbax checkpoint; {TRAIN_HINT}")
  checkpointer = ocp.Checkpointer(ocp.CompositeCheckpointHandler())
  try:
    metadata = checkpointer.restore(path, args=ocp.args.Composite(
        metadata=ocp.args.JsonRestore()))["metadata"]
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
      raise errors.CheckpointError(f"{path} is not an mnist_flax final checkpoint; {TRAIN_HINT}")
    with ocp.StandardCheckpointer() as reader, _quiet_absl():
      tree = reader.metadata(path / "variables").item_metadata.tree
    device = jax.local_devices()[0]
    sharding = jax.sharding.SingleDeviceSharding(device)
    abstract = jax.tree.map(
        lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=sharding), tree)
    variables = checkpointer.restore(path, args=ocp.args.Composite(
        variables=ocp.args.StandardRestore(abstract)))["variables"]
  except errors.CheckpointError:
    raise
  except Exception as e:  # Damaged files surface as many exception types inside Orbax.
    raise errors.CheckpointError(
        f"checkpoint {path} is damaged or incomplete ({type(e).__name__}: "
        f"{' '.join(str(e).split())[:160]}); {TRAIN_HINT}") from None
  finally:
    checkpointer.close()
  _check_variables(path, metadata, variables)
  return metadata["model"], variables, metadata


@contextlib.contextmanager
def _quiet_absl() -> Iterator[None]:
  """Orbax logs harmless warnings through absl; a user reading stdout/stderr needn't see them."""
  from absl import logging as absl_logging
  previous = absl_logging.get_verbosity()
  absl_logging.set_verbosity(absl_logging.ERROR)
  try:
    yield
  finally:
    absl_logging.set_verbosity(previous)


def _check_variables(path: pathlib.Path, metadata: Mapping[str, Any], variables: Any) -> None:
  """Refuses variables whose shapes do not match the model config stored beside them."""
  from mnist_flax import model  # Flax import deferred: only needed once files look sane.
  try:
    net = model.build(metadata["model"])
    expected = jax.eval_shape(net.init, jax.random.key(0), np.zeros((1, 28, 28), np.float32))
  except Exception as e:
    raise errors.CheckpointError(f"{path} has an unusable model config ({e}); {TRAIN_HINT}") from None
  shapes = lambda tree: jax.tree.map(lambda a: (tuple(a.shape), str(a.dtype)), tree)
  if jax.tree.structure(expected) != jax.tree.structure(variables) or shapes(expected) != shapes(variables):
    raise errors.CheckpointError(
        f"{path} holds variables that do not match its model config; {TRAIN_HINT}")
  finite = all(bool(np.isfinite(np.asarray(leaf)).all()) for leaf in jax.tree.leaves(variables))
  if not finite:
    raise errors.CheckpointError(f"{path} holds non-finite weights; {TRAIN_HINT}")

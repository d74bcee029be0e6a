"""Orbax checkpoints: the step checkpoints of a run, and the promoted ``final`` one inference uses.

Layout under ``<workdir>/checkpoints/``::

    1000/ 2000/ ...   whole train state + run metadata, one Orbax step checkpoint each
    final/            model variables + metadata (model config, test metrics, data checksums,
                      library versions): everything inference needs, nothing it doesn't (no optax)

    saver = checkpoint.StepSaver(workdir, log)
    state = checkpoint.restore_latest(saver.manager, abstract_state, run_meta)  # None: fresh
    saver.save(step, state, run_meta)   # asynchronous; saver.poll() after each step
    saver.close()                       # waits for the last save to commit
    checkpoint.promote_final(workdir, variables, metadata)
    checkpoint.update_final(workdir, temperature=1.3)   # re-promote with more metadata
    model_config, variables, metadata, digest = checkpoint.load_verified("checkpoints/final")

Inference loads ``final`` through ``mnist_flax.predictor.load_final`` (checked, and cached);
``load_verified`` is the Orbax read underneath it.

Every checkpoint carries a checksum manifest of all its files (``mnist_flax.integrity``),
written once Orbax has committed it and verified before anything of it is restored: a step
checkpoint that fails is set aside as ``N.damaged`` and an older one is used; a ``final`` that
fails is refused (exit 3). A step's metadata also holds the SHA-256 of its arrays, committed
with them: a run killed between the commit and the manifest leaves a step that is checked by
those and sealed at the next start, instead of being lost. A save that cannot write (disk full, quota, file-size limit,
read-only file system) stops the run with a one-line WorkdirError (exit 7), promptly, leaving
the older checkpoints as they were; "checkpoint saved" is said only once the save committed.

Why ``final`` is never half-written: Orbax writes it to a temporary folder and commits it by a
rename, as ``.final-new``, which is then sealed with its manifest; we move the old ``final``
aside (``.final-old``), rename the new one into place and delete the old. Readers never write:
finding no ``final`` they read the sealed ``.final-new`` or else ``.final-old``. The next
writer completes or rolls back an interrupted swap (``recover_final``), from any point.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pathlib
import shutil
import time
from typing import Any, Callable, Iterator, Mapping

import jax
import numpy as np
import orbax.checkpoint as ocp

from mnist_flax import errors, integrity, workdir as workdir_lib
from mnist_flax.constants import IMAGE_SIZE
from mnist_flax.integrity import FINAL, NEW as _NEW, OLD as _OLD, TRAIN_HINT

FORMAT = "mnist_flax/final/v1"
# While a save is under way, how often the checkpoint folder is probed for writability: a
# save that fails on one of Orbax's threads can leave the others waiting minutes for it.
_PROBE_SECONDS = 1.0


def checkpoint_dir(workdir: str | os.PathLike) -> pathlib.Path:
  return pathlib.Path(workdir).absolute() / workdir_lib.CHECKPOINTS


def step_manager(workdir: str | os.PathLike) -> ocp.CheckpointManager:
  """The run's step checkpoints: every one kept, saved asynchronously, stale temp dirs removed."""
  options = ocp.CheckpointManagerOptions(
      max_to_keep=None, create=True, enable_async_checkpointing=True,
      cleanup_tmp_directories=True)
  try:
    return ocp.CheckpointManager(checkpoint_dir(workdir), options=options)
  except Exception as e:
    raise errors.write_failure(e, checkpoint_dir(workdir), "cannot use the checkpoint folder") from None


class StepSaver:
  """Asynchronous step saves that are reported saved only once committed and sealed."""

  def __init__(self, workdir: str | os.PathLike, log: Callable[[str], None] = print):
    self.manager = step_manager(workdir)
    self.directory = pathlib.Path(self.manager.directory)
    self._log = log
    self._pending: int | None = None

  def save(self, step: int, state: Any, run_meta: Mapping[str, Any]) -> None:
    """Starts saving ``state`` as step ``step`` (after finishing the previous save)."""
    self.finish()
    meta = dict(run_meta, arrays_sha256=tree_digest(state))
    try:
      self.manager.save(step, args=ocp.args.Composite(
          state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)), force=True)
    except Exception as e:
      raise self._failure(e, step) from None
    self._pending = step

  def poll(self) -> None:
    """Seals and reports the save under way if it has committed; cheap otherwise."""
    if self._pending is not None and not self.manager.is_saving_in_progress():
      self.finish()

  def finish(self) -> None:
    """Waits for the save under way to commit, seals it and says so."""
    step, self._pending = self._pending, None
    if step is None:
      return
    next_probe = time.monotonic() + _PROBE_SECONDS
    try:
      while self.manager.is_saving_in_progress():
        self.manager.check_for_errors()
        if time.monotonic() > next_probe:  # Failed writes can hang Orbax; the disk says why.
          workdir_lib.probe(self.directory)
          next_probe = time.monotonic() + _PROBE_SECONDS
        time.sleep(0.01)
      self.manager.wait_until_finished()
      self.manager.check_for_errors()
      folder = self.directory / str(step)
      if not folder.is_dir():
        raise errors.WorkdirError(f"checkpoint {step} was not committed in {folder.parent}")
      if jax.process_index() == 0:
        integrity.seal(folder)  # Process 0 only, and no barrier: polls differ by process.
    except errors.WorkdirError:
      raise
    except Exception as e:
      raise self._failure(e, step) from None
    self._log(f"checkpoint saved at step {step}")

  def _failure(self, error: BaseException, step: int) -> errors.WorkdirError:
    kept = [s for s in self.manager.all_steps() if s != step]
    where = (f"the last saved checkpoint (step {max(kept)}) is kept" if kept
             else "no checkpoint was saved")
    failure = errors.write_failure(error, self.directory, f"cannot save checkpoint {step} in")
    return errors.WorkdirError(f"{failure}; {where}; fix that and run the same command "
                               "again to resume")

  def close(self) -> None:
    self.finish()
    self.manager.close()


def tree_digest(tree: Any) -> str:
  """SHA-256 of every array of ``tree`` (names, dtypes, shapes, bytes), from this process's
  copy of each (the train state is replicated, so that is the whole array); a few ms."""
  h = hashlib.sha256()
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    if isinstance(leaf, jax.Array):
      leaf = leaf.addressable_data(0)
    a = np.ascontiguousarray(np.asarray(leaf))
    h.update(f"{jax.tree_util.keystr(path)}|{a.dtype.str}|{a.shape}|".encode())
    h.update(a.tobytes())
  return h.hexdigest()


def save_step(manager: ocp.CheckpointManager, step: int, state: Any,
              run_meta: Mapping[str, Any]) -> None:
  """Saves ``state`` as step ``step`` synchronously and seals it (tests, tools)."""
  meta = dict(run_meta, arrays_sha256=tree_digest(state))
  manager.save(step, args=ocp.args.Composite(
      state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)), force=True)
  manager.wait_until_finished()
  if jax.process_index() == 0:
    integrity.seal(pathlib.Path(manager.directory) / str(step))


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


def config_changes(saved: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
  """The fields of a run's config that differ from the checkpoint's, as "field: a -> b"."""
  return [line.replace(": checkpoint has ", ": ").replace(", config has ", " -> ")
          for line in _differences(saved, wanted)]


def restore_latest(manager: ocp.CheckpointManager, abstract_state: Any,
                   run_meta: Mapping[str, Any],
                   log=print) -> tuple[Any, dict[str, Any]] | None:
  """Restores the newest intact step checkpoint: ``(state, its run metadata)``, or None.

  Every file is checked against the checkpoint's manifest first. ``run_meta["compat"]`` (the
  model and optimizer configs, seed and batch size) must match the checkpoint's, else
  ``CheckpointError`` names what differs. A step whose files are damaged (or that was never
  sealed: a crash right after its commit) is reported, set aside and the next older one is
  tried, so one bad save never costs more than the steps since the last one.
  """
  directory = pathlib.Path(manager.directory)
  for step in sorted(manager.all_steps(), reverse=True):
    folder = directory / str(step)
    sealed = integrity.is_sealed(folder)
    try:
      if sealed:
        integrity.verify(folder)
      meta = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
      if not (isinstance(meta, dict) and isinstance(meta.get("compat"), dict)
              and {"model", "optimizer"} <= set(meta["compat"])):
        raise errors.CheckpointError(f"its run metadata is not an mnist_flax one: "
                                     f"{json.dumps(meta)[:60]}")
    except Exception as e:  # Orbax raises many types for damaged files; all mean "unusable".
      _set_aside(manager, step, e, log)
      continue
    diff = _differences(meta["compat"], run_meta["compat"])
    if diff:
      raise errors.CheckpointError(
          f"checkpoint {folder} was written by a different config ("
          + "; ".join(diff) + "); use a new --workdir or the original config")
    try:
      state = manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract_state)))["state"]
      if not sealed:
        # Committed but not sealed: the run was killed between the two. Its arrays must match
        # the checksums saved with them (atomically, in its metadata); then it is sealed.
        if meta.get("arrays_sha256") != tree_digest(state):
          raise errors.CheckpointError("not sealed, and its arrays do not match their checksums")
        if jax.process_index() == 0:
          integrity.seal(folder)
        log(f"checkpoint {step} was committed but not sealed (a run stopped right after "
            "saving it); its arrays match their checksums, sealed now")
    except Exception as e:
      _set_aside(manager, step, e, log)
      continue
    return state, meta
  return None


def _set_aside(manager: ocp.CheckpointManager, step: int, error: Exception, log) -> None:
  """Renames a damaged step out of Orbax's sight (kept for inspection, never reused)."""
  path = pathlib.Path(manager.directory) / str(step)
  aside = path.with_name(f"{step}.damaged")
  reason = (getattr(error, "detail", None) or str(error)
            if isinstance(error, errors.MnistFlaxError) else f"{type(error).__name__}: {error}")
  log(f"checkpoint {step} is damaged ({errors.one_line(reason, 160)}); set aside as "
      f"{aside.name}, trying an older one")
  if jax.process_index() == 0:
    if aside.exists():
      shutil.rmtree(aside)
    os.rename(path, aside)
  _sync(f"mnist_flax_set_aside_{step}")
  manager.reload()


def recover_final(ckpt_dir: pathlib.Path) -> None:
  """Completes or rolls back a ``final`` swap that a crash interrupted (writers only, process
  0). Converges from any point of ``promote_final``: afterwards only ``final`` is left (or
  nothing, if nothing was ever promoted), and running it again changes nothing."""
  final, new, old = ckpt_dir / FINAL, ckpt_dir / _NEW, ckpt_dir / _OLD
  if not ckpt_dir.is_dir():
    return
  if not os.path.lexists(final):
    if integrity.is_sealed(new):  # Crashed between the two renames: the new one is whole.
      os.rename(new, final)
    elif os.path.lexists(old):  # Crashed before the new one was sealed: roll back.
      os.rename(old, final)
    integrity.fsync_dir(ckpt_dir)
  for leftover in [new, old, *ckpt_dir.glob(f"{_NEW}.orbax-checkpoint-tmp*")]:
    if os.path.lexists(leftover):
      shutil.rmtree(leftover) if leftover.is_dir() and not leftover.is_symlink() else leftover.unlink()


def promote_final(workdir: str | os.PathLike, variables: Any,
                  metadata: Mapping[str, Any]) -> pathlib.Path:
  """Writes ``variables`` + ``metadata`` as ``<workdir>/checkpoints/final``, atomically, with
  its checksum manifest. Disk errors become a one-line WorkdirError (exit 7)."""
  ckpt_dir = checkpoint_dir(workdir)
  primary = jax.process_index() == 0
  try:
    if primary:
      ckpt_dir.mkdir(parents=True, exist_ok=True)
      recover_final(ckpt_dir)
    _sync("mnist_flax_promote_start")
    payload = dict(metadata, format=FORMAT)
    checkpointer = ocp.Checkpointer(ocp.CompositeCheckpointHandler())
    try:
      checkpointer.save(ckpt_dir / _NEW, args=ocp.args.Composite(
          variables=ocp.args.StandardSave(variables), metadata=ocp.args.JsonSave(payload)))
    finally:
      checkpointer.close()
    if primary:
      final, new, old = ckpt_dir / FINAL, ckpt_dir / _NEW, ckpt_dir / _OLD
      integrity.seal(new)
      if os.path.lexists(final):
        os.rename(final, old)
      os.rename(new, final)
      integrity.fsync_dir(ckpt_dir)
      if os.path.lexists(old):
        shutil.rmtree(old)
    _sync("mnist_flax_promote_end")
  except (errors.MnistFlaxError, KeyboardInterrupt, SystemExit):
    raise
  except Exception as e:
    raise errors.write_failure(e, ckpt_dir / FINAL, "cannot promote the model to") from None
  return ckpt_dir / FINAL


def update_final(workdir: str | os.PathLike, **fields: Any) -> pathlib.Path:
  """Re-promotes ``<workdir>/checkpoints/final`` with ``fields`` added to its metadata (e.g. a
  calibration ``temperature``): the same variables, checked on the way in, written and sealed
  by ``promote_final`` like any promotion."""
  _, variables, metadata, _ = load_verified(checkpoint_dir(workdir) / FINAL)
  return promote_final(workdir, variables, {**metadata, **fields})


def _sync(name: str) -> None:
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    multihost_utils.sync_global_devices(name)


def final_step(path: pathlib.Path) -> int | None:
  """The step a promoted checkpoint was taken at, or None if there is none intact."""
  try:
    folder, _ = integrity.verify_final(path)
    with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as checkpointer:
      metadata = checkpointer.restore(folder, args=ocp.args.Composite(
          metadata=ocp.args.JsonRestore()))["metadata"]
    return int(metadata["step"])
  except Exception:  # Missing or damaged: the caller promotes a fresh one.
    return None


def load_verified(path: str | os.PathLike, attempts: int = 3
                  ) -> tuple[dict[str, Any], Any, dict[str, Any], str]:
  """Restores a promoted checkpoint onto the default device, whatever devices wrote it:
  ``(model_config, variables, metadata, digest)``, the digest being that of the exact files
  the variables came from (its manifest's). Raises ``CheckpointError`` (exit 3) for a missing,
  partial, damaged or foreign checkpoint, never returning unusable weights. Writes nothing; a
  promotion that swaps ``final`` meanwhile only makes it read again."""
  for _ in range(attempts):
    folder, digest = integrity.checked_final(path)
    result = _restore_final(folder)
    try:
      if integrity.verify(folder) == digest:  # Not swapped or changed while Orbax read it.
        return (*result, digest)
    except (FileNotFoundError, errors.CheckpointError):
      pass
  raise errors.CheckpointError(f"{errors.shown_path(path)} kept changing while it was read; "
                               "try again")


def _restore_final(path: pathlib.Path) -> tuple[dict[str, Any], Any, dict[str, Any]]:
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
        f"{errors.one_line(e, 160)}); {TRAIN_HINT}") from None
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
    expected = jax.eval_shape(net.init, jax.random.key(0),
                              np.zeros((1, IMAGE_SIZE, IMAGE_SIZE), np.float32))
  except Exception as e:
    raise errors.CheckpointError(f"{path} has an unusable model config ({e}); {TRAIN_HINT}") from None
  shapes = lambda tree: jax.tree.map(lambda a: (tuple(a.shape), str(a.dtype)), tree)
  if jax.tree.structure(expected) != jax.tree.structure(variables) or shapes(expected) != shapes(variables):
    raise errors.CheckpointError(
        f"{path} holds variables that do not match its model config; {TRAIN_HINT}")
  finite = all(bool(np.isfinite(np.asarray(leaf)).all()) for leaf in jax.tree.leaves(variables))
  if not finite:
    raise errors.CheckpointError(f"{path} holds non-finite weights; {TRAIN_HINT}")

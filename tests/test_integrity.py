"""Checksummed checkpoints (``mnist_flax.integrity``): no damage restores silently.

Single bits are flipped at random offsets in every file of a step checkpoint and of a promoted
``final`` (the manifest included): every flip must be refused (``final``: CheckpointError,
exit 3) or set aside (a step: ``N.damaged``, an older one used), never restored. Crafted
folders (a FIFO, a symlink to ``/dev/zero``, a symlinked metadata file) are refused before
Orbax reads them, in bounded time and without echoing what the links point at.
"""

from __future__ import annotations

import os
import pathlib
import random
import shutil
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import ROOT, run_module
from mnist_flax import checkpoint, config as config_lib, errors, integrity, model

SHIPPED = ROOT / "checkpoints" / "final"


def _promote(workdir: pathlib.Path, seed: int = 0) -> pathlib.Path:
  config = config_lib.load_config_file(ROOT / "configs/test.py")
  net = model.build(config.model.to_dict())
  variables = jax.tree.map(np.asarray, net.init(jax.random.key(seed), jnp.zeros((1, 28, 28))))
  return checkpoint.promote_final(workdir, variables, {"model": config.model.to_dict(),
                                                       "step": seed})


_COMPAT = {"model": {"features": [4]}, "optimizer": {"name": "adam"}, "seed": 0, "batch_size": 8}


def _state(seed: int) -> dict:
  rng = np.random.default_rng(seed)
  return {"w": rng.normal(size=(64, 32)).astype(np.float32),
          "b": rng.normal(size=(32,)).astype(np.float32), "step": np.int32(seed)}


def _abstract() -> dict:
  return jax.tree.map(lambda a: jax.ShapeDtypeStruct(np.shape(a), np.asarray(a).dtype),
                      _state(0))


def _save_steps(workdir: pathlib.Path, steps=(1, 2)) -> None:
  manager = checkpoint.step_manager(workdir)
  for step in steps:
    checkpoint.save_step(manager, step, _state(step), {"compat": _COMPAT, "config": {}})
  manager.close()


def _restore(workdir: pathlib.Path, compat=_COMPAT) -> tuple[int | None, list[str]]:
  """(the step restored, the lines logged)."""
  lines: list[str] = []
  manager = checkpoint.step_manager(workdir)
  try:
    restored = checkpoint.restore_latest(manager, _abstract(), {"compat": compat},
                                         log=lines.append)
  finally:
    manager.close()
  return (None if restored is None else int(restored[0]["step"])), lines


def _flip(path: pathlib.Path, rng: random.Random) -> None:
  data = bytearray(path.read_bytes())
  offset = rng.randrange(len(data))
  data[offset] ^= 1 << rng.randrange(8)
  path.write_bytes(bytes(data))


def _files(folder: pathlib.Path) -> list[pathlib.Path]:
  return sorted(p for p in folder.rglob("*") if p.is_file() and p.stat().st_size)


def test_integrity_shipped_final_is_sealed_and_checking_it_costs_milliseconds():
  assert (SHIPPED / integrity.MANIFEST).is_file()
  integrity.verify(SHIPPED)  # Warm the page cache: what is measured is hashing, not the disk.
  t0 = time.perf_counter()
  for _ in range(5):
    integrity.verify(SHIPPED)
  per_call = (time.perf_counter() - t0) / 5
  size = sum(p.stat().st_size for p in _files(SHIPPED))
  print(f"verify {size / 1e6:.1f} MB: {per_call * 1e3:.1f} ms")
  assert per_call < 0.25  # A few ms on an idle machine; generous for a shared one.


def test_integrity_single_bit_flips_in_every_file_of_final_are_all_refused(tmp_path):
  pristine = _promote(tmp_path / "pristine")
  rng = random.Random(14)
  flips = 0
  for index, original in enumerate(_files(pristine)):
    rel = original.relative_to(pristine)
    for attempt in range(3):
      work = tmp_path / f"w{index}-{attempt}"
      shutil.copytree(pristine.parent.parent, work)
      final = work / "checkpoints" / "final"
      _flip(final / rel, rng)
      with pytest.raises(errors.CheckpointError):
        checkpoint.load_verified(final)
      flips += 1
      shutil.rmtree(work)
  assert flips >= 3 * 10
  checkpoint.load_verified(pristine)  # The untouched one still loads.


def test_integrity_single_bit_flips_in_every_file_of_a_step_are_set_aside(tmp_path):
  _save_steps(tmp_path / "pristine")
  newest = tmp_path / "pristine" / "checkpoints" / "2"
  assert _restore(tmp_path / "pristine") == (2, [])
  rng = random.Random(7)
  for index, original in enumerate(_files(newest)):
    rel = original.relative_to(newest)
    work = tmp_path / f"w{index}"
    shutil.copytree(tmp_path / "pristine", work)
    _flip(work / "checkpoints" / "2" / rel, rng)
    step, lines = _restore(work)
    assert step == 1, (rel, lines)  # Never the flipped step 2, never a silent restore.
    assert lines and "checkpoint 2 is damaged" in lines[0] and "2.damaged" in lines[0]
    assert (work / "checkpoints" / "2.damaged").is_dir()
    shutil.rmtree(work)


def test_integrity_a_step_committed_but_not_sealed_is_checked_by_its_array_checksums(tmp_path):
  _save_steps(tmp_path)
  step2 = tmp_path / "checkpoints" / "2"
  (step2 / integrity.MANIFEST).unlink()  # Killed between Orbax's commit and the seal.
  step, lines = _restore(tmp_path)
  assert step == 2 and "sealed now" in lines[0]
  integrity.verify(step2)
  # Unsealed and damaged: the arrays' checksums (saved with them) catch it.
  (step2 / integrity.MANIFEST).unlink()
  data = max(_files(step2 / "state"), key=lambda p: p.stat().st_size)
  raw = bytearray(data.read_bytes())
  raw[len(raw) // 2] ^= 0x01
  data.write_bytes(bytes(raw))
  step, lines = _restore(tmp_path)
  assert step == 1 and "checkpoint 2 is damaged" in lines[0]


@pytest.mark.parametrize("meta", [b"[]", b"{}", b'{"compat": []}'])
def test_integrity_step_whose_run_metadata_is_not_ours_is_set_aside(tmp_path, meta):
  # Even when the manifest is rewritten to match (a checkpoint from another program).
  _save_steps(tmp_path)
  step2 = tmp_path / "checkpoints" / "2"
  (step2 / "meta" / "metadata").write_bytes(meta)
  integrity.seal(step2)
  step, lines = _restore(tmp_path)
  assert step == 1 and "checkpoint 2 is damaged" in lines[0]


@pytest.mark.parametrize("field, value", [("seed", 1), ("batch_size", 16)])
def test_integrity_resume_with_another_seed_or_batch_size_is_refused(tmp_path, field, value):
  _save_steps(tmp_path)
  with pytest.raises(errors.CheckpointError, match=f"{field}: checkpoint has"):
    _restore(tmp_path, dict(_COMPAT, **{field: value}))


def _crafted(tmp_path: pathlib.Path, how: str) -> tuple[pathlib.Path, str]:
  final = _promote(tmp_path / "work")
  secret = "TOP-SECRET-CONTENT-42"
  target = final / "_CHECKPOINT_METADATA"
  if how == "fifo":
    target.unlink()
    os.mkfifo(target)
  elif how == "dev_zero":
    data = max(_files(final / "variables"), key=lambda p: p.stat().st_size)
    data.unlink()
    data.symlink_to("/dev/zero")
  elif how == "symlinked_metadata":
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text(f'{{"secret": "{secret}"}}')
    (final / "metadata" / "metadata").unlink()
    (final / "metadata" / "metadata").symlink_to(elsewhere)
  elif how == "huge_manifest":
    with open(final / integrity.MANIFEST, "r+b") as f:
      f.truncate(10 * 2**30)  # Sparse: 10 GB that must never be read.
  return final, secret


@pytest.mark.parametrize("how", ["fifo", "dev_zero", "symlinked_metadata", "huge_manifest"])
def test_integrity_crafted_checkpoint_folders_are_refused_quickly(tmp_path, how):
  final, secret = _crafted(tmp_path, how)
  t0 = time.monotonic()
  with pytest.raises(errors.CheckpointError):
    checkpoint.load_verified(final)
  assert time.monotonic() - t0 < 5
  result = run_module("mnist_flax.infer", "--i", str(ROOT / "test/3.jpg"), "--checkpoint",
                      str(final), timeout=60)
  assert result.returncode == 3, result.stderr
  assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == ""
  assert secret not in result.stderr


def test_integrity_seal_and_verify_cost_for_the_shipped_final(tmp_path):
  """Prints what checksums add to a save and a restore of the shipped model (2.7 MB)."""
  copy = tmp_path / "final"
  shutil.copytree(SHIPPED, copy)
  (copy / integrity.MANIFEST).unlink()
  integrity.seal(copy)
  times = {"seal": [], "verify": []}
  for _ in range(5):
    t0 = time.perf_counter()
    integrity.seal(copy)
    times["seal"].append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    integrity.verify(copy)
    times["verify"].append(time.perf_counter() - t0)
  medians = {k: sorted(v)[2] * 1e3 for k, v in times.items()}
  print(f"seal {medians['seal']:.1f} ms, verify {medians['verify']:.1f} ms")
  assert (copy / integrity.MANIFEST).read_bytes() == (SHIPPED / integrity.MANIFEST).read_bytes()
  assert medians["verify"] < 250 and medians["seal"] < 250


def test_integrity_of_a_resumed_run_config_and_metrics(tmp_path, mnist_dir):
  """A resume with another seed is refused (exit 3, naming it); one with more iterations carries
  on, says so and records it in final; a metrics.jsonl with non-UTF-8 bytes does not stop it."""
  args = ["--config=configs/test.py", "--config.checkpoint_every=10", "--config.log_every=10",
          f"--workdir={tmp_path}"]
  env = {"MNIST_DATA_DIR": str(mnist_dir), "XLA_FLAGS": ""}
  first = run_module("mnist_flax.main", *args, "--config.num_iterations=10", env=env)
  assert first.returncode == 0, first.stderr
  refused = run_module("mnist_flax.main", *args, "--config.num_iterations=20",
                       "--config.seed=5", env=env)
  assert refused.returncode == 3 and "seed: checkpoint has 0, config has 5" in refused.stderr
  with open(tmp_path / "metrics.jsonl", "ab") as f:
    f.write(b'{"step": 3, "kind": "train", "note": "\xff\xfe"}\n')
  longer = run_module("mnist_flax.main", *args, "--config.num_iterations=20", env=env)
  assert longer.returncode == 0, longer.stderr
  assert "num_iterations: 10 -> 20" in longer.stdout + longer.stderr
  metadata = checkpoint.load_verified(tmp_path / "checkpoints/final")[2]
  assert metadata["config"]["num_iterations"] == 20
  assert metadata["config_history"] == [{"step": 10, "changed": ["num_iterations: 10 -> 20"]}]


def test_integrity_update_final_re_promotes_sealed_with_the_new_metadata(tmp_path):
  final = _promote(tmp_path, 4)
  before = checkpoint.load_verified(final)
  checkpoint.update_final(tmp_path, temperature=1.25)
  after = checkpoint.load_verified(final)
  integrity.verify(final)
  assert after[2]["temperature"] == 1.25 and after[2]["step"] == 4
  assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(before[1]),
                                                   jax.tree.leaves(after[1])))
  assert sorted(p.name for p in final.parent.iterdir()) == ["final"]


def test_integrity_a_damaged_project_final_points_at_reset_others_at_training(tmp_path,
                                                                               monkeypatch):
  # `git checkout checkpoints/final` after a run keeps the files the run added: "not in its
  # manifest". In the project's own checkpoints/final, putting the shipped model back is the fix.
  from mnist_flax import constants
  monkeypatch.setattr(constants, "PROJECT_ROOT", tmp_path / "project")
  for root in (tmp_path / "project", tmp_path / "run"):
    final = root / "checkpoints" / "final"
    shutil.copytree(SHIPPED, final)
    (final / "variables" / "d" / "0123456789abcdef").write_bytes(b"left by a run")
    with pytest.raises(errors.CheckpointError, match="not in its manifest") as damaged:
      integrity.checked_final(final)
    shutil.rmtree(final)
    with pytest.raises(errors.CheckpointError, match="no checkpoint at") as missing:
      integrity.checked_final(final)
    for e in (damaged, missing):
      message = str(e.value)
      assert message.endswith(integrity.TRAIN_HINT)
      assert (integrity.RESET_HINT in message) == (root.name == "project"), message

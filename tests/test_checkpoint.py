"""The promoted ``final`` checkpoint: round trip, atomic promotion, and refusal of bad ones.

A crash is simulated at every point of a promotion (by making each rename, or the Orbax save,
fail): a reader must then get the old model or the new one, whole, never a mixture or nothing.
Damaged, partial and foreign checkpoints make infer and evaluate exit 3.
"""

from __future__ import annotations

import os
import pathlib
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import ROOT, run_module
from mnist_flax import checkpoint, config as config_lib, errors, model


def _variables(seed: int):
  config = config_lib.load_config_file(ROOT / "configs/test.py")
  net = model.build(config.model.to_dict())
  variables = net.init(jax.random.key(seed), jnp.zeros((1, 28, 28)))
  return config.model.to_dict(), jax.tree.map(np.asarray, variables)


def _promote(workdir: pathlib.Path, seed: int) -> dict:
  model_config, variables = _variables(seed)
  checkpoint.promote_final(workdir, variables, {"model": model_config, "step": seed,
                                                "test_accuracy": 0.5})
  return variables


def _same(a, b) -> bool:
  return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_round_trip_is_bit_identical(tmp_path):
  variables = _promote(tmp_path, 1)
  model_config, restored, metadata, _ = checkpoint.load_verified(tmp_path / "checkpoints/final")
  assert _same(variables, restored) and metadata["step"] == 1
  assert tuple(model_config["features"]) == (16, 32)


@pytest.mark.parametrize("failing_call", [0, 1, 2, "save"])
def test_a_crash_at_any_point_of_promotion_leaves_old_or_new_whole(tmp_path, monkeypatch,
                                                                   failing_call):
  old = _promote(tmp_path, 1)
  new_model_config, new = _variables(2)
  calls = {"n": 0}
  real_rename = os.rename

  def crashing_rename(src, dst):
    if calls["n"] == failing_call:
      raise SystemExit("simulated crash")
    calls["n"] += 1
    return real_rename(src, dst)

  monkeypatch.setattr(checkpoint.os, "rename", crashing_rename)
  if failing_call == "save":
    monkeypatch.setattr(checkpoint.ocp.Checkpointer, "save",
                        lambda *a, **k: (_ for _ in ()).throw(SystemExit("simulated crash")))
  with pytest.raises(SystemExit):
    checkpoint.promote_final(tmp_path, new, {"model": new_model_config, "step": 2})
    raise SystemExit("promotion finished before the simulated crash")
  monkeypatch.undo()
  _, restored, metadata, _ = checkpoint.load_verified(tmp_path / "checkpoints/final")
  assert (metadata["step"] == 1 and _same(restored, old)) or (
      metadata["step"] == 2 and _same(restored, new))
  # The next promotion recovers and succeeds.
  _promote(tmp_path, 3)
  assert checkpoint.load_verified(tmp_path / "checkpoints/final")[2]["step"] == 3
  assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["final"]


def _damage_truncate(final: pathlib.Path) -> None:
  for f in final.rglob("*"):
    if f.is_file() and f.parent.name == "d":
      f.write_bytes(f.read_bytes()[:7])


def _damage_partial(final: pathlib.Path) -> None:
  (final / "_CHECKPOINT_METADATA").unlink()


def _damage_missing_variables(final: pathlib.Path) -> None:
  shutil.rmtree(final / "variables")


def _damage_foreign(final: pathlib.Path) -> None:
  shutil.rmtree(final)
  with checkpoint.ocp.StandardCheckpointer() as c:
    c.save(final, {"w": np.ones((3, 3), np.float32)})


def _damage_mismatched(final: pathlib.Path) -> None:
  """Weights of another architecture under this model config."""
  tmp = final.parent.parent / "other"
  model_config, _ = _variables(1)
  config = dict(model_config, dense=48)
  net = model.build(config)
  variables = jax.tree.map(np.asarray, net.init(jax.random.key(0), jnp.zeros((1, 28, 28))))
  checkpoint.promote_final(tmp, variables, {"model": config, "step": 1})
  shutil.rmtree(final / "variables")
  shutil.copytree(tmp / "checkpoints/final/variables", final / "variables")


def _damage_nan(final: pathlib.Path) -> None:
  model_config, variables = _variables(1)
  variables = jax.tree.map(lambda x: np.full_like(x, np.nan), variables)
  shutil.rmtree(final)
  checkpoint.promote_final(final.parent.parent, variables, {"model": model_config, "step": 1})


@pytest.mark.parametrize("damage", [_damage_truncate, _damage_partial, _damage_missing_variables,
                                    _damage_foreign, _damage_mismatched, _damage_nan],
                         ids=lambda f: f.__name__.removeprefix("_damage_"))
def test_bad_final_is_refused_with_exit_3(tmp_path, damage):
  _promote(tmp_path, 1)
  final = tmp_path / "checkpoints/final"
  damage(final)
  with pytest.raises(errors.CheckpointError):
    checkpoint.load_verified(final)
  image = ROOT / "test" / "3.jpg"
  result = run_module("mnist_flax.infer", "--i", str(image), "--checkpoint", str(final),
                      timeout=120)
  assert result.returncode == 3, result.stderr
  assert result.stdout == "" and "Traceback" not in result.stderr
  assert len(result.stderr.strip().splitlines()) == 1


def test_missing_final_says_how_to_train(tmp_path):
  for module, extra in (("mnist_flax.infer", ["--i", str(ROOT / "test" / "3.jpg")]),
                        ("mnist_flax.evaluate", [])):
    result = run_module(module, *extra, "--checkpoint", str(tmp_path / "nothing"), timeout=120)
    assert result.returncode == 3
    assert "python -m mnist_flax.main --config=configs/default.py" in result.stderr


# --- Killed at every point of a promotion ----------------------------------------------------

_KILL_DURING_PROMOTION = """
import os, signal, sys
import jax, jax.numpy as jnp, numpy as np
from mnist_flax import checkpoint, config as config_lib, integrity, model
workdir, point = sys.argv[1], sys.argv[2]
config = config_lib.load_config_file(sys.argv[3])
net = model.build(config.model.to_dict())
def promote(seed):
  variables = jax.tree.map(np.asarray, net.init(jax.random.key(seed), jnp.zeros((1, 28, 28))))
  checkpoint.promote_final(workdir, variables, {"model": config.model.to_dict(), "step": seed})
promote(1)
die = lambda: os.kill(os.getpid(), signal.SIGKILL)
real_rename, real_replace, renames = os.rename, os.replace, []
if point == "before_seal":
  integrity.seal = lambda folder: die()
elif point == "mid_seal":
  os.replace = lambda src, dst: die() if str(dst).endswith(integrity.MANIFEST) else real_replace(src, dst)
elif point.startswith("rename"):  # rename0, rename1: before that rename; rename2: after both.
  def rename(src, dst):
    if len(renames) == int(point[-1]):
      die()
    renames.append(dst)
    real_rename(src, dst)
    if len(renames) == int(point[-1]):
      die()
  checkpoint.os.rename = rename
elif point == "mid_rmtree":
  def rmtree(path):
    for root, dirs, files in os.walk(path):
      if files:
        os.unlink(os.path.join(root, files[0]))
        die()
  checkpoint.shutil.rmtree = rmtree
promote(2)
print("finished without being killed")
"""

_KILL_POINTS = ["before_seal", "mid_seal", "rename0", "rename1", "rename2", "mid_rmtree"]


def _listing(folder: pathlib.Path) -> list[tuple[str, int]]:
  return sorted((str(p.relative_to(folder)), p.stat().st_size) for p in folder.rglob("*"))


@pytest.mark.parametrize("point", _KILL_POINTS)
def test_promote_killed_at_any_point_reads_whole_writes_nothing_and_recovers(tmp_path, point):
  import subprocess
  import sys
  from mnist_flax import cache, integrity, predictor
  result = subprocess.run([sys.executable, "-c", _KILL_DURING_PROMOTION, str(tmp_path), point,
                           str(ROOT / "configs/test.py")], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
  assert result.returncode == -9, (result.stdout, result.stderr[-2000:])
  ckpt = tmp_path / "checkpoints"
  final = ckpt / "final"
  old, new = _variables(1)[1], _variables(2)[1]
  before = _listing(ckpt)
  # Readers (Orbax path and cache path) get the old or the new model, whole, and write nothing.
  _, restored, metadata, _ = checkpoint.load_verified(final)
  assert (metadata["step"], _same(restored, old if metadata["step"] == 1 else new)) in (
      (1, True), (2, True))
  os.environ[cache.ENV_VAR] = str(tmp_path / "cache")
  try:
    assert predictor.load_final(final)[2]["step"] == metadata["step"]
  finally:
    del os.environ[cache.ENV_VAR]
  assert _listing(ckpt) == before
  # The next promotion succeeds from the state the kill left (recovering by itself)...
  shutil.copytree(ckpt, tmp_path / "next" / "checkpoints", symlinks=True)
  _promote(tmp_path / "next", 3)
  assert sorted(p.name for p in (tmp_path / "next/checkpoints").iterdir()) == ["final"]
  assert checkpoint.load_verified(tmp_path / "next/checkpoints/final")[2]["step"] == 3
  # ...and a writer's recovery alone converges: only final, the same model a reader saw, and a fixed point.
  checkpoint.recover_final(ckpt)
  assert sorted(p.name for p in ckpt.iterdir()) == ["final"]
  integrity.verify(final)
  assert checkpoint.load_verified(final)[2]["step"] == metadata["step"]
  checkpoint.recover_final(ckpt)
  assert sorted(p.name for p in ckpt.iterdir()) == ["final"]


def test_promote_reader_during_the_swap_reads_the_new_one_and_leaves_the_swap_alone(tmp_path):
  from mnist_flax import integrity
  _promote(tmp_path, 1)
  ckpt = tmp_path / "checkpoints"
  shutil.copytree(ckpt / "final", ckpt / integrity.NEW)
  (ckpt / integrity.NEW / "metadata" / "metadata").write_text(
      (ckpt / "final" / "metadata" / "metadata").read_text().replace('"step": 1', '"step": 2'))
  integrity.seal(ckpt / integrity.NEW)
  os.rename(ckpt / "final", ckpt / integrity.OLD)  # The trainer is between its two renames.
  before = _listing(ckpt)
  assert checkpoint.load_verified(ckpt / "final")[2]["step"] == 2
  result = run_module("mnist_flax.infer", "--i", str(ROOT / "test/3.jpg"), "--checkpoint",
                      str(ckpt / "final"), timeout=120)
  assert result.returncode == 0, result.stderr
  assert _listing(ckpt) == before  # The trainer's next rename still finds what it left.

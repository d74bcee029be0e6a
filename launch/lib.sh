# launch/lib.sh: shell functions the launch scripts share. Sourced by local.sh, tpu_vm.sh and
# slurm.sbatch (after they set PROG, the name their messages start with); not a launcher itself.
#
#   source launch/lib.sh
#   take_dry_run "$@"; set -- "${rest_args[@]}"    # sets dry_run=0/1
#   main_args=("$@"); has_flag workdir || ...
#   fail 2 "what went wrong"
# shellcheck shell=bash
# dry_run and rest_args are set for the sourcing script; main_args is set by it.
# shellcheck disable=SC2034,SC2154

# fail CODE MESSAGE: prints "PROG: error: MESSAGE" on stderr and exits with CODE.
fail() {
  printf '%s: error: %s\n' "$PROG" "$2" >&2
  exit "$1"
}

# take_dry_run ARGS...: sets dry_run (1 if the first argument is --dry-run, else 0) and the array
# rest_args to the arguments without it. Only the first argument counts: later ones are main's.
take_dry_run() {
  dry_run=0
  if [[ "${1:-}" == "--dry-run" ]]; then
    dry_run=1
    shift
  fi
  rest_args=("$@")
}

# has_flag NAME: whether the array main_args holds --NAME=... or --NAME.
has_flag() {
  local arg
  for arg in "${main_args[@]}"; do
    if [[ "$arg" == "--$1" || "$arg" == "--$1="* ]]; then
      return 0
    fi
  done
  return 1
}

# Prints its arguments as one shell-quoted command line (readable quoting: 'a b', not a\ b).
quote_command() {
  local out="" arg
  for arg in "$@"; do
    if [[ "$arg" =~ ^[A-Za-z0-9_./:=,+@%-]+$ ]]; then
      out+="${out:+ }${arg}"
    else
      out+="${out:+ }'${arg//\'/\'\\\'\'}'"
    fi
  done
  printf '%s' "$out"
}

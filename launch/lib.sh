# launch/lib.sh: shell functions the launch scripts share. Sourced by local.sh, tpu_vm.sh and
# slurm.sbatch; not a launcher itself.
# shellcheck shell=bash

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

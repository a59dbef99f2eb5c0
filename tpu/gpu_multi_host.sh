#!/usr/bin/env bash
# jcnn on several GPU machines: one process per machine, each driving its local GPUs,
# joined by jax.distributed.initialize (jcnn reads JAX_COORDINATOR_ADDRESS,
# JAX_NUM_PROCESSES and JAX_PROCESS_ID).
#
#   HOSTS="gpu-a gpu-b" tpu/gpu_multi_host.sh [--dry-run] setup
#   HOSTS="gpu-a gpu-b" WORKDIR=/shared/runs/r1 tpu/gpu_multi_host.sh [--dry-run] run [args]
#
# setup: ships this checkout to every host (scp) and installs jcnn and jax[CUDA] in a
# virtualenv there. run: starts `jcnn train` on every host over ssh, process i on the
# i-th host, and waits for all; arguments after `run` are passed to `jcnn train`.
# Ctrl-C (or SIGTERM) on `run` sends SIGTERM to those jcnn processes over ssh: each saves
# a checkpoint and exits 0, and the script waits for them (a second Ctrl-C leaves at once).
# Variables (tpu/README.md explains each):
#   HOSTS          ssh names of the machines, the first one also coordinates (required)
#   COORDINATOR    host:port of process 0 as the others reach it (default: the first
#                  host, without its user@, and PORT; that name must resolve on every host)
#   PORT           the coordinator's port (default 12345)
#   SSH            the ssh command (default "ssh"; e.g. "ssh -p 2222 -i ~/.ssh/key")
#   SCP            the scp command (default "scp"; e.g. "scp -P 2222 -i ~/.ssh/key")
#   CUDA           the jax extra: cuda12 or cuda13 (default cuda12)
#   PYTHON         interpreter on the hosts, >= 3.11 (default python3.11)
#   REMOTE_DIR     where the sources go, under the hosts' home (default jcnn)
#   VENV           the virtualenv, under the hosts' home (default jcnn-venv)
#   FASHION_MNIST  1: apt-get install dataset-fashion-mnist on each host (default 1)
#   CONFIG         the config name or path, with :variant (default "default")
#   WORKDIR        the run directory, one that every host sees (required for run)
#   PARALLEL       jit | shard_map | pmap (default jit)
#   DTYPE          float32 | bfloat16 compute (default bfloat16)
#   DRY_RUN        1: print the commands instead of running them (same as --dry-run)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

take_dry_run "$@"  # --dry-run anywhere on the command line
set -- "${REST[@]+"${REST[@]}"}"
action="${1:-}"
shift || true
need HOSTS
read -ra host_list <<<"$HOSTS"
read -ra ssh <<<"${SSH:-ssh}"
read -ra scp <<<"${SCP:-scp}"
PYTHON="${PYTHON:-python3.11}"
REMOTE_DIR="${REMOTE_DIR:-jcnn}"
VENV="${VENV:-jcnn-venv}"
FASHION_MNIST="${FASHION_MNIST:-1}"
CUDA="${CUDA:-cuda12}"

case "$action" in
  setup)
    [[ $# -eq 0 ]] || die "unexpected arguments: $*"
    check_remote_dir
    archive="${TMPDIR:-/tmp}/jcnn-$$.tar.gz"
    archive_sources "$ROOT" "$archive"
    install="$(remote_install "jax[$CUDA]$JAX_RANGE")"
    for host in "${host_list[@]}"; do
      run "${scp[@]}" "$archive" "$host:jcnn.tar.gz"
      run "${ssh[@]}" "$host" "$install"
    done
    run rm -f "$archive"
    ;;
  run)
    need WORKDIR
    first="${host_list[0]##*@}"  # an ssh user@host names the machine host
    [[ "$first" != *:* || "$first" == \[* ]] || first="[$first]"  # an IPv6 address
    coordinator="${COORDINATOR:-$first:${PORT:-12345}}"
    train=(train --config="${CONFIG:-default}" --workdir="$WORKDIR"
      --config.parallel="${PARALLEL:-jit}" --config.dtype="${DTYPE:-bfloat16}" "$@")
    # What stops the run: SIGTERM to every process whose command line is this run's
    # `jcnn train ... --workdir=WORKDIR` ("[j]" keeps pkill off the shell that runs it).
    workdir_re="$(printf '%s' "$WORKDIR" | sed 's/[][\.^$*+?(){}|]/\\&/g')"
    stop="pkill -TERM -f -- $(quote "[j]cnn train .*--workdir=$workdir_re( |\$)")"
    pids=()
    wait_all() {
      local pid status=0
      for pid in ${pids[@]+"${pids[@]}"}; do
        wait "$pid" || status=1
      done
      return "$status"
    }
    # Ctrl-C reaches neither the background ssh sessions nor, as they have no terminal,
    # the remote processes: the trap sends them SIGTERM and waits for them to save.
    stop_all() {
      trap - INT TERM
      echo "$(basename "$0"): stopping: SIGTERM to jcnn on every host (each saves a" \
        "checkpoint and exits); waiting for them, Ctrl-C again to leave at once" >&2
      local host
      for host in "${host_list[@]}"; do
        run "${ssh[@]}" "$host" "$stop" || true
      done
      wait_all || exit 1
      exit "$1"
    }
    if [[ "$DRY_RUN" != 1 ]]; then
      trap 'stop_all 130' INT
      trap 'stop_all 143' TERM
    fi
    for i in "${!host_list[@]}"; do
      # `env` sets the variables, so a value that needs quotes still is one (not a command).
      env=(JAX_COORDINATOR_ADDRESS="$coordinator" JAX_NUM_PROCESSES="${#host_list[@]}"
        JAX_PROCESS_ID="$i")
      command="cd ~/$(quote "$REMOTE_DIR") && env $(quote "${env[@]}")"
      command+=" \$HOME/$(quote "$VENV")/bin/jcnn $(quote "${train[@]}")"
      if [[ "$DRY_RUN" == 1 ]]; then
        run "${ssh[@]}" "${host_list[$i]}" "$command"
      else
        run "${ssh[@]}" "${host_list[$i]}" "$command" &
        pids+=($!)
      fi
    done
    if [[ "$DRY_RUN" == 1 ]]; then
      echo "# on Ctrl-C or SIGTERM it then runs (and waits for the runs to save and exit):" >&2
      for host in "${host_list[@]}"; do
        run "${ssh[@]}" "$host" "$stop" >&2
      done
    fi
    wait_all || exit 1
    ;;
  *) die "usage: $(basename "$0") [--dry-run] setup|run [jcnn train arguments]" ;;
esac

#!/usr/bin/env bash
# jcnn on all the GPUs of one machine: one process drives every local GPU.
#
#   tpu/gpu_single_host.sh [--dry-run] setup
#   WORKDIR=runs/gpu tpu/gpu_single_host.sh [--dry-run] run [--config.num_epochs=30 ...]
#
# setup: `make install` (.venv with jcnn), then jax with CUDA into it, then `make data`.
# run: `jcnn train` from .venv on the GPUs CUDA_VISIBLE_DEVICES shows (default: all);
# arguments after `run` are passed to `jcnn train`.
# Variables (tpu/README.md explains each):
#   CUDA      the jax extra: cuda12 or cuda13, after the installed driver (default cuda12)
#   CONFIG    the config name or path, with :variant (default "default")
#   WORKDIR   the run directory (default runs/gpu)
#   PARALLEL  jit | shard_map | pmap (default jit)
#   DTYPE     float32 | bfloat16 compute (default bfloat16; float32 before Ampere GPUs)
#   DRY_RUN   1: print the commands instead of running them (same as --dry-run)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

take_dry_run "$@"  # --dry-run anywhere on the command line
set -- "${REST[@]+"${REST[@]}"}"
action="${1:-}"
shift || true
CUDA="${CUDA:-cuda12}"
case "$action" in
  setup)
    [[ $# -eq 0 ]] || die "unexpected arguments: $*"
    run make -C "$ROOT" install
    run "$ROOT/.venv/bin/pip" install -q "jax[$CUDA]$JAX_RANGE"
    run make -C "$ROOT" data
    ;;
  run)
    run "$ROOT/.venv/bin/jcnn" train --config="${CONFIG:-default}" \
      --workdir="${WORKDIR:-runs/gpu}" --config.parallel="${PARALLEL:-jit}" \
      --config.dtype="${DTYPE:-bfloat16}" "$@"
    ;;
  *) die "usage: $(basename "$0") [--dry-run] setup|run [jcnn train arguments]" ;;
esac

#!/usr/bin/env bash
# Launches the same `jcnn train` on every worker of a Cloud TPU VM (after tpu/setup.sh).
#
#   TPU_NAME=my-tpu ZONE=us-central2-b WORKDIR=/mnt/shared/runs/r1 tpu/run.sh [--dry-run] \
#       [--config.num_epochs=30 ...]
#
# Every worker runs one process (`--config.distributed=True`: jax.distributed.initialize
# finds the other workers from the TPU metadata); process 0 prints and writes the logs.
# Arguments after the options are passed to `jcnn train` (config overrides).
# Variables (tpu/README.md explains each):
#   TPU_NAME    the TPU VM (required)
#   ZONE        its zone (required)
#   PROJECT     its Google Cloud project (default: gcloud's configured project)
#   CONFIG      the config name or path, with :variant (default "default")
#   WORKDIR     the run directory; with several workers one directory they all see
#               (default runs/tpu under REMOTE_DIR, fine for a single-worker TPU VM)
#   PARALLEL    jit | shard_map | pmap (default jit)
#   DTYPE       float32 | bfloat16 compute (default bfloat16, the TPU's native matmul type)
#   REMOTE_DIR  where setup.sh put the sources, under the home (default jcnn)
#   VENV        the virtualenv setup.sh made, under the home (default jcnn-venv)
#   DRY_RUN     1: print the command instead of running it (same as --dry-run)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

take_dry_run "$@"  # --dry-run anywhere on the command line
set -- "${REST[@]+"${REST[@]}"}"
need TPU_NAME ZONE
CONFIG="${CONFIG:-default}"
WORKDIR="${WORKDIR:-runs/tpu}"
PARALLEL="${PARALLEL:-jit}"
DTYPE="${DTYPE:-bfloat16}"
REMOTE_DIR="${REMOTE_DIR:-jcnn}"
VENV="${VENV:-jcnn-venv}"
where=(--zone="$ZONE")
[[ -z "${PROJECT:-}" ]] || where+=(--project="$PROJECT")

train=(train --config="$CONFIG" --workdir="$WORKDIR" --config.parallel="$PARALLEL"
  --config.dtype="$DTYPE" --config.distributed=True "$@")
# $HOME stays unquoted so that the worker's shell expands it; VENV is quoted.
command="cd ~/$(quote "$REMOTE_DIR") && \$HOME/$(quote "$VENV")/bin/jcnn $(quote "${train[@]}")"
run gcloud compute tpus tpu-vm ssh "$TPU_NAME" --worker=all "${where[@]}" --command="$command"

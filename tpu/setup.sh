#!/usr/bin/env bash
# Installs jcnn and JAX for TPU on every worker of a Cloud TPU VM.
#
#   TPU_NAME=my-tpu ZONE=us-central2-b tpu/setup.sh [--dry-run]
#
# Ships this checkout to all workers (gcloud ... scp --worker=all), then on each one
# creates a virtualenv with jcnn (editable) and jax[tpu], and installs Fashion-MNIST.
# Variables (tpu/README.md explains each):
#   TPU_NAME       the TPU VM (required)
#   ZONE           its zone (required)
#   PROJECT        its Google Cloud project (default: gcloud's configured project)
#   PYTHON         interpreter on the workers, >= 3.11 (default python3.11; apt-installed if absent)
#   REMOTE_DIR     where the sources go, under the workers' home (default jcnn)
#   VENV           the virtualenv, under the workers' home (default jcnn-venv)
#   JAX_REQ        the JAX requirement (default "jax[tpu]>=0.10,<0.13", jcnn's range)
#   FASHION_MNIST  1: apt-get install dataset-fashion-mnist on each worker (default 1)
#   DRY_RUN        1: print the commands instead of running them (same as --dry-run)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

take_dry_run "$@"  # --dry-run anywhere on the command line
set -- "${REST[@]+"${REST[@]}"}"
[[ $# -eq 0 ]] || die "unexpected arguments: $*"
need TPU_NAME ZONE
PYTHON="${PYTHON:-python3.11}"
REMOTE_DIR="${REMOTE_DIR:-jcnn}"
VENV="${VENV:-jcnn-venv}"
check_remote_dir
JAX_REQ="${JAX_REQ:-jax[tpu]$JAX_RANGE}"
FASHION_MNIST="${FASHION_MNIST:-1}"
where=(--zone="$ZONE")
[[ -z "${PROJECT:-}" ]] || where+=(--project="$PROJECT")

archive="${TMPDIR:-/tmp}/jcnn-$$.tar.gz"
archive_sources "$ROOT" "$archive"
run gcloud compute tpus tpu-vm scp "$archive" "$TPU_NAME:jcnn.tar.gz" --worker=all "${where[@]}"
run rm -f "$archive"
run gcloud compute tpus tpu-vm ssh "$TPU_NAME" --worker=all "${where[@]}" \
  --command="$(remote_install "$JAX_REQ")"

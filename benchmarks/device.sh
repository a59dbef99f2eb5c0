#!/usr/bin/env bash
# One short, prepared measurement run for a lent GPU machine (about 7 minutes on
# an H200 at most: the step timeouts below add up to 420 s). It installs
# nothing; jcnn runs from this working tree under the machine's python3 (JAX with
# CUDA, Flax, Optax, Orbax, tqdm and matplotlib are on the H200 image;
# ml_collections is not and travels as a wheel). Fashion-MNIST is read from
# $JCNN_DATA_DIR (default: data/fashion-mnist in this tree). Before the call, here:
#
#   mkdir -p data/fashion-mnist && cp /usr/share/datasets/fashion-mnist/*.gz data/fashion-mnist/
#   echo /.whl/ >> .git/info/exclude
#   pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl ml_collections==1.1.0
#
# then run, carrying ["data", ".whl"]:
#
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl \
#     && export PYTHONPATH=/tmp/site && OUT=$OUT bash benchmarks/device.sh
#
#   PYTHON=.venv/bin/python bash benchmarks/device.sh --dry-run  # here, on CPU, tiny
#                                        # shapes: checks the script (1.5 min on 2 cores)
#
# Writes 7 files to $OUT (default: device-results/), each step's also printed:
# machine.txt (versions, GPU); resnet50.json: ResNet-50 bf16 train throughput at
# batch 256 and its MFU against the datasheet peak and the measured bf16 matmul
# rate (benchmarks/device.py); resnet20_f32.json, resnet20_bf16.json: the
# resnet20 config's train step (jcnn bench); resnet20_run.log, resnet20_evals.jsonl
# and resnet20_run_time.json: a 15-epoch resnet20 run on Fashion-MNIST, its
# per-epoch test accuracy and wall time (time to 93% ~ wall time x the first
# epoch >= 93% / epochs, evaluation being a small part of each epoch). A step that
# fails or runs out of time prints its status and the next step still runs.
set -uo pipefail
cd "$(dirname "$0")/.." || exit
out=${OUT:-device-results}
mkdir -p "$out"
py=${PYTHON:-python3}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
export JCNN_DATA_DIR=${JCNN_DATA_DIR:-$PWD/data/fashion-mnist}
export PYTHONUNBUFFERED=1
jcnn=("$py" -m jcnn.cli)
workdir=$(mktemp -d)/resnet20_run # the Orbax tree stays off $OUT

if [[ ${1:-} == --dry-run ]]; then
  r50=(--model resnet18 --size 32 --batch 4 --steps 1)
  bench=(--config=resnet20:smoke --steps 1)
  run=(--config=resnet20:smoke)
  backend=cpu
else
  export JAX_PLATFORMS=cuda # fail at once rather than fall back to the CPU
  r50=(--model resnet50 --size 224 --batch 256 --steps 30)
  bench=(--config=resnet20 --steps 200)
  run=(--config=resnet20 --config.num_epochs=15 --config.progress=False)
  backend=gpu
fi

step() { # step NAME SECONDS COMMAND...: run it under a timeout; report a failure, go on
  local name=$1 seconds=$2
  shift 2
  timeout "$seconds" "$@"
  local rc=$?
  ((rc == 0)) || echo "device.sh: step $name failed (exit $rc$( ((rc == 124)) && echo ", timed out after ${seconds}s"))" >&2
  return 0
}

{
  date -u +%FT%TZ
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
  "$py" - "$backend" <<'EOF'
import sys
import flax, jax, optax, orbax.checkpoint
print("python", sys.version.split()[0], "jax", jax.__version__, "flax", flax.__version__,
      "optax", optax.__version__, "orbax", orbax.checkpoint.__version__)
print("devices", jax.devices())
import ml_collections, tqdm  # jcnn's other imports; ml_collections travels as a wheel
assert jax.default_backend() == sys.argv[1], f"backend {jax.default_backend()}, not {sys.argv[1]}"
EOF
} 2>&1 | tee "$out/machine.txt"
if [[ ${PIPESTATUS[0]} -ne 0 ]]; then
  echo "device.sh: the preflight failed (see machine.txt); nothing else runs" >&2
  exit 1
fi

step resnet50 150 "$py" benchmarks/device.py "${r50[@]}" | tee "$out/resnet50.json"
step resnet20_f32 60 "${jcnn[@]}" bench "${bench[@]}" | tee "$out/resnet20_f32.json"
step resnet20_bf16 60 "${jcnn[@]}" bench "${bench[@]}" --config.dtype=bfloat16 |
  tee "$out/resnet20_bf16.json"

start=$(date +%s)
step resnet20_run 150 "${jcnn[@]}" train "${run[@]}" --workdir="$workdir" >"$out/resnet20_run.log" 2>&1
tail -n 3 "$out/resnet20_run.log"
echo "{\"resnet20_run_wall_s\": $(($(date +%s) - start))}" | tee "$out/resnet20_run_time.json"
grep test_accuracy "$workdir/metrics.jsonl" | tee "$out/resnet20_evals.jsonl"
rm -rf "$(dirname "$workdir")"

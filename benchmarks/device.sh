#!/usr/bin/env bash
# One short, prepared measurement run for a lent GPU machine (under 8 minutes on
# an H200). It installs nothing: JAX with CUDA, Flax and Optax must be there;
# jcnn runs from this working tree. Fashion-MNIST is read from $JCNN_DATA_DIR
# (default: data/fashion-mnist in this tree; copy the four .gz files from
# /usr/share/datasets/fashion-mnist there and carry the folder along).
#
#   bash benchmarks/device.sh            # results in $OUT (default: device-results/)
#   bash benchmarks/device.sh --dry-run  # CPU, tiny shapes: checks the script itself
#
# Prints and writes: ResNet-50 bf16 train throughput at batch 256 and its MFU
# (benchmarks/device.py), the resnet20 config's train step in float32 and bf16
# (jcnn bench), and a resnet20 run on Fashion-MNIST with its per-epoch test
# accuracy and wall time (time to 93% ~ wall time x the first epoch >= 93% /
# epochs, since evaluation is a small part of each epoch).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-device-results}
mkdir -p "$out"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
export JCNN_DATA_DIR=${JCNN_DATA_DIR:-$PWD/data/fashion-mnist}
jcnn=(python -m jcnn.cli)

if [[ ${1:-} == --dry-run ]]; then
  r50=(--model resnet18 --size 32 --batch 4 --steps 1)
  bench=(--config=resnet20:smoke --steps 1)
  run=(--config=resnet20:smoke)
else
  r50=(--model resnet50 --size 224 --batch 256 --steps 20)
  bench=(--config=resnet20 --steps 50)
  run=(--config=resnet20 --config.num_epochs=15 --config.progress=False)
fi

{
  date -u +%FT%TZ
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
  python -c 'import jax; print("jax", jax.__version__, jax.devices())'
} | tee "$out/machine.txt"

timeout 300 python benchmarks/device.py "${r50[@]}" | tee "$out/resnet50.json"
timeout 120 "${jcnn[@]}" bench "${bench[@]}" | tee "$out/resnet20_f32.json"
timeout 120 "${jcnn[@]}" bench "${bench[@]}" --config.dtype=bfloat16 | tee "$out/resnet20_bf16.json"

rm -rf "$out/resnet20_run"
start=$(date +%s)
timeout 240 "${jcnn[@]}" train "${run[@]}" --workdir="$out/resnet20_run" > "$out/resnet20_run.log" 2>&1
echo "{\"resnet20_run_wall_s\": $(($(date +%s) - start))}" | tee "$out/resnet20_run_time.json"
grep test_accuracy "$out/resnet20_run/metrics.jsonl" | tee "$out/resnet20_evals.jsonl"

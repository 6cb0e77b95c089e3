#!/usr/bin/env bash
# `make gpu-check` on a lent GPU machine, from a bare image: the device tool runs this with
#   carry [".devsite", ".devdata"]   (written here first by `make device-bundle`)
# Extra arguments go to bench.perf.gpu_check (e.g. --n 200). Logs and perf results land in $OUT.
set -uo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD/.devsite:$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY="${PYTHON:-python3}"
out="${OUT:-results/device}"
mkdir -p "$out"
test -d .devsite && test -f .devdata/cifar10/test.npz || { echo "device_check: run 'make device-bundle' and carry .devsite .devdata" >&2; exit 2; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | tee "$out/gpu.txt"
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda available:', torch.cuda.is_available())" | tee -a "$out/gpu.txt"
"$PY" -m symbench.bench.perf.gpu_check --data-dir .devdata "$@" 2>&1 | tee "$out/gpu_check.log"
rc=${PIPESTATUS[0]}
cp bench/perf/results.jsonl "$out/perf_results.jsonl"
echo "gpu_check exit code $rc (0 pass, 1 a check failed, 2 no CUDA)"
exit "$rc"

#!/usr/bin/env bash
# What does this machine have for graphopt's TensorRT backend? One short report, then (only
# where TensorRT and a GPU are both usable) the TensorRT tests. Safe to run anywhere; changes
# nothing on the machine (no installs, no GPU settings).
#
#   bash benchmarks/device_check.sh            # report + TensorRT tests (about a minute)
#   bash benchmarks/device_check.sh --report   # report only
#   bash benchmarks/device_check.sh --engines  # report + tests + benchmarks/trt_engines.py
#                                              #   on common_det (fp32/fp16/int8, ~2-5 min)
set -uo pipefail
cd "$(dirname "$0")/.."
mode=${1:-}
py=${PYTHON:-python}

echo "== machine"
uname -srm
nproc 2>/dev/null | sed 's/^/cpus: /'
echo "== nvidia-smi"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv 2>&1
  nvidia-smi 2>&1 | head -n 4 | tail -n 2
else
  echo "nvidia-smi: not found"
fi
echo "== python"
$py -V
$py -m pip list 2>/dev/null | grep -iE "^(tensorrt|nvidia-|cuda|onnx|onnxruntime|numpy|torch|polygraphy)" || true
echo "== tensorrt"
$py - <<'PY'
import importlib
try:
    trt = importlib.import_module("tensorrt")
    print("import tensorrt: ok, version", trt.__version__)
except Exception as e:  # report whatever goes wrong
    print("import tensorrt: FAILED:", type(e).__name__, e)
try:
    from graphopt.backends.trt_runtime import cuda_device_count
    count, why = cuda_device_count()
    print("CUDA devices (driver API):", count, why)
except Exception as e:
    print("graphopt import failed:", type(e).__name__, e)
PY
[ "$mode" = "--report" ] && exit 0

echo "== TensorRT tests (skipped with a reason where TensorRT or the GPU is missing)"
$py -m pytest -q -rs -p no:cacheprovider tests/test_trt_backend.py \
  -k "symbol or cuda_device or real_build or real_qdq" 2>&1 | tail -n 8
if [ "$mode" = "--engines" ]; then
  echo "== benchmarks/trt_engines.py (common_det)"
  $py benchmarks/trt_engines.py --models common_det --runs 30 --warmup 5 --out "${OUT:-/tmp}/trt_engines.json"
fi

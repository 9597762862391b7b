#!/usr/bin/env bash
# Check, without a GPU and without TensorRT's libraries, that every TensorRT Python symbol
# graphopt's backend uses (graphopt/backends/tensorrt.py TRT_SYMBOLS) exists in real TensorRT
# Python bindings, for each version given (default: 10.16.1.11 and 11.4.0.106).
#
# How: PyPI carries the real bindings wheels (tensorrt-cu12-bindings, ~1.3 MB) but not the
# libraries (tensorrt-cu12-libs is a stub that downloads from NVIDIA's own index). The bindings'
# tensorrt.so links only nine C entry points of libnvinfer / libnvonnxparser / libnvinfer_plugin
# (createInferBuilder_INTERNAL, ...). This script compiles stand-ins for those nine (each returns
# NULL), so `import tensorrt` works and its classes, enums and members can be inspected; nothing
# can be built or run. Then it runs, against it, the symbol test of tests/test_trt_backend.py and
# the test that graphopt's calibrator subclasses the real IInt8EntropyCalibrator2 (10.x).
#
# Usage: bash benchmarks/trt_symbols_offline.sh [VERSION ...]   (needs pip, unzip or python, gcc)
set -euo pipefail
cd "$(dirname "$0")/.."
versions=("$@")
[ ${#versions[@]} -eq 0 ] && versions=(10.16.1.11 11.4.0.106)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/stub.c" <<'C'
void *createInferBuilder_INTERNAL(void *l, int v) { return 0; }
void *createInferRefitter_INTERNAL(void *e, void *l, int v) { return 0; }
void *createInferRuntime_INTERNAL(void *l, int v) { return 0; }
void *createNvOnnxParserRefitter_INTERNAL(void *r, void *l, int v) { return 0; }
void *createNvOnnxParser_INTERNAL(void *n, void *l, int v) { return 0; }
void *getBuilderPluginRegistry(int e) { return 0; }
int getNvOnnxParserVersion(void) { return 0; }
void *getPluginRegistry(void) { return 0; }
int initLibNvInferPlugins(void *l, const char *ns) { return 0; }
C
status=0
for v in "${versions[@]}"; do
  major=${v%%.*}
  dir="$work/$v"
  mkdir -p "$dir/lib" "$dir/py"
  python -m pip download -q --no-deps --only-binary=:all: -d "$dir" "tensorrt-cu12-bindings==$v"
  python -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])" "$dir"/tensorrt_cu12_bindings-*.whl "$dir/py"
  mv "$dir/py/tensorrt_bindings" "$dir/py/tensorrt"
  for lib in nvinfer nvonnxparser nvinfer_plugin; do
    gcc -shared -fPIC -o "$dir/lib/lib$lib.so.$major" "$work/stub.c"
  done
  echo "== TensorRT bindings $v"
  LD_LIBRARY_PATH="$dir/lib" PYTHONPATH="$dir/py:$PWD" \
    python -m pytest -q -p no:cacheprovider tests/test_trt_backend.py \
    -k "test_every_tensorrt_symbol_the_backend_uses_exists or test_calibrator_subclasses_the_real_base" \
    -rs || status=1
done
exit $status

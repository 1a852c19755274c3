#!/usr/bin/env bash
# On a machine with a CUDA GPU, torch and CuPy (no FFmpeg or build needed: the compiled core is not loaded):
# the CUDA twins against the CPU twins on the saved tensor fixtures, then the GPU figures of the patch ops,
# then (where nvcc is installed) the standalone saliency + top-K kernel microbenchmark.
#   bash bench/gpu_checks.sh            (from the repository root; prints the test summary and the tables)
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/python${PYTHONPATH:+:$PYTHONPATH}"
python3 -c "import torch, cupy; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name(0), 'CuPy', cupy.__version__)"
python3 -m pytest -q -p no:cacheprovider -m cuda tests/ops
python3 bench/ops_select.py
if command -v nvcc >/dev/null; then
  mkdir -p build && nvcc -std=c++17 -O3 -arch=sm_90 --fmad=false bench/cuda/bench_select.cu -o build/bench_select &&
    python3 bench/cuda/make_select_case.py build/select_case && build/bench_select build/select_case
else
  echo "nvcc not found: bench/cuda/bench_select.cu not built"
fi

#!/usr/bin/env bash
# Installs everything codecprim needs on a fresh Debian/Ubuntu machine with Python 3.9+ and a C++ compiler:
# FFmpeg's libraries and CLI, PyTorch (CPU), and codecprim itself. `setup.sh test` adds the test oracles,
# among them PyAV built from source against the same system FFmpeg, so FFmpeg's own export is the reference.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
packages="ffmpeg pkg-config libavcodec-dev libavformat-dev libavutil-dev libavfilter-dev libswscale-dev"
if [ "$extras" = "test" ]; then
  # PyAV's source build links every FFmpeg library.
  packages="$packages libavdevice-dev libswresample-dev"
fi
missing=""
for p in $packages; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi

PIP="python3 -m pip install -q --disable-pip-version-check"
$PIP "torch==2.13.0"
if [ "$extras" = "test" ]; then
  # PyAV 12.3 supports FFmpeg 5.1; built here it decodes with exactly codecprim's libavcodec.
  $PIP "cython>=3,<4"
  $PIP --no-build-isolation --no-binary av "av==12.3.0"
  $PIP ".[test]"
  # nvcc and the CUDA headers from NVIDIA's wheels (no GPU or driver needed), so the tests compile every
  # cuda/*.cu kernel and the kernel microbenchmark on machines without a GPU; .ci/run puts it on PATH.
  if [ ! -x build/cuda-toolkit/nvidia/cu13/bin/nvcc ]; then
    $PIP --target build/cuda-toolkit "nvidia-cuda-nvcc==13.5.37" "nvidia-cuda-crt==13.5.37" \
      "nvidia-cuda-runtime==13.5.37" "nvidia-cuda-cccl==13.3.5.0.6"
  fi
else
  $PIP ".[models,cli]"
fi

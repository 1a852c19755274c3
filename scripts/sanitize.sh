#!/usr/bin/env bash
# The core and ops tests plus the mutation test against an extension built with ASan + UBSan (+ LSan at exit).
# Use: bash scripts/sanitize.sh [--quick] [more pytest arguments]
#      bash scripts/sanitize.sh --only TEST_PATH... (just these, e.g. to rerun a failure)
# Passes only when pytest passes and no sanitizer reported anything: no memory error, no undefined behaviour,
# no leak. --quick runs a ~30 s subset (open, decode with residuals, MV-only, seeks, bad input).
#
# Python runs through a small launcher linked with the ASan runtime (built here), so the runtime comes first
# in every Python process, the mutation test's worker processes included, while the tools the tests start
# (the ffmpeg CLI, cmake, compilers) run unsanitized: an LD_PRELOAD would be inherited by all of them.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=full
if [ "${1:-}" = "--quick" ] || [ "${1:-}" = "--only" ]; then mode="${1#--}"; shift; fi

build=build/sanitize
python="$(python3 -c 'import sys; print(sys.executable)')"
cmake -S . -B "$build" -DSKBUILD=ON -DSKBUILD_PROJECT_NAME=codecprim -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCODECPRIM_SANITIZE="address;undefined" -DCODECPRIM_BENCH=OFF -DPython_EXECUTABLE="$python" \
  -Dpybind11_DIR="$("$python" -m pybind11 --cmakedir)" >/dev/null
cmake --build "$build" --target _core -j2

# The package as it is in the worktree, with the sanitized extension in place of the normal one.
rm -rf "$build/pkg"
mkdir -p "$build/pkg" "$build/bin" "$build/logs"
cp -r python/codecprim "$build/pkg/"
rm -f "$build/pkg/codecprim"/_core*.so
cp "$build"/_core*.so "$build/pkg/codecprim/"
cp -r cuda "$build/pkg/codecprim/cuda"  # as the wheel installs them (the ops' host emulation compiles them)

launcher="$build/bin/python3"
if [ ! -x "$launcher" ] || [ "$0" -nt "$launcher" ]; then
  printf '#include <Python.h>\nint main(int argc, char** argv) { return Py_BytesMain(argc, argv); }\n' > "$build/launcher.c"
  # shellcheck disable=SC2046
  gcc -fsanitize=address,undefined $("$python"-config --includes) "$build/launcher.c" -o "$launcher" \
    $("$python"-config --embed --ldflags)
fi

# Suppressed: objects the interpreter and torch still hold at exit (numpy's and torch's import-time tables,
# code objects, interned strings). libpython and torch are built without frame pointers, so their leak stacks
# end at the allocating function; each line names one of those, never a frame of codecprim, pybind11 or
# FFmpeg, so a native allocation made by the core is always reported. (A Python object leaked by a reference
# count in the bindings would look the same as the interpreter's; tests/core/test_memory.py covers that.)
cat > "$build/lsan.supp" <<'EOF'
leak:gc_alloc
leak:_PyObject_New
leak:PyFloat_FromDouble
leak:PyUnicode_New
leak:resize_compact
leak:libtorch_python.so
leak:libtorch_cpu.so
leak:libc10.so
EOF

export PYTHONHOME="$("$python" -c 'import sys; print(sys.prefix)')"
export PYTHONPATH="$PWD/$build/pkg"
# Every object through malloc: pymalloc arenas are mmap(2)ed, so LSan would not scan them and would report
# every buffer that only a Python object points to.
export PYTHONMALLOC=malloc
export ASAN_OPTIONS="halt_on_error=1:abort_on_error=1:detect_leaks=1:check_initialization_order=1:detect_stack_use_after_return=0:log_path=$PWD/$build/logs/asan"
export LSAN_OPTIONS="suppressions=$PWD/$build/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1:log_path=$PWD/$build/logs/ubsan"
rm -f "$build"/logs/*

if [ "$mode" = only ]; then
  tests=()
elif [ "$mode" = quick ]; then
  tests=(tests/core/test_reader_api.py tests/core/test_mv_only.py tests/core/test_frames_at.py
         tests/core/test_bad_input.py tests/core/test_fuzz.py tests/fuzz)
else
  # test_bench_stages builds and runs the unsanitized C++ benchmark: nothing of the extension to check there.
  # test_memory_is_flat_in_video_length bounds RSS growth by a few MB, which ASan's quarantine and shadow
  # memory exceed by design; LeakSanitizer checks the same thing exactly.
  tests=(tests/core tests/ops tests/fuzz --ignore=tests/core/test_bench_stages.py
         --deselect tests/core/test_memory.py::test_memory_is_flat_in_video_length)
fi
start=$(date +%s)
set +e
"$launcher" -m pytest -q -p no:cacheprovider "${tests[@]}" "$@"
status=$?
set -e
echo "sanitized run: $(( $(date +%s) - start )) s, pytest exit status $status"
# A report is an error, a leak or a UBSan finding; a log holding only warnings (ASan warns once about the
# ucontext fibers of tests/host_cuda.py) is shown but does not fail the run.
reports=$(grep -l -E "ERROR: |runtime error|SUMMARY: " "$build"/logs/* 2>/dev/null || true)
if compgen -G "$build/logs/*" >/dev/null; then
  echo "sanitizer logs (in $build/logs):"
  head -n 60 "$build"/logs/*
fi
if [ -n "$reports" ]; then
  echo "sanitizer reports: $reports"
  exit 1
fi
echo "no sanitizer report"
exit "$status"

"""Every CUDA kernel compiles with nvcc, so kernels cannot rot unseen on machines without a GPU; so does the
standalone kernel microbenchmark (bench/cuda/bench_select.cu), which reads its case and must refuse cleanly without
a GPU."""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
KERNELS = sorted((ROOT / "cuda").glob("*.cu"))
SELECT_BENCH = ROOT / "bench" / "cuda" / "bench_select.cu"
MAKE_CASE = ROOT / "bench" / "cuda" / "make_select_case.py"

# nvcc from PATH, else the one `scripts/setup.sh test` installs from NVIDIA's wheels (no GPU needed to compile).
NVCC = shutil.which("nvcc") or shutil.which("nvcc", path=str(ROOT / "build" / "cuda-toolkit" / "nvidia" / "cu13" / "bin"))
needs_nvcc = pytest.mark.skipif(NVCC is None, reason="nvcc (CUDA toolkit) is not installed")


def test_kernel_folder_is_not_empty():
    assert KERNELS, "cuda/ holds no kernels"


@needs_nvcc
@pytest.mark.parametrize("source", KERNELS, ids=[k.name for k in KERNELS])
def test_kernel_compiles_with_nvcc(source, tmp_path):
    result = subprocess.run(
        [NVCC, "-std=c++17", "-arch=sm_90", "-c", str(source), "-o", str(tmp_path / "k.o"), f"-I{source.parent}"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.fixture(scope="module")
def select_bench(tmp_path_factory):
    """bench_select compiled and linked with the command of the README and bench/gpu_checks.sh."""
    exe = tmp_path_factory.mktemp("bench") / "bench_select"
    result = subprocess.run(
        [NVCC, "-std=c++17", "-O3", "-arch=sm_90", "--fmad=false", str(SELECT_BENCH), "-o", str(exe)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return exe


@needs_nvcc
def test_select_bench_compiles_and_links(select_bench):
    assert select_bench.is_file()


@pytest.fixture(scope="module")
def select_case(tmp_path_factory):
    """The case the benchmark runs: inputs and expected outputs from the package's CPU twins."""
    out = tmp_path_factory.mktemp("select_case")
    result = subprocess.run([sys.executable, str(MAKE_CASE), str(out)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return out


@needs_nvcc
def test_select_bench_reads_the_case_then_needs_a_gpu(select_bench, select_case):
    result = subprocess.run([str(select_bench), str(select_case), "--batch", "1", "--repeats", "1"],
                            capture_output=True, text=True, timeout=300)
    # the case is read (every array, shapes cross-checked) before the device is looked for
    assert f"case: {select_case}: 64 frames 640x360, 16x16 grid, 54560 blocks, 2 I-frames, K = 2048" in result.stdout
    if result.returncode != 2:
        import torch

        if torch.cuda.is_available():
            pytest.skip(f"a CUDA device is present, so the benchmark ran (exit {result.returncode})")
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert "no CUDA device" in result.stderr


@needs_nvcc
def test_select_bench_rejects_a_missing_or_malformed_case(select_bench, select_case, tmp_path):
    missing = subprocess.run([str(select_bench), str(tmp_path / "none")], capture_output=True, text=True, timeout=60)
    assert missing.returncode == 4 and "none/residual.npy: cannot be opened" in missing.stderr
    broken = tmp_path / "broken"
    shutil.copytree(select_case, broken)
    np.save(broken / "keys.npy", np.load(broken / "keys.npy").astype(np.int32))  # wrong dtype
    result = subprocess.run([str(select_bench), str(broken)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 4 and "keys.npy: expected dtype <i8" in result.stderr
    np.save(broken / "keys.npy", np.load(select_case / "keys.npy")[:-1])  # one key short
    result = subprocess.run([str(select_bench), str(broken)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 4 and "shapes do not fit one clip" in result.stderr


@needs_nvcc
@pytest.mark.parametrize("args", [["--batch", "0"], ["--repeats"], ["--frames", "8"]],
                         ids=["batch0", "no-value", "unknown"])
def test_select_bench_rejects_bad_arguments(select_bench, args):
    result = subprocess.run([str(select_bench), *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 64
    assert "usage:" in result.stderr

"""Every CUDA kernel compiles with nvcc, so kernels cannot rot unseen on machines without a GPU; so does the
standalone kernel microbenchmark (bench/cuda/bench_select.cu), which must refuse cleanly without a GPU."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KERNELS = sorted((ROOT / "cuda").glob("*.cu"))
SELECT_BENCH = ROOT / "bench" / "cuda" / "bench_select.cu"

needs_nvcc = pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc (CUDA toolkit) is not installed")


def test_kernel_folder_is_not_empty():
    assert KERNELS, "cuda/ holds no kernels"


@needs_nvcc
@pytest.mark.parametrize("source", KERNELS, ids=[k.name for k in KERNELS])
def test_kernel_compiles_with_nvcc(source, tmp_path):
    result = subprocess.run(
        ["nvcc", "-std=c++17", "-arch=sm_90", "-c", str(source), "-o", str(tmp_path / "k.o"), f"-I{source.parent}"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.fixture(scope="module")
def select_bench(tmp_path_factory):
    """bench_select compiled and linked with the command of the README and bench/gpu_checks.sh."""
    exe = tmp_path_factory.mktemp("bench") / "bench_select"
    result = subprocess.run(
        ["nvcc", "-std=c++17", "-O3", "-arch=sm_90", "--fmad=false", str(SELECT_BENCH), "-o", str(exe)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return exe


@needs_nvcc
def test_select_bench_compiles_and_links(select_bench):
    assert select_bench.is_file()


@needs_nvcc
def test_select_bench_without_gpu_exits_2(select_bench):
    result = subprocess.run([str(select_bench), "--batch", "1", "--repeats", "1"],
                            capture_output=True, text=True, timeout=300)
    if result.returncode != 2:
        import torch

        if torch.cuda.is_available():
            pytest.skip(f"a CUDA device is present, so the benchmark ran (exit {result.returncode})")
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert "no CUDA device" in result.stderr
    assert result.stdout == ""


@needs_nvcc
@pytest.mark.parametrize("args", [["--batch", "0"], ["--repeats"], ["--frames", "8"]],
                         ids=["batch0", "no-value", "unknown"])
def test_select_bench_rejects_bad_arguments(select_bench, args):
    result = subprocess.run([str(select_bench), *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 64
    assert "usage:" in result.stderr

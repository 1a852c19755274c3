"""Δ-encoder throughput in P-frames/s (inference), for the paper and compact presets.

Input per P-frame: a (S, S, 2) float32 motion field in pixels and an (S, S) int16 luma residual, the
shapes codecprim.data.cope produces at delta_size S. Batches of ``--batch`` P-frames; every timed
batch is synchronised on CUDA.

    PYTHONPATH=python python bench/delta_throughput.py --device cuda --dtype bf16
    PYTHONPATH=python python bench/delta_throughput.py --batch 4 --repeats 2      # CPU
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from codecprim.models.delta_encoder import DeltaEncoder, DeltaEncoderConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", choices=("fp32", "bf16"), default="bf16")
    ap.add_argument("--size", type=int, default=224, help="delta_size S")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=10)
    a = ap.parse_args()
    device = torch.device(a.device)
    print(f"# {' '.join(sys.argv)}")
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    print(f"# {where}, torch {torch.__version__}, {a.dtype}, batch {a.batch}, {a.size}x{a.size}")
    print("| preset | params (M) | ms/batch | P-frames/s |")
    print("|---|---|---|---|")
    g = torch.Generator().manual_seed(0)
    motion = (torch.randn(a.batch, a.size, a.size, 2, generator=g) * 4).to(device)
    residual = torch.randint(-64, 65, (a.batch, a.size, a.size), dtype=torch.int16, generator=g).to(device)
    for preset in ("compact", "paper"):
        torch.manual_seed(0)
        model = DeltaEncoder(DeltaEncoderConfig.preset(preset)).to(device).eval()
        params = sum(p.numel() for p in model.parameters()) / 1e6
        autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=a.dtype == "bf16")
        with torch.inference_mode(), autocast:
            for _ in range(2):
                model(motion, residual)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            for _ in range(a.repeats):
                model(motion, residual)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
        ms = (time.perf_counter() - start) / a.repeats * 1e3
        print(f"| {preset} | {params:.1f} | {ms:.1f} | {a.batch / (ms * 1e-3):.0f} |")


if __name__ == "__main__":
    main()

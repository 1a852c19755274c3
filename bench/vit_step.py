"""Codec ViT training step: packed codec mode (cu_seqlens) against the same tokens padded, with MFU.

One step = ``encode`` (ViT + attentive pool) of B clips x N patches, a scalar loss, backward, fused AdamW
(on CUDA), under bf16 autocast where ``--dtype bf16``. Both layouts carry exactly the same tokens (every
clip has N patches), so their cost differs only by how attention keeps the clips apart. MFU is
model FLOPs (6 x parameters x tokens for the dense layers, plus 12 x depth x N^2 x width per clip for
attention; forward + backward) over a bf16 matmul peak this script measures first on the same device.

    PYTHONPATH=python python bench/vit_step.py --device cuda --dtype bf16            # ViT-L, 8 x 2048
    PYTHONPATH=python python bench/vit_step.py --preset tiny --clips 2 --patches 64   # CPU smoke run
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from codecprim.models.codec_vit import CodecViT, CodecViTConfig

DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_ms(fn, device: torch.device, repeats: int) -> float:
    for _ in range(2):
        fn()
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    _sync(device)
    return (time.perf_counter() - start) / repeats * 1e3


def matmul_peak_tflops(device: torch.device, dtype: torch.dtype, size: int, repeats: int) -> float:
    """Best-case dense matmul throughput on this device: the denominator of MFU."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    ms = _time_ms(lambda: a @ b, device, repeats)
    return 2 * size**3 / (ms * 1e-3) / 1e12


def step_flops(cfg: CodecViTConfig, params: int, clips: int, patches: int) -> float:
    dense = 6 * params * clips * patches
    attention = 12 * cfg.depth * clips * patches**2 * cfg.width  # QK^T and AV, forward + backward
    return float(dense + attention)


def make_step(encode, pixels, positions, layout: str, dtype: torch.dtype, optimizer):
    clips, patches = pixels.shape[:2]
    device = pixels.device
    if layout == "packed":
        args = (pixels.flatten(0, 1), positions.flatten(0, 1))  # (B*N, C, p, p), (B*N, 3)
        kwargs = {"cu_seqlens": torch.arange(clips + 1, device=device) * patches}
    else:
        args, kwargs = (pixels, positions), {"valid": torch.ones(clips, patches, dtype=torch.bool, device=device)}

    def step():
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            loss = encode(*args, **kwargs).float().square().mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="large", help="codec ViT preset (tiny, base, large, huge)")
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--patches", type=int, default=2048)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="bf16")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model first")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--matmul-size", type=int, default=8192)
    a = ap.parse_args()
    device, dtype = torch.device(a.device), DTYPES[a.dtype]
    torch.manual_seed(0)
    cfg = CodecViTConfig.preset(a.preset)
    p = cfg.patch_size
    pixels = torch.randint(0, 256, (a.clips, a.patches, 3, p, p), dtype=torch.uint8, device=device)
    positions = torch.stack([torch.randint(0, hi, (a.clips, a.patches), device=device) for hi in (64, 16, 16)], -1)
    size = a.matmul_size if device.type == "cuda" else min(a.matmul_size, 1024)
    peak = matmul_peak_tflops(device, dtype, size, a.repeats)
    print(f"# {' '.join(sys.argv)}")
    print(f"# device {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}, torch {torch.__version__}, "
          f"{a.dtype} matmul peak measured {peak:.1f} TFLOP/s ({size}^3)")
    print(f"| layout | preset | clips x patches | ms/step | TFLOP/s | MFU | vs padded |")
    print(f"|---|---|---|---|---|---|---|")
    results = {}
    for layout in ("padded", "packed"):
        model = CodecViT(cfg).to(device)
        params = sum(t.numel() for t in model.parameters())
        fused = {"fused": True} if device.type == "cuda" else {}
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, **fused)
        encode = torch.compile(model.encode) if a.compile else model.encode
        ms = _time_ms(make_step(encode, pixels, positions, layout, dtype, optimizer), device, a.repeats)
        tflops = step_flops(cfg, params, a.clips, a.patches) / (ms * 1e-3) / 1e12
        results[layout] = ms
        ratio = ms / results["padded"]
        print(f"| {layout} | {a.preset} | {a.clips} x {a.patches} | {ms:.1f} | {tflops:.1f} | {tflops / peak:.1%} | "
              f"{ratio:.2f}x |")
        del model, optimizer
        if device.type == "cuda":
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()

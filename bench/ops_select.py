"""Saliency and selection figures: CPU twins on one clip, CUDA kernels on a batch of clips.

    python bench/ops_select.py [--threads 1] [--repeats 50] [--batch 32]

CPU (one thread by default): selection of K = 2048 patches from a 64 x 16 x 16 clip (goal <= 5 ms),
and the saliency stages on a synthetic 64-frame 640x360 clip (GOP 32, a pan plus a moving object).
GPU (skipped without CUDA + CuPy): residual pooling alone (goal >= 50 % of peak) and with the
per-frame normalisation over a batch of clips, as fractions of the measured device-to-device copy
bandwidth, the segmented top-K kernel, one clip's select_patches (one fused launch, goal <= 0.3 ms),
and CPU <-> GPU agreement. Prints one table. (bench/cuda/bench_select.cu times each kernel alone.)
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time

import torch

from codecprim.ops.saliency import SaliencyConfig, combine_saliency, motion_energy_grid, residual_energy_grid
from codecprim.ops.select import select_patches, selection_keys, topk_sorted
from timing import median_ms

FRAMES, HEIGHT, WIDTH, GOP, GRID, BUDGET = 64, 360, 640, 32, (16, 16), 2048


def make_clip(seed: int = 0):
    """Block rows (a 3 px/frame pan, an object moving against it), residuals and I-frame flags."""
    gen = torch.Generator().manual_seed(seed)
    cy, cx = torch.meshgrid(torch.arange(8, HEIGHT, 16), torch.arange(8, WIDTH, 16), indexing="ij")
    cx, cy = cx.reshape(-1), cy.reshape(-1)
    n = cx.numel()
    on_object = (cx > 200) & (cx < 330) & (cy > 100) & (cy < 230)
    vectors = []
    for t in range(FRAMES):
        if t % GOP == 0:
            vectors.append(torch.zeros((0, 10), dtype=torch.int32))
            continue
        motion = torch.where(on_object[:, None], torch.tensor([-20, 8]), torch.tensor([12, 4]))
        motion = motion + torch.randint(-2, 3, (n, 2), generator=gen)
        rows = torch.stack([torch.full((n,), -1), torch.full((n,), 16), torch.full((n,), 16),
                            cx + motion[:, 0] // 4, cy + motion[:, 1] // 4, cx, cy, motion[:, 0], motion[:, 1],
                            torch.full((n,), 4)], dim=1)
        vectors.append(rows.to(torch.int32))
    residual = torch.randint(-6, 7, (FRAMES, HEIGHT, WIDTH), generator=gen, dtype=torch.int16)
    residual[:, 100:230, 200:330] *= 8
    is_iframe = torch.arange(FRAMES) % GOP == 0
    return vectors, residual, is_iframe


def gpu_ms(fn, repeats: int) -> float:
    fn()
    torch.cuda.synchronize()
    samples = []
    for _ in range(repeats):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        samples.append(start.elapsed_time(stop))
    return statistics.median(samples)


def cpu_rows(args) -> list[tuple[str, str, str]]:
    vectors, residual, is_iframe = make_clip()
    motion, _ = motion_energy_grid(vectors, (HEIGHT, WIDTH), GRID, (224, 224))
    res_grid = residual_energy_grid(residual, GRID)
    saliency = combine_saliency(motion, res_grid, is_iframe)
    anchor = is_iframe
    keys = selection_keys(saliency, anchor, 0.5)
    k = torch.tensor([BUDGET])
    r = args.repeats
    timings = [
        ("CPU select_patches, 64x16x16, K=2048", lambda: select_patches(saliency, is_iframe, budget=BUDGET),
         "goal <= 5 ms"),
        ("  of which selection_keys", lambda: selection_keys(saliency, anchor, 0.5), ""),
        ("  of which topk_sorted", lambda: topk_sorted(keys[None], k), ""),
        ("CPU select_patches, ratio 0.125", lambda: select_patches(saliency, is_iframe, ratio=0.125), ""),
        ("CPU combine_saliency, 64 frames", lambda: combine_saliency(motion, res_grid, is_iframe), ""),
    ]
    rows = [(name, f"{median_ms(fn, r):.2f} ms", note) for name, fn, note in timings]
    slow = max(3, r // 10)
    for camera in ("none", "similarity"):
        ms = median_ms(lambda: motion_energy_grid(vectors, (HEIGHT, WIDTH), GRID, (224, 224), camera=camera), slow)
        rows.append((f"CPU motion_energy_grid, {camera}, 64x{HEIGHT}x{WIDTH}", f"{ms:.1f} ms", ""))
    ms = median_ms(lambda: residual_energy_grid(residual, GRID), slow)
    rows.append((f"CPU residual_energy_grid, 64x{HEIGHT}x{WIDTH}", f"{ms:.1f} ms", ""))
    return rows


def copy_bandwidth(device) -> float:
    """Measured device-to-device copy rate in bytes/s (bytes read + bytes written)."""
    src = torch.empty(1 << 30, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    ms = gpu_ms(lambda: dst.copy_(src), 20)
    return 2 * src.numel() / (ms * 1e-3)


def gpu_rows(args) -> list[tuple[str, str, str]]:
    if not torch.cuda.is_available() or importlib.util.find_spec("cupy") is None:
        return [("GPU section", "skipped", "needs CUDA and CuPy")]
    dev = torch.device("cuda")
    vectors, residual, is_iframe = make_clip()
    batch = args.batch
    res_gpu = residual.to(dev).repeat(batch, 1, 1)                          # (B*T, H, W)
    iframe_gpu = is_iframe.to(dev).repeat(batch)                            # (B*T,)
    motion_cpu, _ = motion_energy_grid(vectors, (HEIGHT, WIDTH), GRID, (224, 224))
    motion_gpu = motion_cpu.to(dev).repeat(batch, 1, 1)                     # (B*T, Hg, Wg)
    cfg = SaliencyConfig()

    def saliency_batch():
        return combine_saliency(motion_gpu, residual_energy_grid(res_gpu, GRID), iframe_gpu, cfg)

    peak = copy_bandwidth(dev)
    ms = gpu_ms(lambda: residual_energy_grid(res_gpu, GRID), args.repeats)
    moved = res_gpu.numel() * 2 + motion_gpu.numel() * 4                     # residual read; grid written
    rows = [(f"GPU residual pooling, {batch} clips", f"{ms:.3f} ms",
             f"{moved / (ms * 1e-3) / 1e9:.0f} GB/s = {moved / (ms * 1e-3) / peak:.0%} of copy {peak / 1e9:.0f} GB/s "
             "(goal >= 50 %)")]
    ms = gpu_ms(saliency_batch, args.repeats)
    moved = res_gpu.numel() * 2 + motion_gpu.numel() * 4 * 3                # residual read; grids r/w
    rows.append((f"GPU residual pooling + normalise, {batch} clips", f"{ms:.3f} ms",
                 f"{moved / (ms * 1e-3) / 1e9:.0f} GB/s = {moved / (ms * 1e-3) / peak:.0%} of copy"))

    saliency = saliency_batch().view(batch, FRAMES, *GRID)
    keys = torch.stack([selection_keys(saliency[b], iframe_gpu[:FRAMES], 0.5) for b in range(batch)])
    k = torch.full((batch,), BUDGET, dtype=torch.int64, device=dev)
    ms = gpu_ms(lambda: topk_sorted(keys, k), args.repeats)
    rows.append((f"GPU topk_sorted, {batch} clips x 16384, K=2048", f"{ms:.3f} ms",
                 f"{keys.numel() * 8 / (ms * 1e-3) / 1e9:.0f} GB/s of keys"))
    ms = gpu_ms(lambda: select_patches(saliency[0], iframe_gpu[:FRAMES], budget=BUDGET), args.repeats)
    rows.append(("GPU select_patches, one clip, K=2048", f"{ms:.3f} ms", "one fused launch; goal <= 0.3 ms"))
    ms = gpu_ms(lambda: select_patches(saliency[0], iframe_gpu[:FRAMES], ratio=0.125), args.repeats)
    rows.append(("GPU select_patches, one clip, ratio 0.125", f"{ms:.3f} ms", "reads the I-frame count back"))

    # agreement on the first clip
    res_cpu = residual_energy_grid(residual, GRID)
    same_res = torch.equal(residual_energy_grid(residual.to(dev), GRID).cpu(), res_cpu)
    sal_cpu = combine_saliency(motion_cpu, res_cpu, is_iframe, cfg)
    diff = float((saliency[0].cpu() - sal_cpu).abs().max())
    sel_cpu = select_patches(sal_cpu, is_iframe, budget=BUDGET)
    sel_gpu = select_patches(saliency[0], iframe_gpu[:FRAMES], budget=BUDGET)
    motion_dev, _ = motion_energy_grid([v.to(dev) for v in vectors], (HEIGHT, WIDTH), GRID, (224, 224))
    rows.append(("CPU<->GPU residual grid", "identical" if same_res else "DIFFERENT", ""))
    rows.append(("CPU<->GPU motion grid", f"max |diff| {float((motion_dev.cpu() - motion_cpu).abs().max()):.2e}", ""))
    rows.append(("CPU<->GPU saliency", f"max |diff| {diff:.2e}", ""))
    rows.append(("CPU<->GPU selection", "identical" if torch.equal(sel_gpu.visible_indices.cpu(),
                                                                 sel_cpu.visible_indices) else "DIFFERENT", ""))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = cpu_rows(args) + gpu_rows(args)
    width = max(len(r[0]) for r in rows)
    print(f"torch {torch.__version__}, {args.threads} CPU thread(s)")
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>14}  {note}")


if __name__ == "__main__":
    main()

"""Writes the case bench_select.cu runs: one synthetic clip (bench/ops_select.py's, 64 frames 640x360, GOP 32),
every input of the saliency and top-K kernels as the package's ops build it, and every expected output from
the package's CPU twins. The benchmark then checks the CUDA kernels against these and times them, with no
second implementation of the ops in C++.

    python bench/cuda/make_select_case.py OUT_DIR          (plain .npy files; needs torch, no GPU)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: the clip of ops_select.py
from ops_select import BUDGET, FRAMES, GRID, HEIGHT, WIDTH, make_clip  # noqa: E402

from codecprim.ops.saliency import (  # noqa: E402
    SaliencyConfig, _motion_sums_cpu, _residual_sums_cpu, block_motion, cell_bounds, centre_prior,
    combine_kernel_constants, combine_saliency, frame_offsets, fusion_weights, motion_energy_grid,
    residual_energy_grid,
)
from codecprim.ops.select import anchor_frames, select_patches, selection_keys, topk_sorted  # noqa: E402

MODEL_SIZE = (224, 224)
FLOOR = 0.5  # select_patches' default


def build_case() -> dict[str, np.ndarray]:
    vectors, residual, is_iframe = make_clip()
    config = SaliencyConfig()
    hg, wg = GRID
    rows, cols = cell_bounds(HEIGHT, hg), cell_bounds(WIDTH, wg)

    rects, frame, length, _ = block_motion(vectors, (HEIGHT, WIDTH), MODEL_SIZE, config.camera)
    sum_v, sum_a = _motion_sums_cpu(rects, torch.bincount(frame, minlength=FRAMES).tolist(), length, (HEIGHT, WIDTH),
                                    GRID)
    motion, _ = motion_energy_grid(vectors, (HEIGHT, WIDTH), GRID, MODEL_SIZE, camera=config.camera)
    residual_grid = residual_energy_grid(residual, GRID)

    saliency = combine_saliency(motion, residual_grid, is_iframe, config)
    constants = combine_kernel_constants(hg * wg, config, has_residual=True)
    wm, wr = fusion_weights(config, has_residual=True)

    p0 = hg * wg
    anchor = anchor_frames(is_iframe, p0, min(BUDGET, FRAMES * p0))
    keys = selection_keys(saliency, anchor, FLOOR)
    selected = select_patches(saliency, is_iframe, budget=BUDGET, floor=FLOOR).visible_indices
    if not torch.equal(topk_sorted(keys[None], torch.tensor([BUDGET])), selected):
        raise SystemExit("make_select_case: keys and select_patches disagree; the case would be inconsistent")

    ints = ["p", "padded", "lo", "hi", "has_noise", "nlo", "nhi", "mode"]
    return {
        # residual_sums_int16x8/x4: (T, H, W) residual and cell borders -> int64 sums of squares per cell
        "residual": residual.numpy(),
        "rows": rows.int().numpy(),
        "cols": cols.int().numpy(),
        "residual_sums": _residual_sums_cpu(residual, rows, cols).numpy(),
        # motion_sums_float32: clipped block rectangles, per-frame offsets, lengths -> overlap sums
        "rects": rects.int().numpy(),
        "offsets": frame_offsets(frame, FRAMES).numpy(),
        "length": length.float().numpy(),
        "motion_sum_v": sum_v.numpy(),
        "motion_sum_a": sum_a.numpy(),
        # combine_saliency_float32: the two grids, I-frame flags, prior, scalars -> saliency
        "motion_grid": motion.numpy(),
        "residual_grid": residual_grid.numpy(),
        "is_iframe": is_iframe.to(torch.uint8).numpy(),
        "prior": centre_prior(GRID, config.centre_prior, config.centre_sigma).numpy(),
        "combine_ints": np.array([constants[name] for name in ints], dtype=np.int32),
        "combine_floats": np.array([constants["frac"], constants["nfrac"], config.motion_reference,
                                    config.residual_reference, wm, wr], dtype=np.float32),
        "saliency": saliency.numpy(),
        # topk_select_int64: selection keys, K -> sorted flat indices
        "keys": keys.numpy(),
        "budget": np.array([BUDGET], dtype=np.int64),
        "selected": selected.numpy(),
        # select_patches_float32: saliency and is_iframe above, K and the floor -> the same selection
        "floor": np.array([FLOOR], dtype=np.float32),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for the .npy files")
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    case = build_case()
    for name, array in case.items():
        np.save(args.out / f"{name}.npy", np.ascontiguousarray(array))
    print(f"wrote {len(case)} arrays to {args.out}")


if __name__ == "__main__":
    main()

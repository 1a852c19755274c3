"""Cut planes into p x p patches (ViT-style, p = 14 or 16 and any other positive size).

The package's one patchify: the ops (``codecprim.ops.patchify``), the codec ViT's image and chunk modes
and the Δ-encoder's motion tokens all cut patches here. It imports only torch, NumPy and the CUDA
loader, so models (which never import readers or data) and ops can both use it.

Policy for sizes that are not multiples of p: CROP, CENTRED. The grid has ``rows = H // p`` by
``cols = W // p`` patches and starts at ``top = (H - rows*p) // 2``, ``left = (W - cols*p) // 2``;
the remainder (under p pixels per axis) is dropped, the odd pixel going to the bottom/right.
:func:`patch_grid` gives these numbers, and every op that addresses patches by (row, col), e.g.
``gather_rgb_patches``, uses the same grid, so positions always refer to the same pixels.

Shapes: input ``(..., C, H, W)``. ``layout="grid"`` returns ``(..., rows, cols, C, p, p)``;
``layout="flat"`` returns ``(..., rows*cols, C*p*p)``, patches in raster order (row-major) and each
patch flattened channel-major (c, y, x) -- the same memory, viewed differently. Fields stored
``(H, W, 2)`` go in as ``field.permute(2, 0, 1)``. The CUDA twin (``cuda/patchify.cu``) is a pure
copy and therefore bit-identical. It serves the dtypes it has an entry point for and inputs that need
no gradient; every other tensor (bf16/fp16/fp64 activations, autograd inputs), and every call with
``cuda_kernel=False``, takes the torch reshape/permute on its own device, which copies the same
elements. Models pass ``cuda_kernel=False``: torch's copy is what autograd and ``torch.compile`` see
through, and it keeps CuPy out of a model's forward.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np
import torch

from . import _cuda

__all__ = ["PatchGrid", "patch_grid", "patchify", "unpatchify"]

Layout = Literal["grid", "flat"]
_KERNELS = {torch.uint8: "patchify_uint8", torch.bool: "patchify_uint8", torch.int16: "patchify_int16",
            torch.int32: "patchify_int32", torch.float32: "patchify_float32"}


class PatchGrid(NamedTuple):
    """The centred patch grid of an H x W plane: ``rows x cols`` patches from pixel (top, left)."""

    rows: int
    cols: int
    top: int
    left: int


def patch_grid(height: int, width: int, patch: int) -> PatchGrid:
    """Grid of whole p x p patches centred in an H x W plane (remainder cropped)."""
    # ops._checks would import the ops package (and the reader with it), which models may not
    if isinstance(patch, bool) or not isinstance(patch, int) or patch <= 0:
        raise ValueError(f"patch must be a positive int; got {patch!r}")
    if height < patch or width < patch:
        raise ValueError(f"a {height}x{width} plane holds no whole {patch}x{patch} patch")
    rows, cols = height // patch, width // patch
    return PatchGrid(rows, cols, (height - rows * patch) // 2, (width - cols * patch) // 2)


def patchify(x: torch.Tensor, patch: int, *, layout: Layout = "grid", cuda_kernel: bool = True) -> torch.Tensor:
    """``(..., C, H, W)`` -> ``(..., rows, cols, C, p, p)`` (grid) or ``(..., rows*cols, C*p*p)`` (flat).

    ``cuda_kernel=False`` keeps a CUDA tensor on torch's own copy instead of the CuPy kernel."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"x must be a torch.Tensor; got {type(x).__name__}")
    if x.dim() < 3:
        raise ValueError(f"x must have shape (..., C, H, W); got {tuple(x.shape)} (add a channel axis)")
    if layout not in ("grid", "flat"):
        raise ValueError(f"layout must be one of 'grid', 'flat'; got {layout!r}")
    channels, height, width = x.shape[-3:]
    grid = patch_grid(height, width, patch)
    lead = x.shape[:-3]
    planes = x.reshape(-1, channels, height, width)  # (B, C, H, W)
    if cuda_kernel and x.is_cuda and x.dtype in _KERNELS and not (x.requires_grad and torch.is_grad_enabled()):
        out = _patchify_cuda(planes.contiguous(), patch, grid)
    else:
        crop = planes[:, :, grid.top:grid.top + grid.rows * patch, grid.left:grid.left + grid.cols * patch]
        out = crop.reshape(-1, channels, grid.rows, patch, grid.cols, patch)  # (B, C, rows, p, cols, p)
        out = out.permute(0, 2, 4, 1, 3, 5).contiguous()  # (B, rows, cols, C, p, p)
    if layout == "flat":
        return out.reshape(*lead, grid.rows * grid.cols, channels * patch * patch)  # (..., rows*cols, C*p*p)
    return out.reshape(*lead, grid.rows, grid.cols, channels, patch, patch)  # (..., rows, cols, C, p, p)


def unpatchify(patches: torch.Tensor) -> torch.Tensor:
    """Inverse of ``patchify(..., layout="grid")``: ``(..., rows, cols, C, p, p)`` -> ``(..., C, rows*p, cols*p)``.

    Returns the cropped region (the centred ``rows*p x cols*p`` window of the original plane).
    Flat patches must first be viewed as ``(..., rows, cols, C, p, p)``. Pure torch view/copy
    ops, so it runs on any device.
    """
    if not isinstance(patches, torch.Tensor):
        raise ValueError(f"patches must be a torch.Tensor; got {type(patches).__name__}")
    if patches.dim() < 5 or patches.shape[-1] != patches.shape[-2]:
        raise ValueError(f"patches must have shape (..., rows, cols, C, p, p); got {tuple(patches.shape)}")
    rows, cols, channels, patch, _ = patches.shape[-5:]
    lead = patches.shape[:-5]
    out = patches.reshape(-1, rows, cols, channels, patch, patch).permute(0, 3, 1, 4, 2, 5)  # (B, C, rows, p, cols, p)
    return out.reshape(*lead, channels, rows * patch, cols * patch)  # (..., C, rows*p, cols*p)


def _patchify_cuda(planes: torch.Tensor, patch: int, grid: PatchGrid) -> torch.Tensor:
    batch, channels, height, width = planes.shape
    out = torch.empty((batch, grid.rows, grid.cols, channels, patch, patch), dtype=planes.dtype,
                      device=planes.device)
    source, target = planes, out
    if planes.dtype == torch.bool:  # kernels see bytes
        source, target = planes.view(torch.uint8), out.view(torch.uint8)
    kernel = _cuda.get_kernel("patchify.cu", _KERNELS[planes.dtype], device=planes.device)
    _cuda.launch(kernel, out.numel(),
                 (source, np.int32(channels), np.int32(height), np.int32(width), np.int32(patch),
                  np.int32(grid.top), np.int32(grid.left), np.int32(grid.rows), np.int32(grid.cols),
                  np.int64(out.numel()), target))
    return out

"""``codecprim.ops.patchify``: the op face of :mod:`codecprim.patchify`, which models share (see there)."""

from ..patchify import PatchGrid, patch_grid, patchify, unpatchify

__all__ = ["PatchGrid", "patch_grid", "patchify", "unpatchify"]

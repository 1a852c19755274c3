// The area (box) filter of codecprim.ops.resize, evaluated only on chosen patch cells of the output: the CPU
// implementation of resize_patches (whose docstring is the contract). Each output pixel is the overlap-weighted
// mean of the input pixels under its footprint, from exact integer sums, rounded half up: the pixels equal those
// of resize_plane cut at the cell.
#pragma once

#include <cstdint>
#include <vector>

namespace codecprim {

struct PatchResizeShape {
  int planes = 1;    // planes per frame (1 for luma, 2 for the chroma pair), each height x width, contiguous
  int height = 0;
  int width = 0;
  int out_height = 0;
  int out_width = 0;
  int patch = 0;     // side of a cell, in output pixels
};

// frames[t] points at frame t's planes; cells (count, 3) int64 (t, row, col) name the cell covering output rows
// [row * patch, (row + 1) * patch) and columns [col * patch, (col + 1) * patch). out (count, planes, patch, patch).
void resize_patches_u8(const std::vector<const uint8_t*>& frames, const PatchResizeShape& shape, const int64_t* cells,
                       int64_t count, uint8_t* out);

}  // namespace codecprim

// A frame's past motion field at a model size, straight from its exported block rows: the CPU twin of the torch
// path of codecprim.ops.fusion.field_at_size, bit for bit (tests/ops/test_fusion.py). Each past-direction
// block paints its vector (motion / scale, computed in float32 as torch divides int32 tensors) and a count of 1
// into the cells of the coarsest grid its edges lie on (16, 8, 4, 2 or 1 pixels) through a difference array; two
// running sums give the painted grid, and the separable box filter takes it to (out_h, out_w) with integer
// overlap weights, columns first, in the torch path's order. The field is the mean vector of the inter pixels
// under each output pixel, scaled to output pixels; the mask marks outputs at least half covered.
#pragma once

#include <cstdint>

namespace codecprim {

// rows: (count, kMotionVectorColumns) int32 as exported; height/width: the coded picture size the rows refer to.
// field: (out_h, out_w, 2) float32; mask: (out_h, out_w) bool bytes, or null.
void field_at_size(const int32_t* rows, int64_t count, int height, int width, int out_h, int out_w, float* field,
                   uint8_t* mask);

}  // namespace codecprim

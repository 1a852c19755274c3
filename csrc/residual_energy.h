// Exact sums of squared residuals per patch-grid cell: the CPU implementation behind
// codecprim.ops.saliency.residual_energy_grid (cuda/saliency.cu's residual_sums_* are its GPU twins).
#pragma once

#include <cstdint>

namespace codecprim {

// residual (frames, height, width) int16 -> sums (frames, hg, wg) int64 of r^2 over each cell, cell (r, c)
// covering rows [r H / hg, (r + 1) H / hg) and columns [c W / wg, (c + 1) W / wg).
void residual_cell_sums(const int16_t* residual, int64_t frames, int height, int width, int hg, int wg,
                        int64_t* sums);

}  // namespace codecprim

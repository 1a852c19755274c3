// Camera-compensated motion of every block of a clip, and its pooling onto the patch grid: the CPU
// implementation of codecprim.ops.saliency's block_motion and motion pooling (that module's docstring is the
// contract; cuda/saliency.cu's motion_sums_float32 is the pooling's GPU twin, adding in the same order).
#pragma once

#include <cstdint>
#include <vector>

#include "camera_fit.h"

namespace codecprim {

struct MotionGeometry {
  int height = 0;        // coded frame
  int width = 0;
  int model_height = 0;  // the frames are resized to this; vectors are scaled to it
  int model_width = 0;
};

// frames[t] points at frame t's counts[t] vector rows ((N_t, 10) int32, the core's layout). Per block, in frame
// order: rects (M, 4) int32 x0, y0, x1, y1 clipped to the frame, and length2 (M,) the squared length of its
// camera-compensated motion in model pixels (the square root is left to the caller: torch's float32 sqrt, which
// is not correctly rounded on every CPU, gave the lengths so far); per frame: fallback (the fit fell back to the
// median translation). Every vector votes for the camera, weighted by its block area.
void block_motion(const std::vector<const int32_t*>& frames, const std::vector<int64_t>& counts,
                  const MotionGeometry& geometry, const CameraFitOptions& camera, int32_t* rects, float* length2,
                  uint8_t* fallback);

// sum(length * overlap) (float32) and sum(overlap) per cell of the (T, hg, wg) grid, frame t owning the next
// counts[t] blocks, whose cell (r, c)
// covers rows [r H / hg, (r + 1) H / hg) and columns [c W / wg, (c + 1) W / wg). A cell adds its blocks in the
// CUDA twin's order: by the cell holding the block's top-left pixel (raster order), then by block order.
void pool_motion(const int32_t* rects, const float* length, const std::vector<int64_t>& counts, int height,
                 int width, int hg, int wg, float* sum_v, int64_t* sum_a);

}  // namespace codecprim

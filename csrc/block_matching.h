// Block-matching motion search on the CPU: the C++ twin of the kernels of cuda/motion_estimation.cu.
//
// codecprim.ops.motion_estimation documents the algorithm (pyramid, candidates, costs); this file holds its two
// hot stages, with the kernels' contract, bit for bit:
//   * SAD over the block's support (the block grown by `margin` on every side), pixels of the support outside
//     the frame skipped, reference pixels edge clamped;
//   * cost = (SAD << 2 level) + lam * |q(v) - pred_q|_1 with q(v) = v * (4 << level), or (SAD << 2 level) + 2^30
//     when |q(v)| > limit_q in either component;
//   * candidates in order: window centre, the rest of the window in raster order (dy outer, dx inner), then the
//     block's extras; sub-pel: the current best, then its 8 neighbours in raster order. The first candidate of
//     minimal cost wins (torch.argmin semantics).
// Blocks are numbered (frame, row, column), frame-major; vectors are (x, y) int32 pairs.
#pragma once

#include <cstdint>

namespace codecprim {

// T frames of H x W uint8 luma, contiguous (T, H, W).
struct LumaStack {
  const uint8_t* data = nullptr;
  int frames = 0;
  int height = 0;
  int width = 0;
};

// The block grid of one pyramid level: rows x cols blocks of `size` pixels per frame, SAD over the block grown by
// `margin` pixels on every side.
struct BlockGrid {
  int rows = 0;
  int cols = 0;
  int size = 0;
  int margin = 0;
};

// Integer search of one level: per block the (2 radius + 1)^2 window around centres[b], then extras[b, 0..E).
// centres, pred_q: (B, 2); extras: (B, E, 2); out_vec (B, 2) level pixels; out_cost (B,).
void block_search(const LumaStack& cur, const LumaStack& ref, const BlockGrid& grid, const int32_t* centres,
                  int radius, const int32_t* extras, int num_extras, const int32_t* pred_q, int level, int limit_q,
                  int lam, int32_t* out_vec, int32_t* out_cost);

// Half- then quarter-pel refinement (bilinear, taps edge clamped) around integer vectors at full resolution
// (grid.margin must be 0). base_cost (B,) is the integer vector's cost; out_q (B, 2) quarter pels, out_cost (B,).
void subpel_refine(const LumaStack& cur, const LumaStack& ref, const BlockGrid& grid, const int32_t* vectors,
                   const int32_t* base_cost, const int32_t* pred_q, int limit_q, int lam, int32_t* out_q,
                   int32_t* out_cost);

// The residual of block copies: out (T, H, W) = cur minus each block's prediction from the reference at its vector
// (B, 2) in quarter pels (bilinear where fractional, taps edge clamped; a plain copy at whole pixels), or 0 where
// zero[b] (grid.margin must be 0; blocks wholly outside the frame are ignored).
void block_residual(const LumaStack& cur, const LumaStack& ref, const BlockGrid& grid, const int32_t* vectors_q,
                    const uint8_t* zero, int16_t* out);

// One pyramid step: dst (T, ceil(H/2), ceil(W/2)) = the rounded mean of each 2x2 square of src, (a+b+c+d+2) >> 2, the
// last row / column replicated where H or W is odd.
void downsample_2x2(const LumaStack& src, uint8_t* dst);

// Per block the structure tensor of the luma's forward differences (0 across the last row / column of the frame),
// summed over the block's pixels inside the frame: out (B, 3) = sum gx^2, sum gy^2, sum gx gy (grid.margin is 0).
void block_structure(const LumaStack& cur, const BlockGrid& grid, int64_t* out);

}  // namespace codecprim

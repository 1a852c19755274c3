// Exact sums of squared residuals per patch-grid cell: the CPU implementation behind
// codecprim.ops.saliency.residual_energy_grid (cuda/saliency.cu's residual_sums_* are its GPU twins).
#pragma once

#include <cstdint>
#include <vector>

namespace codecprim {

// residual (frames, height, width) int16 -> sums (frames, hg, wg) int64 of r^2 over each cell, cell (r, c)
// covering rows [r H / hg, (r + 1) H / hg) and columns [c W / wg, (c + 1) W / wg).
void residual_cell_sums(const int16_t* residual, int64_t frames, int height, int width, int hg, int wg,
                        int64_t* sums);

// The same sums for one frame, taken from its rows as they are produced (the reader's residual pass hands over
// each row of macroblocks while it is in cache), so a caller that wants only the sums never stores the residual.
// Equal to residual_cell_sums of the whole frame.
class CellSquareSums {
 public:
  // Starts a frame: sums (hg, wg) are zeroed and then filled by add_rows.
  void start(int height, int width, int hg, int wg, int64_t* sums);
  // Rows [first_row, first_row + count) of the frame, `width` wide and contiguous.
  void add_rows(const int16_t* rows, int first_row, int count);

 private:
  int height_ = 0, width_ = 0, hg_ = 0, wg_ = 0;  // the geometry cols_ and row_cell_ were built for
  int64_t* sums_ = nullptr;
  std::vector<int> cols_, row_cell_;  // column edges; the cell row of each frame row
  std::vector<int32_t> acc_;
};

}  // namespace codecprim

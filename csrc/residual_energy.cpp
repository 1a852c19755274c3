#include "residual_energy.h"

#include <algorithm>
#include <cstdlib>
#include <vector>

namespace codecprim {

namespace {

// r^2 summed down the rows [y0, y1) of every column into acc in int32, in one contiguous pass per row that the
// compiler vectorises (an AVX2 build is picked at load time where the CPU has it). Returns the band's peak |r|:
// the sums are exact when peak^2 * (y1 - y0) < 2^31 (always for 8-bit residuals).
__attribute__((target_clones("avx2", "default"))) int column_squares(const int16_t* frame, int width, int y0, int y1,
                                                                     int32_t* acc) {
  std::fill(acc, acc + width, 0);
  int16_t lo = 0, hi = 0;
  for (int y = y0; y < y1; ++y) {
    const int16_t* row = frame + static_cast<int64_t>(y) * width;
    for (int x = 0; x < width; ++x) {
      acc[x] += static_cast<int32_t>(row[x]) * row[x];
      lo = std::min(lo, row[x]);
      hi = std::max(hi, row[x]);
    }
  }
  return std::max(-static_cast<int>(lo), static_cast<int>(hi));
}

int64_t squares64(const int16_t* p, int len) {
  int64_t s = 0;
  for (int i = 0; i < len; ++i) s += static_cast<int64_t>(static_cast<int32_t>(p[i]) * p[i]);
  return s;
}

// Adds the band's r^2, rows [y0, y1) of `frame`, to one row of cells.
void add_band(const int16_t* frame, int width, int y0, int y1, const std::vector<int>& cols, int32_t* acc,
              int64_t* cell) {
  const int wg = static_cast<int>(cols.size()) - 1;
  const int64_t peak = column_squares(frame, width, y0, y1, acc);
  if (peak * peak * (y1 - y0) < (int64_t{1} << 31)) {
    for (int c = 0; c < wg; ++c) {
      int64_t s = 0;
      for (int x = cols[c]; x < cols[c + 1]; ++x) s += acc[x];
      cell[c] += s;
    }
    return;
  }
  // int32 may have wrapped: this band again in int64
  for (int y = y0; y < y1; ++y) {
    const int16_t* row = frame + static_cast<int64_t>(y) * width;
    for (int c = 0; c < wg; ++c) cell[c] += squares64(row + cols[c], cols[c + 1] - cols[c]);
  }
}

std::vector<int> edges(int size, int cells) {
  std::vector<int> out(cells + 1);
  for (int i = 0; i <= cells; ++i) out[i] = static_cast<int>(static_cast<int64_t>(i) * size / cells);
  return out;
}

}  // namespace

void CellSquareSums::start(int height, int width, int hg, int wg, int64_t* sums) {
  sums_ = sums;
  std::fill(sums, sums + static_cast<int64_t>(hg) * wg, int64_t{0});
  if (height == height_ && width == width_ && hg == hg_ && wg == wg_) return;  // a stream's frames share it
  height_ = height;
  width_ = width;
  hg_ = hg;
  wg_ = wg;
  cols_ = edges(width, wg);
  const std::vector<int> rows = edges(height, hg);
  row_cell_.resize(height);
  for (int r = 0; r < hg; ++r) std::fill(row_cell_.begin() + rows[r], row_cell_.begin() + rows[r + 1], r);
  acc_.resize(width);
}

void CellSquareSums::add_rows(const int16_t* rows, int first_row, int count) {
  // Split at cell-row boundaries; each band's rows are summed down its columns at once.
  for (int y = 0; y < count;) {
    const int cell_row = row_cell_[first_row + y];
    int end = y + 1;
    while (end < count && row_cell_[first_row + end] == cell_row) ++end;
    add_band(rows, width_, y, end, cols_, acc_.data(), sums_ + static_cast<int64_t>(cell_row) * wg_);
    y = end;
  }
}

void residual_cell_sums(const int16_t* residual, int64_t frames, int height, int width, int hg, int wg,
                        int64_t* sums) {
  CellSquareSums frame_sums;
  const int64_t plane = static_cast<int64_t>(height) * width;
  for (int64_t t = 0; t < frames; ++t) {
    frame_sums.start(height, width, hg, wg, sums + t * hg * wg);
    frame_sums.add_rows(residual + t * plane, 0, height);
  }
}

}  // namespace codecprim

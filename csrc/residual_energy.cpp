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

}  // namespace

void residual_cell_sums(const int16_t* residual, int64_t frames, int height, int width, int hg, int wg,
                        int64_t* sums) {
  std::vector<int> cols(wg + 1), rows(hg + 1);
  for (int c = 0; c <= wg; ++c) cols[c] = static_cast<int>(static_cast<int64_t>(c) * width / wg);
  for (int r = 0; r <= hg; ++r) rows[r] = static_cast<int>(static_cast<int64_t>(r) * height / hg);
  std::vector<int32_t> acc(width);
  const int64_t plane = static_cast<int64_t>(height) * width;
  for (int64_t t = 0; t < frames; ++t) {
    const int16_t* frame = residual + t * plane;
    int64_t* out = sums + t * hg * wg;
    for (int r = 0; r < hg; ++r) {
      int64_t* cell = out + r * wg;
      const int64_t peak = column_squares(frame, width, rows[r], rows[r + 1], acc.data());
      if (peak * peak * (rows[r + 1] - rows[r]) < (int64_t{1} << 31)) {
        for (int c = 0; c < wg; ++c) {
          int64_t s = 0;
          for (int x = cols[c]; x < cols[c + 1]; ++x) s += acc[x];
          cell[c] = s;
        }
        continue;
      }
      // int32 may have wrapped: this band again in int64
      std::fill(cell, cell + wg, int64_t{0});
      for (int y = rows[r]; y < rows[r + 1]; ++y) {
        const int16_t* row = frame + static_cast<int64_t>(y) * width;
        for (int c = 0; c < wg; ++c) cell[c] += squares64(row + cols[c], cols[c + 1] - cols[c]);
      }
    }
  }
}

}  // namespace codecprim

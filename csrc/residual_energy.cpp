#include "residual_energy.h"

#include <algorithm>
#include <cstdlib>
#include <vector>

namespace codecprim {

namespace {

// r^2 summed over a run of pixels in int32: exact when peak^2 * len < 2^31 (always for 8-bit residuals),
// and written so the compiler turns it into multiply-adds of pixel pairs.
int32_t squares32(const int16_t* p, int len) {
  int32_t s = 0;
  for (int i = 0; i < len; ++i) s += static_cast<int32_t>(p[i]) * p[i];
  return s;
}

int64_t squares64(const int16_t* p, int len) {
  int64_t s = 0;
  for (int i = 0; i < len; ++i) s += static_cast<int64_t>(static_cast<int32_t>(p[i]) * p[i]);
  return s;
}

int peak_of(const int16_t* p, int64_t count) {
  int lo = 0, hi = 0;
  for (int64_t i = 0; i < count; ++i) {
    lo = std::min<int>(lo, p[i]);
    hi = std::max<int>(hi, p[i]);
  }
  return std::max(-lo, hi);
}

}  // namespace

void residual_cell_sums(const int16_t* residual, int64_t frames, int height, int width, int hg, int wg,
                        int64_t* sums) {
  std::vector<int> cols(wg + 1);
  for (int c = 0; c <= wg; ++c) cols[c] = static_cast<int>(static_cast<int64_t>(c) * width / wg);
  int widest = 0;
  for (int c = 0; c < wg; ++c) widest = std::max(widest, cols[c + 1] - cols[c]);
  const int64_t plane = static_cast<int64_t>(height) * width;
  for (int64_t t = 0; t < frames; ++t) {
    const int16_t* frame = residual + t * plane;
    int64_t* out = sums + t * hg * wg;
    std::fill(out, out + hg * wg, int64_t{0});
    const int64_t peak = peak_of(frame, plane);
    const bool narrow = peak * peak * widest < (int64_t{1} << 31);
    for (int r = 0; r < hg; ++r) {
      const int y0 = static_cast<int>(static_cast<int64_t>(r) * height / hg);
      const int y1 = static_cast<int>(static_cast<int64_t>(r + 1) * height / hg);
      int64_t* cell = out + r * wg;
      for (int y = y0; y < y1; ++y) {
        const int16_t* row = frame + static_cast<int64_t>(y) * width;
        for (int c = 0; c < wg; ++c) {
          const int len = cols[c + 1] - cols[c];
          cell[c] += narrow ? squares32(row + cols[c], len) : squares64(row + cols[c], len);
        }
      }
    }
  }
}

}  // namespace codecprim

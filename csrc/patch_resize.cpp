#include "patch_resize.h"

#include <algorithm>
#include <numeric>

namespace codecprim {

namespace {

// One axis of the box filter: output o reads `taps` inputs from first[o] with integer weights (the overlaps of
// its footprint with each input pixel, in units gcd(size, out) so they stay small); one output's weights add up
// to `reduced` = size / gcd. Outputs with fewer inputs than `taps` carry zero weights at the end.
struct AxisFilter {
  std::vector<int> first;
  std::vector<int32_t> weight;  // (out, taps)
  int taps = 0;
  int64_t reduced = 0;
};

AxisFilter axis_filter(int size, int out) {
  AxisFilter f;
  const int64_t g = std::gcd(size, out);
  f.reduced = size / g;
  f.first.resize(out);
  for (int o = 0; o < out; ++o) {
    const int64_t lo = static_cast<int64_t>(o) * size / out, hi = ((static_cast<int64_t>(o) + 1) * size - 1) / out;
    f.first[o] = static_cast<int>(lo);
    f.taps = std::max(f.taps, static_cast<int>(hi - lo + 1));
  }
  f.weight.assign(static_cast<size_t>(out) * f.taps, 0);
  for (int o = 0; o < out; ++o) {
    for (int k = 0; k < f.taps; ++k) {
      const int64_t y = f.first[o] + k;
      const int64_t overlap = std::min((static_cast<int64_t>(o) + 1) * size, (y + 1) * out) -
                              std::max(static_cast<int64_t>(o) * size, y * out);
      if (overlap > 0 && y < size) f.weight[static_cast<size_t>(o) * f.taps + k] = static_cast<int32_t>(overlap / g);
    }
  }
  return f;
}

}  // namespace

void resize_patches_u8(const std::vector<const uint8_t*>& frames, const PatchResizeShape& s, const int64_t* cells,
                       int64_t count, uint8_t* out) {
  const AxisFilter rows = axis_filter(s.height, s.out_height), cols = axis_filter(s.width, s.out_width);
  const int p = s.patch;
  const int64_t reduced = rows.reduced * cols.reduced;
  const int64_t plane_size = static_cast<int64_t>(s.height) * s.width;
  // the input rows one cell reads: from its first output row's first tap to its last output row's last
  const int max_span = (p - 1) * s.height / std::max(1, s.out_height) + rows.taps + 2;
  // each input row filtered to the cell's columns: at most 255 * cols.reduced <= 255 * width, exact in int32
  std::vector<int32_t> across(static_cast<size_t>(max_span) * p);
  std::vector<int64_t> sums(static_cast<size_t>(p) * p);
  for (int64_t k = 0; k < count; ++k) {
    const int64_t t = cells[3 * k], row = cells[3 * k + 1], col = cells[3 * k + 2];
    const int o0 = static_cast<int>(row * p), q0 = static_cast<int>(col * p);
    const int y_first = rows.first[o0];
    const int y_end = std::min(s.height, rows.first[o0 + p - 1] + rows.taps);
    for (int c = 0; c < s.planes; ++c) {
      const uint8_t* plane = frames[t] + c * plane_size;
      for (int y = y_first; y < y_end; ++y) {
        const uint8_t* line = plane + static_cast<int64_t>(y) * s.width;
        int32_t* dst = across.data() + static_cast<size_t>(y - y_first) * p;
        for (int j = 0; j < p; ++j) {
          const int q = q0 + j;
          const int32_t* w = cols.weight.data() + static_cast<size_t>(q) * cols.taps;
          const int x0 = cols.first[q];
          const int n = std::min(cols.taps, s.width - x0);
          int32_t acc = 0;
          for (int i = 0; i < n; ++i) acc += line[x0 + i] * w[i];
          dst[j] = acc;
        }
      }
      for (int i = 0; i < p; ++i) {
        const int o = o0 + i;
        const int32_t* w = rows.weight.data() + static_cast<size_t>(o) * rows.taps;
        const int y0 = rows.first[o];
        const int n = std::min(rows.taps, s.height - y0);
        int64_t* sum = sums.data() + static_cast<size_t>(i) * p;
        std::fill(sum, sum + p, int64_t{0});
        for (int tap = 0; tap < n; ++tap) {
          const int32_t* src = across.data() + static_cast<size_t>(y0 + tap - y_first) * p;
          for (int j = 0; j < p; ++j) sum[j] += static_cast<int64_t>(w[tap]) * src[j];
        }
      }
      uint8_t* dst = out + (k * s.planes + c) * p * p;
      // the mean rounded half up: floor((2 sum + reduced) / (2 reduced))
      for (int i = 0; i < p * p; ++i) dst[i] = static_cast<uint8_t>((2 * sums[i] + reduced) / (2 * reduced));
    }
  }
}

}  // namespace codecprim

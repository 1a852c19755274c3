#include "patch_resize.h"

#include <algorithm>
#include <numeric>

namespace codecprim {

namespace {

// Built for AVX2 too, picked at load time where the CPU has it.
#define CODECPRIM_CLONED __attribute__((target_clones("avx2", "default")))

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

// One output row of a cell filtered vertically over `span` input columns: line[x] = sum over the n taps of
// w[tap] * plane[(y0 + tap) * width + x]. Acc = uint16_t where 255 * rows.reduced fits (8 or 16 lanes per
// instruction; SSE2 has no 32-bit multiply), else int32_t.
template <typename Acc>
[[gnu::always_inline]] inline void filter_rows_body(const uint8_t* plane, int width, const int32_t* w, int y0, int n,
                                                    int span, Acc* line) {
  std::fill(line, line + span, Acc{0});
  for (int tap = 0; tap < n; ++tap) {
    const uint8_t* src = plane + static_cast<int64_t>(y0 + tap) * width;
    const Acc weight = static_cast<Acc>(w[tap]);
    for (int x = 0; x < span; ++x) line[x] = static_cast<Acc>(line[x] + weight * src[x]);
  }
}

// The cloned entry points are plain overloads around the inlined template: clang cannot multiversion templates.
CODECPRIM_CLONED void filter_rows(const uint8_t* plane, int width, const int32_t* w, int y0, int n, int span,
                                  uint16_t* line) {
  filter_rows_body(plane, width, w, y0, n, span, line);
}
CODECPRIM_CLONED void filter_rows(const uint8_t* plane, int width, const int32_t* w, int y0, int n, int span,
                                  int32_t* line) {
  filter_rows_body(plane, width, w, y0, n, span, line);
}

// Output column j of a cell: the rows filtered above, `down` (span, lanes) column-major (the cell's p rows padded
// to `lanes`, a multiple of 16, so the loops vectorise whole), filtered horizontally over its taps, then rounded: floor((2 sum + reduced) / (2 reduced)), by a float64 division
// (integer division cost more than the filter): both operands are integers below 2^53, an integer quotient is
// exact, and a fraction lies at least 1 / (2 reduced) below the next integer, far above the rounding error.
// Sum = int32_t where 255 * reduced fits, else int64_t.
template <typename Acc, typename Sum>
[[gnu::always_inline]] inline void filter_column_body(const Acc* down, int lanes, const int32_t* w, int taps,
                                                      int64_t reduced, Sum* acc, uint8_t* rounded) {
  std::fill(acc, acc + lanes, Sum{0});
  for (int tap = 0; tap < taps; ++tap) {
    const Acc* src = down + static_cast<size_t>(tap) * lanes;
    const Sum weight = w[tap];
    for (int i = 0; i < lanes; ++i) acc[i] += weight * static_cast<Sum>(src[i]);
  }
  const double denominator = static_cast<double>(2 * reduced);
  for (int i = 0; i < lanes; ++i) {
    rounded[i] = static_cast<uint8_t>(static_cast<double>(2 * static_cast<int64_t>(acc[i]) + reduced) / denominator);
  }
}

CODECPRIM_CLONED void filter_column(const uint16_t* down, int lanes, const int32_t* w, int taps, int64_t reduced,
                                    int32_t* acc, uint8_t* rounded) {
  filter_column_body(down, lanes, w, taps, reduced, acc, rounded);
}
CODECPRIM_CLONED void filter_column(const int32_t* down, int lanes, const int32_t* w, int taps, int64_t reduced,
                                    int64_t* acc, uint8_t* rounded) {
  filter_column_body(down, lanes, w, taps, reduced, acc, rounded);
}

template <typename Acc, typename Sum>
void resize_cells(const std::vector<const uint8_t*>& frames, const PatchResizeShape& s, const AxisFilter& rows,
                  const AxisFilter& cols, const int64_t* cells, int64_t count, uint8_t* out) {
  const int p = s.patch;
  const int lanes = (p + 15) / 16 * 16;
  const int64_t reduced = rows.reduced * cols.reduced;
  const int64_t plane_size = static_cast<int64_t>(s.height) * s.width;
  // the input columns one cell reads: from its first output column's first tap to its last one's last (plus the
  // zero-weight taps past the frame's edge, read from zeros)
  const int max_span = (p - 1) * s.width / std::max(1, s.out_width) + cols.taps + 2;
  // The cell's rows filtered vertically (contiguous runs of pixels times one weight: the loop vectorises), at
  // most 255 * rows.reduced each, stored column-major so the horizontal filter runs across the rows.
  std::vector<Acc> line(max_span), down(static_cast<size_t>(max_span) * lanes, Acc{0});
  std::vector<Sum> acc(lanes);
  std::vector<uint8_t> rounded(lanes);
  for (int64_t k = 0; k < count; ++k) {
    const int64_t t = cells[3 * k], row = cells[3 * k + 1], col = cells[3 * k + 2];
    const int o0 = static_cast<int>(row * p), q0 = static_cast<int>(col * p);
    const int x_first = cols.first[q0];
    const int span = std::min(s.width, cols.first[q0 + p - 1] + cols.taps) - x_first;
    for (int c = 0; c < s.planes; ++c) {
      const uint8_t* plane = frames[t] + c * plane_size + x_first;
      for (int i = 0; i < p; ++i) {
        const int o = o0 + i;
        filter_rows(plane, s.width, rows.weight.data() + static_cast<size_t>(o) * rows.taps, rows.first[o],
                    std::min(rows.taps, s.height - rows.first[o]), span, line.data());
        for (int x = 0; x < span; ++x) down[static_cast<size_t>(x) * lanes + i] = line[x];
      }
      uint8_t* dst = out + (k * s.planes + c) * p * p;
      for (int j = 0; j < p; ++j) {
        const int q = q0 + j;
        // columns past the frame's edge (zero weights) read the zeros `down` keeps beyond `span`
        filter_column(down.data() + static_cast<size_t>(cols.first[q] - x_first) * lanes, lanes,
                                cols.weight.data() + static_cast<size_t>(q) * cols.taps, cols.taps, reduced,
                                acc.data(), rounded.data());
        for (int i = 0; i < p; ++i) dst[static_cast<size_t>(i) * p + j] = rounded[i];
      }
    }
  }
}

}  // namespace

void resize_patches_u8(const std::vector<const uint8_t*>& frames, const PatchResizeShape& s, const int64_t* cells,
                       int64_t count, uint8_t* out) {
  const AxisFilter rows = axis_filter(s.height, s.out_height), cols = axis_filter(s.width, s.out_width);
  const bool narrow_rows = 255 * rows.reduced <= 0xffff;
  const bool narrow_sums = 255 * rows.reduced * cols.reduced < (int64_t{1} << 31);
  if (narrow_rows && narrow_sums) {
    resize_cells<uint16_t, int32_t>(frames, s, rows, cols, cells, count, out);
  } else {
    resize_cells<int32_t, int64_t>(frames, s, rows, cols, cells, count, out);
  }
}

}  // namespace codecprim

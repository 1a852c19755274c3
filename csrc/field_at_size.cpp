#include "field_at_size.h"

#include <algorithm>
#include <numeric>
#include <vector>

#include "motion_vectors.h"

namespace codecprim {
namespace {

int64_t floor_div(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

// One axis of the box filter (ops/resize.py _axis_taps): output o sums taps l = 0..length-1 of input
// index[l][o] (clamped to the axis) weighted by its overlap with o's footprint, in units gcd(size, out) coarser.
struct AxisTaps {
  int length = 0;
  std::vector<int> index;      // (length, out)
  std::vector<double> weight;  // (length, out)
  int64_t reduced = 0;
};

AxisTaps axis_taps(int size, int out) {
  AxisTaps t;
  int64_t longest = 0;
  for (int64_t o = 0; o < out; ++o) {
    const int64_t first = o * size / out;
    longest = std::max(longest, ((o + 1) * size - 1) / out - first);
  }
  t.length = static_cast<int>(longest) + 1;
  const int64_t g = std::gcd(static_cast<int64_t>(size), static_cast<int64_t>(out));
  t.index.resize(static_cast<size_t>(t.length) * out);
  t.weight.resize(static_cast<size_t>(t.length) * out);
  for (int l = 0; l < t.length; ++l) {
    for (int64_t o = 0; o < out; ++o) {
      const int64_t i = o * size / out + l;
      const int64_t overlap = std::max<int64_t>(0, std::min((o + 1) * size, (i + 1) * out) - std::max(o * size, i * out));
      t.index[static_cast<size_t>(l) * out + o] = static_cast<int>(std::min<int64_t>(i, size - 1));
      t.weight[static_cast<size_t>(l) * out + o] = static_cast<double>(overlap / g);
    }
  }
  t.reduced = size / g;
  return t;
}

}  // namespace

void field_at_size(const int32_t* rows, int64_t count, int height, int width, int out_h, int out_w, float* field,
                   uint8_t* mask) {
  struct Span {
    int64_t x0, x1, y0, y1;
    double vx, vy;
  };
  std::vector<Span> spans;
  int64_t cell = 16;
  auto narrow = [&cell](int64_t edge) {
    if (edge != 0) cell = std::min(cell, edge & -edge);
  };
  narrow(height);
  narrow(width);
  for (int64_t k = 0; k < count; ++k) {
    const int32_t* r = rows + k * kMotionVectorColumns;
    if (r[mv::kSource] >= 0) continue;
    const int64_t w = r[mv::kW], h = r[mv::kH];
    const int64_t left = r[mv::kDstX] - floor_div(w, 2), top = r[mv::kDstY] - floor_div(h, 2);
    Span s;
    s.x0 = std::clamp<int64_t>(left, 0, width);
    s.x1 = std::max(s.x0, std::clamp<int64_t>(left + w, 0, width));
    s.y0 = std::clamp<int64_t>(top, 0, height);
    s.y1 = std::max(s.y0, std::clamp<int64_t>(top + h, 0, height));
    // torch divides int32 tensors in float32 before the float64 output takes the quotient
    s.vx = static_cast<double>(static_cast<float>(r[mv::kMotionX]) / static_cast<float>(r[mv::kMotionScale]));
    s.vy = static_cast<double>(static_cast<float>(r[mv::kMotionY]) / static_cast<float>(r[mv::kMotionScale]));
    narrow(s.x0), narrow(s.x1), narrow(s.y0), narrow(s.y1);
    spans.push_back(s);
  }
  const int64_t grid_h = height / cell, grid_w = width / cell, stride = grid_w + 1;
  const size_t plane = static_cast<size_t>((grid_h + 1) * stride);
  std::vector<double> painted(3 * plane, 0.0);  // vx, vy, count
  // The corners in the torch path's index_add_ order: every block's upper-left, then upper-right, lower-left,
  // lower-right, with signs +, -, -, +.
  for (int corner = 0; corner < 4; ++corner) {
    const double sign = corner == 0 || corner == 3 ? 1.0 : -1.0;
    for (const Span& s : spans) {
      const int64_t y = (corner < 2 ? s.y0 : s.y1) / cell, x = (corner % 2 == 0 ? s.x0 : s.x1) / cell;
      const size_t at = static_cast<size_t>(y * stride + x);
      painted[at] += sign * s.vx;
      painted[plane + at] += sign * s.vy;
      painted[2 * plane + at] += sign * 1.0;
    }
  }
  for (int c = 0; c < 3; ++c) {
    double* p = painted.data() + c * plane;
    for (int64_t y = 1; y <= grid_h; ++y) {
      for (int64_t x = 0; x < stride; ++x) p[y * stride + x] += p[(y - 1) * stride + x];
    }
    for (int64_t y = 0; y <= grid_h; ++y) {
      for (int64_t x = 1; x < stride; ++x) p[y * stride + x] += p[y * stride + x - 1];
    }
  }
  const AxisTaps across = axis_taps(static_cast<int>(grid_w), out_w), down = axis_taps(static_cast<int>(grid_h), out_h);
  const int64_t full = across.reduced * down.reduced;
  // Columns first (grid_h x out_w per channel), then rows, each output summed tap by tap.
  std::vector<double> cols(static_cast<size_t>(3 * grid_h * out_w));
  for (int c = 0; c < 3; ++c) {
    for (int64_t y = 0; y < grid_h; ++y) {
      const double* src = painted.data() + c * plane + y * stride;
      double* dst = cols.data() + (c * grid_h + y) * out_w;
      for (int o = 0; o < out_w; ++o) {
        double total = src[across.index[o]] * across.weight[o];
        for (int l = 1; l < across.length; ++l) {
          total += src[across.index[static_cast<size_t>(l) * out_w + o]] * across.weight[static_cast<size_t>(l) * out_w + o];
        }
        dst[o] = total;
      }
    }
  }
  std::vector<double> sums(static_cast<size_t>(3) * out_h * out_w);
  for (int c = 0; c < 3; ++c) {
    for (int o = 0; o < out_h; ++o) {
      double* dst = sums.data() + (static_cast<size_t>(c) * out_h + o) * out_w;
      const double* first = cols.data() + (c * grid_h + down.index[o]) * out_w;
      const double w0 = down.weight[o];
      for (int x = 0; x < out_w; ++x) dst[x] = first[x] * w0;
      for (int l = 1; l < down.length; ++l) {
        const double* src = cols.data() + (c * grid_h + down.index[static_cast<size_t>(l) * out_h + o]) * out_w;
        const double wl = down.weight[static_cast<size_t>(l) * out_h + o];
        for (int x = 0; x < out_w; ++x) dst[x] += src[x] * wl;
      }
    }
  }
  const float scale_x = static_cast<float>(static_cast<double>(out_w) / width);
  const float scale_y = static_cast<float>(static_cast<double>(out_h) / height);
  const size_t n = static_cast<size_t>(out_h) * out_w;
  for (size_t i = 0; i < n; ++i) {
    const double covered = sums[2 * n + i];
    const double divisor = std::max(covered, 1.0);
    field[2 * i] = static_cast<float>(sums[i] / divisor) * scale_x;
    field[2 * i + 1] = static_cast<float>(sums[n + i] / divisor) * scale_y;
    if (mask != nullptr) mask[i] = 2.0 * covered >= static_cast<double>(full);
  }
}

}  // namespace codecprim

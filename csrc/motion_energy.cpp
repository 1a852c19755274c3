#include "motion_energy.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "motion_vectors.h"

namespace codecprim {

namespace {

int floor_half(int v) { return v >= 0 ? v / 2 : -((-v + 1) / 2); }

// The c with bounds[c] <= x < bounds[c + 1], bounds[c] = c * length / cells (x in [0, length)).
int cell_of(int x, int length, int cells) {
  return static_cast<int>(((static_cast<int64_t>(x) + 1) * cells - 1) / length);
}

int bound(int c, int length, int cells) { return static_cast<int>(static_cast<int64_t>(c) * length / cells); }

}  // namespace

void block_motion(const std::vector<const int32_t*>& frames, const std::vector<int64_t>& counts,
                  const MotionGeometry& g, const CameraFitOptions& camera, int32_t* rects, float* length2,
                  uint8_t* fallback) {
  using namespace mv;
  // float32 arithmetic as ops/camera.py's block_centres_and_motion does it, then held in float64
  std::vector<double> x, y, mx, my, area;
  std::vector<uint8_t> inliers;
  CameraFitScratch scratch;
  const float scale_x = static_cast<float>(static_cast<double>(g.model_width) / g.width);
  const float scale_y = static_cast<float>(static_cast<double>(g.model_height) / g.height);
  int64_t base = 0;
  for (size_t t = 0; t < frames.size(); ++t) {
    const int64_t n = counts[t];
    const int32_t* r = frames[t];
    x.resize(n);
    y.resize(n);
    mx.resize(n);
    my.resize(n);
    area.resize(n);
    inliers.resize(n);
    for (int64_t i = 0; i < n; ++i) {
      const int32_t* row = r + i * kMotionVectorColumns;
      const float scale = std::max(static_cast<float>(row[kMotionScale]), 1.0f);
      const float direction = row[kSource] > 0 ? -1.0f : 1.0f;  // future references read as one back
      x[i] = static_cast<float>(row[kDstX]);
      y[i] = static_cast<float>(row[kDstY]);
      mx[i] = static_cast<float>(row[kMotionX]) / scale * direction;
      my[i] = static_cast<float>(row[kMotionY]) / scale * direction;
      area[i] = static_cast<float>(row[kW]) * static_cast<float>(row[kH]);
    }
    const FrameFit fit =
        fit_camera_frame({x.data(), y.data(), mx.data(), my.data(), area.data(), n}, camera, scratch, inliers.data());
    fallback[t] = fit.fallback;
    // what the camera alone moves: (A - I) p + t in float64, rounded once (ops/camera.py's camera_motion)
    const double d00 = static_cast<double>(fit.matrix[0]) - 1.0, d01 = fit.matrix[1], d02 = fit.matrix[2];
    const double d10 = fit.matrix[3], d11 = static_cast<double>(fit.matrix[4]) - 1.0, d12 = fit.matrix[5];
    for (int64_t i = 0; i < n; ++i) {
      const float cam_x = static_cast<float>(d00 * x[i] + d01 * y[i] + d02);
      const float cam_y = static_cast<float>(d10 * x[i] + d11 * y[i] + d12);
      const float dx = (static_cast<float>(mx[i]) - cam_x) * scale_x;
      const float dy = (static_cast<float>(my[i]) - cam_y) * scale_y;
      // dy^2 fused into the sum, as torch's addcmul_ computes it on CPUs with FMA
      length2[base + i] = std::fma(dy, dy, dx * dx);
      const int32_t* row = r + i * kMotionVectorColumns;
      const int left = row[kDstX] - floor_half(row[kW]), top = row[kDstY] - floor_half(row[kH]);
      int32_t* rect = rects + 4 * (base + i);
      rect[0] = std::clamp(left, 0, g.width);
      rect[1] = std::clamp(top, 0, g.height);
      rect[2] = std::clamp(left + row[kW], 0, g.width);
      rect[3] = std::clamp(top + row[kH], 0, g.height);
    }
    base += n;
  }
}

void pool_motion(const int32_t* rects, const float* length, const std::vector<int64_t>& counts, int height,
                 int width, int hg, int wg, float* sum_v, int64_t* sum_a) {
  const int cells = hg * wg;
  std::vector<int> rows(hg + 1), cols(wg + 1);
  for (int r = 0; r <= hg; ++r) rows[r] = bound(r, height, hg);
  for (int c = 0; c <= wg; ++c) cols[c] = bound(c, width, wg);
  std::vector<int> bucket_start(cells + 1);
  std::vector<int> bucket;
  std::vector<int64_t> order;
  int64_t base = 0;
  for (size_t t = 0; t < counts.size(); ++t) {
    const int64_t n = counts[t];
    const int32_t* frame_rects = rects + 4 * base;
    float* sv = sum_v + t * cells;
    int64_t* sa = sum_a + t * cells;
    std::fill(sv, sv + cells, 0.0f);
    std::fill(sa, sa + cells, int64_t{0});
    // a stable counting sort of the frame's non-empty blocks by the cell of their top-left pixel
    bucket.assign(n, -1);
    std::fill(bucket_start.begin(), bucket_start.end(), 0);
    for (int64_t i = 0; i < n; ++i) {
      const int32_t* b = frame_rects + 4 * i;
      if (b[2] <= b[0] || b[3] <= b[1]) continue;  // clipped away: covers nothing
      bucket[i] = cell_of(b[1], height, hg) * wg + cell_of(b[0], width, wg);
      ++bucket_start[bucket[i] + 1];
    }
    for (int c = 0; c < cells; ++c) bucket_start[c + 1] += bucket_start[c];
    order.resize(bucket_start[cells]);
    for (int64_t i = 0; i < n; ++i) {
      if (bucket[i] >= 0) order[bucket_start[bucket[i]]++] = i;
    }
    for (const int64_t i : order) {
      const int32_t* b = frame_rects + 4 * i;
      const int cy0 = cell_of(b[1], height, hg), cy1 = cell_of(b[3] - 1, height, hg);
      const int cx0 = cell_of(b[0], width, wg), cx1 = cell_of(b[2] - 1, width, wg);
      const float len = length[base + i];
      for (int cr = cy0; cr <= cy1; ++cr) {
        const int oy = std::min(b[3], rows[cr + 1]) - std::max(b[1], rows[cr]);
        for (int cc = cx0; cc <= cx1; ++cc) {
          const int ox = std::min(b[2], cols[cc + 1]) - std::max(b[0], cols[cc]);
          const int ov = ox * oy;
          sv[cr * wg + cc] = sv[cr * wg + cc] + len * static_cast<float>(ov);
          sa[cr * wg + cc] += ov;
        }
      }
    }
    base += n;
  }
}

}  // namespace codecprim

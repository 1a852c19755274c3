#include "block_matching.h"

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "interpolation.h"
#include "simd_dispatch.h"

namespace codecprim {
namespace {

constexpr int kInf = 1 << 30;  // added to the cost of a candidate outside the search range
constexpr int kQuarter = 4;

int regulariser(int qx, int qy, int px, int py, int limit_q, int lam) {
  if (std::abs(qx) > limit_q || std::abs(qy) > limit_q) return kInf;
  return lam * (std::abs(qx - px) + std::abs(qy - py));
}

// The part of a block's support inside the frame: the only pixels its SAD counts.
struct Rect {
  int x0, y0, w, h;
  bool empty() const { return w <= 0 || h <= 0; }
};

Rect clip(int left, int top, int side, int width, int height) {
  const int x0 = std::max(left, 0), y0 = std::max(top, 0);
  return {x0, y0, std::min(left + side, width) - x0, std::min(top + side, height) - y0};
}

// SAD of the frame's pixels in `rect` against the reference moved by (vx, vy), reference edge clamped. Matches
// inside the reference read it directly; the rest go through an edge-clamped copy in `scratch`.
class Matcher {
 public:
  Matcher(const uint8_t* cur, const uint8_t* ref, int width, int height)
      : cur_(cur), ref_(ref), width_(width), height_(height), sad_(pixel_kernels().sad) {}

  int sad(const Rect& rect, int vx, int vy) {
    if (rect.empty()) return 0;
    const uint8_t* a = cur_ + static_cast<std::ptrdiff_t>(rect.y0) * width_ + rect.x0;
    const int x = rect.x0 + vx, y = rect.y0 + vy;
    if (x >= 0 && y >= 0 && x + rect.w <= width_ && y + rect.h <= height_) {
      return sad_(a, width_, ref_ + static_cast<std::ptrdiff_t>(y) * width_ + x, width_, rect.w, rect.h);
    }
    scratch_.resize(static_cast<size_t>(rect.w) * rect.h);
    for (int r = 0; r < rect.h; ++r) {
      const uint8_t* src = ref_ + static_cast<std::ptrdiff_t>(std::clamp(y + r, 0, height_ - 1)) * width_;
      uint8_t* dst = scratch_.data() + static_cast<size_t>(r) * rect.w;
      for (int c = 0; c < rect.w; ++c) dst[c] = src[std::clamp(x + c, 0, width_ - 1)];
    }
    return sad_(a, width_, scratch_.data(), rect.w, rect.w, rect.h);
  }

 private:
  const uint8_t* cur_;
  const uint8_t* ref_;
  int width_, height_;
  int (*sad_)(const uint8_t*, int, const uint8_t*, int, int, int);
  std::vector<uint8_t> scratch_;
};

// The candidate with the first minimal cost.
struct Best {
  int vx = 0, vy = 0, cost = 0;
  bool set = false;
  void offer(int x, int y, int c) {
    if (!set || c < cost) *this = {x, y, c, true};
  }
};

}  // namespace

void block_search(const LumaStack& cur, const LumaStack& ref, const BlockGrid& grid, const int32_t* centres,
                  int radius, const int32_t* extras, int num_extras, const int32_t* pred_q, int level, int limit_q,
                  int lam, int32_t* out_vec, int32_t* out_cost) {
  const int per_frame = grid.rows * grid.cols;
  const int support = grid.size + 2 * grid.margin;
  const int qscale = kQuarter << level;
  const std::ptrdiff_t plane = static_cast<std::ptrdiff_t>(cur.height) * cur.width;
  for (int t = 0; t < cur.frames; ++t) {
    Matcher match(cur.data + t * plane, ref.data + t * plane, cur.width, cur.height);
    for (int k = 0; k < per_frame; ++k) {
      const int b = t * per_frame + k;
      const Rect rect = clip(k % grid.cols * grid.size - grid.margin, k / grid.cols * grid.size - grid.margin,
                             support, cur.width, cur.height);
      const int cx = centres[2 * b], cy = centres[2 * b + 1];
      const int px = pred_q[2 * b], py = pred_q[2 * b + 1];
      Best best;
      auto evaluate = [&](int vx, int vy) {
        best.offer(vx, vy, (match.sad(rect, vx, vy) << (2 * level)) +
                               regulariser(vx * qscale, vy * qscale, px, py, limit_q, lam));
      };
      evaluate(cx, cy);
      for (int dy = -radius; dy <= radius; ++dy) {
        for (int dx = -radius; dx <= radius; ++dx) {
          if (dx || dy) evaluate(cx + dx, cy + dy);
        }
      }
      const int32_t* ex = extras + static_cast<std::ptrdiff_t>(b) * num_extras * 2;
      for (int e = 0; e < num_extras; ++e) {
        const int vx = ex[2 * e], vy = ex[2 * e + 1];
        // A repeat of an earlier candidate costs the same and so can never be the first minimum.
        bool repeat = std::abs(vx - cx) <= radius && std::abs(vy - cy) <= radius;
        for (int j = 0; j < e && !repeat; ++j) repeat = ex[2 * j] == vx && ex[2 * j + 1] == vy;
        if (!repeat) evaluate(vx, vy);
      }
      out_vec[2 * b] = best.vx;
      out_vec[2 * b + 1] = best.vy;
      out_cost[b] = best.cost;
    }
  }
}

void subpel_refine(const LumaStack& cur, const LumaStack& ref, const BlockGrid& grid, const int32_t* vectors,
                   const int32_t* base_cost, const int32_t* pred_q, int limit_q, int lam, int32_t* out_q,
                   int32_t* out_cost) {
  const int per_frame = grid.rows * grid.cols;
  const std::ptrdiff_t plane = static_cast<std::ptrdiff_t>(cur.height) * cur.width;
  const auto& kernels = pixel_kernels();
  uint8_t pred[kMaxBlock * kMaxBlock];
  for (int t = 0; t < cur.frames; ++t) {
    const uint8_t* cur_t = cur.data + t * plane;
    const Plane ref_t{ref.data + t * plane, ref.width, ref.width, ref.height};
    for (int k = 0; k < per_frame; ++k) {
      const int b = t * per_frame + k;
      const Rect rect = clip(k % grid.cols * grid.size, k / grid.cols * grid.size, grid.size, cur.width,
                             cur.height);
      const int vx = vectors[2 * b], vy = vectors[2 * b + 1];
      const int px = pred_q[2 * b], py = pred_q[2 * b + 1];
      // SAD of the bilinear prediction at quarter-pel vector (qx, qy), in tiles the interpolator takes.
      auto sad_at = [&](int qx, int qy) {
        int total = 0;
        for (int y = 0; y < rect.h; y += kMaxBlock) {
          for (int x = 0; x < rect.w; x += kMaxBlock) {
            const int w = std::min(kMaxBlock, rect.w - x), h = std::min(kMaxBlock, rect.h - y);
            kernels.bilinear_qpel(ref_t, rect.x0 + x, rect.y0 + y, qx, qy, w, h, pred, kMaxBlock);
            total += kernels.sad(cur_t + static_cast<std::ptrdiff_t>(rect.y0 + y) * cur.width + rect.x0 + x,
                                 cur.width, pred, kMaxBlock, w, h);
          }
        }
        return total;
      };
      int rel_x = 0, rel_y = 0, cost = base_cost[b];
      for (int step = 2; step >= 1; --step) {
        const int from_x = rel_x, from_y = rel_y;
        for (int n = 0; n < 9; ++n) {
          if (n == 4) continue;  // the centre is the current best
          const int rx = from_x + step * (n % 3 - 1), ry = from_y + step * (n / 3 - 1);
          const int qx = kQuarter * vx + rx, qy = kQuarter * vy + ry;
          const int c = (rect.empty() ? 0 : sad_at(qx, qy)) + regulariser(qx, qy, px, py, limit_q, lam);
          if (c < cost) {
            cost = c;
            rel_x = rx;
            rel_y = ry;
          }
        }
      }
      out_q[2 * b] = kQuarter * vx + rel_x;
      out_q[2 * b + 1] = kQuarter * vy + rel_y;
      out_cost[b] = cost;
    }
  }
}

}  // namespace codecprim

#include "block_matching.h"

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "interpolation.h"
#include "simd_dispatch.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

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

// SAD of two w x h blocks. The block widths the search meets (16, 8 and the coarse levels' 4) are inlined here with
// SSE2, several narrow rows to a vector; other widths go to the dispatched row kernels.
int block_sad(const uint8_t* a, int as, const uint8_t* b, int bs, int w, int h,
              int (*kernel)(const uint8_t*, int, const uint8_t*, int, int, int)) {
#if defined(__SSE2__)
  auto load16 = [](const uint8_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); };
  auto load8x2 = [](const uint8_t* p, std::ptrdiff_t stride) {
    return _mm_unpacklo_epi64(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)),
                              _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + stride)));
  };
  auto load4x4 = [](const uint8_t* p, std::ptrdiff_t stride) {
    int32_t r[4];
    for (int i = 0; i < 4; ++i) std::memcpy(&r[i], p + i * stride, 4);
    return _mm_set_epi32(r[3], r[2], r[1], r[0]);
  };
  const int rows_per_vector = w == 16 ? 1 : w == 8 ? 2 : w == 4 ? 4 : 0;
  if (rows_per_vector && h % rows_per_vector == 0) {
    __m128i acc = _mm_setzero_si128();
    for (int r = 0; r < h; r += rows_per_vector) {
      const uint8_t* pa = a + static_cast<std::ptrdiff_t>(r) * as;
      const uint8_t* pb = b + static_cast<std::ptrdiff_t>(r) * bs;
      const __m128i va = w == 16 ? load16(pa) : w == 8 ? load8x2(pa, as) : load4x4(pa, as);
      const __m128i vb = w == 16 ? load16(pb) : w == 8 ? load8x2(pb, bs) : load4x4(pb, bs);
      acc = _mm_add_epi64(acc, _mm_sad_epu8(va, vb));
    }
    return _mm_cvtsi128_si32(acc) + _mm_cvtsi128_si32(_mm_srli_si128(acc, 8));
  }
#endif
  return kernel(a, as, b, bs, w, h);
}

// A reference frame with its edges replicated `pad` pixels outward: reads within the pad need no clamping, and
// replicating is idempotent, so a read clamped to the padded frame equals one clamped to the frame.
class PaddedFrame {
 public:
  void fill(const uint8_t* frame, int width, int height, int pad) {
    pad_ = pad;
    stride_ = width + 2 * pad;
    buffer_.resize(static_cast<size_t>(stride_) * (height + 2 * pad));
    for (int r = -pad; r < height + pad; ++r) {
      const uint8_t* src = frame + static_cast<std::ptrdiff_t>(std::clamp(r, 0, height - 1)) * width;
      uint8_t* dst = buffer_.data() + static_cast<std::ptrdiff_t>(r + pad) * stride_;
      std::memset(dst, src[0], static_cast<size_t>(pad));
      std::memcpy(dst + pad, src, static_cast<size_t>(width));
      std::memset(dst + pad + width, src[width - 1], static_cast<size_t>(pad));
    }
  }
  int pad() const { return pad_; }
  int stride() const { return stride_; }
  const uint8_t* at(int x, int y) const {
    return buffer_.data() + static_cast<std::ptrdiff_t>(y + pad_) * stride_ + x + pad_;
  }

 private:
  std::vector<uint8_t> buffer_;
  int pad_ = 0, stride_ = 0;
};

// SAD of the frame's pixels in `rect` against the reference moved by (vx, vy), reference edge clamped: read from
// the padded reference, or (a match reaching beyond its pad) through an edge-clamped copy.
class Matcher {
 public:
  Matcher(const uint8_t* cur, const uint8_t* ref, int width, int height, int pad)
      : cur_(cur), ref_(ref), width_(width), height_(height), sad_(pixel_kernels().sad) {
    padded_.fill(ref, width, height, pad);
  }

  int sad(const Rect& rect, int vx, int vy) {
    if (rect.empty()) return 0;
    const uint8_t* a = cur_ + static_cast<std::ptrdiff_t>(rect.y0) * width_ + rect.x0;
    const int x = rect.x0 + vx, y = rect.y0 + vy, p = padded_.pad();
    if (x >= -p && y >= -p && x + rect.w <= width_ + p && y + rect.h <= height_ + p) {
      return block_sad(a, width_, padded_.at(x, y), padded_.stride(), rect.w, rect.h, sad_);
    }
    scratch_.resize(static_cast<size_t>(rect.w) * rect.h);
    for (int r = 0; r < rect.h; ++r) {
      const uint8_t* src = ref_ + static_cast<std::ptrdiff_t>(std::clamp(y + r, 0, height_ - 1)) * width_;
      uint8_t* dst = scratch_.data() + static_cast<size_t>(r) * rect.w;
      for (int c = 0; c < rect.w; ++c) dst[c] = src[std::clamp(x + c, 0, width_ - 1)];
    }
    return block_sad(a, width_, scratch_.data(), rect.w, rect.w, rect.h, sad_);
  }

 private:
  const uint8_t* cur_;
  const uint8_t* ref_;
  int width_, height_;
  int (*sad_)(const uint8_t*, int, const uint8_t*, int, int, int);
  PaddedFrame padded_;
  std::vector<uint8_t> scratch_;
};

// How far the candidates of blocks [first, first + count) reach (the largest vector component), capped: the pad
// a frame's matches need.
int reach(const int32_t* centres, int radius, const int32_t* extras, int num_extras, std::ptrdiff_t first,
          int count) {
  constexpr int kMaxPad = 128;  // farther matches (rare) take the clamped copy
  int most = 0;
  for (std::ptrdiff_t b = first; b < first + count; ++b) {
    most = std::max({most, std::abs(centres[2 * b]) + radius, std::abs(centres[2 * b + 1]) + radius});
    for (int e = 0; e < 2 * num_extras; ++e) most = std::max(most, std::abs(extras[b * num_extras * 2 + e]));
  }
  return std::min(most, kMaxPad);
}

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
    const int pad = reach(centres, radius, extras, num_extras, static_cast<std::ptrdiff_t>(t) * per_frame, per_frame);
    Matcher match(cur.data + t * plane, ref.data + t * plane, cur.width, cur.height, pad);
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

void block_residual(const LumaStack& cur, const LumaStack& ref, const BlockGrid& grid, const int32_t* vectors_q,
                    const uint8_t* zero, int16_t* out) {
  const int per_frame = grid.rows * grid.cols;
  const std::ptrdiff_t plane = static_cast<std::ptrdiff_t>(cur.height) * cur.width;
  const auto& kernels = pixel_kernels();
  PaddedFrame padded;
  uint8_t pred[kMaxBlock * kMaxBlock];
  for (int t = 0; t < cur.frames; ++t) {
    const int32_t* v = vectors_q + static_cast<std::ptrdiff_t>(t) * per_frame * 2;
    // Padded by the frame's largest vector component (+1 for the bilinear taps), every block reads inside it.
    int pad = 1;
    for (int i = 0; i < 2 * per_frame; ++i) pad = std::max(pad, std::abs(v[i]) / 4 + 2);
    padded.fill(ref.data + t * plane, ref.width, ref.height, pad);
    const Plane ref_t{padded.at(-pad, -pad), padded.stride(), ref.width + 2 * pad, ref.height + 2 * pad};
    for (int k = 0; k < per_frame; ++k) {
      const Rect rect = clip(k % grid.cols * grid.size, k / grid.cols * grid.size, grid.size, cur.width, cur.height);
      if (rect.empty()) continue;
      const std::ptrdiff_t at = t * plane + static_cast<std::ptrdiff_t>(rect.y0) * cur.width + rect.x0;
      if (zero[static_cast<std::ptrdiff_t>(t) * per_frame + k]) {
        for (int r = 0; r < rect.h; ++r) std::fill_n(out + at + static_cast<std::ptrdiff_t>(r) * cur.width, rect.w, 0);
        continue;
      }
      const int qx = v[2 * k], qy = v[2 * k + 1];
      if ((qx & 3) == 0 && (qy & 3) == 0) {
        kernels.subtract(cur.data + at, cur.width, padded.at(rect.x0 + (qx >> 2), rect.y0 + (qy >> 2)),
                         padded.stride(), out + at, cur.width, rect.w, rect.h);
        continue;
      }
      // Fractional: bilinear prediction in tiles the interpolator takes (the padded plane's origin is (-pad, -pad)).
      for (int y = 0; y < rect.h; y += kMaxBlock) {
        for (int x = 0; x < rect.w; x += kMaxBlock) {
          const int w = std::min(kMaxBlock, rect.w - x), h = std::min(kMaxBlock, rect.h - y);
          kernels.bilinear_qpel(ref_t, rect.x0 + x + pad, rect.y0 + y + pad, qx, qy, w, h, pred, kMaxBlock);
          const std::ptrdiff_t tile = at + static_cast<std::ptrdiff_t>(y) * cur.width + x;
          kernels.subtract(cur.data + tile, cur.width, pred, kMaxBlock, out + tile, cur.width, w, h);
        }
      }
    }
  }
}

void downsample_2x2(const LumaStack& src, uint8_t* dst) {
  const int h2 = (src.height + 1) / 2, w2 = (src.width + 1) / 2;
  for (int t = 0; t < src.frames; ++t) {
    const uint8_t* in = src.data + static_cast<std::ptrdiff_t>(t) * src.height * src.width;
    uint8_t* o = dst + static_cast<std::ptrdiff_t>(t) * h2 * w2;
    for (int r = 0; r < h2; ++r) {
      const uint8_t* a = in + static_cast<std::ptrdiff_t>(2 * r) * src.width;
      const uint8_t* b = in + static_cast<std::ptrdiff_t>(std::min(2 * r + 1, src.height - 1)) * src.width;
      for (int c = 0; c < w2; ++c) {
        const int x0 = 2 * c, x1 = std::min(2 * c + 1, src.width - 1);
        o[static_cast<std::ptrdiff_t>(r) * w2 + c] = static_cast<uint8_t>((a[x0] + a[x1] + b[x0] + b[x1] + 2) >> 2);
      }
    }
  }
}

void block_structure(const LumaStack& cur, const BlockGrid& grid, int64_t* out) {
  const int per_frame = grid.rows * grid.cols;
  const int w = cur.width, h = cur.height;
  std::fill_n(out, static_cast<std::ptrdiff_t>(cur.frames) * per_frame * 3, int64_t{0});
  for (int t = 0; t < cur.frames; ++t) {
    const uint8_t* frame = cur.data + static_cast<std::ptrdiff_t>(t) * h * w;
    int64_t* frame_out = out + static_cast<std::ptrdiff_t>(t) * per_frame * 3;
    for (int y = 0; y < h; ++y) {
      const uint8_t* row = frame + static_cast<std::ptrdiff_t>(y) * w;
      const uint8_t* below = y + 1 < h ? row + w : nullptr;
      int64_t* row_out = frame_out + static_cast<std::ptrdiff_t>(y / grid.size) * grid.cols * 3;
      for (int x0 = 0; x0 < w; x0 += grid.size) {
        const int x1 = std::min(x0 + grid.size, w);
        int32_t xx = 0, yy = 0, xy = 0;  // one block row: at most 32 * 255^2, no overflow
        for (int x = x0; x < x1; ++x) {
          const int gx = x + 1 < w ? row[x + 1] - row[x] : 0;
          const int gy = below ? below[x] - row[x] : 0;
          xx += gx * gx;
          yy += gy * gy;
          xy += gx * gy;
        }
        int64_t* o = row_out + (x0 / grid.size) * 3;
        o[0] += xx;
        o[1] += yy;
        o[2] += xy;
      }
    }
  }
}

}  // namespace codecprim

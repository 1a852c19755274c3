// The pixel kernels behind simd_dispatch.h: luma motion compensation of one block as the decoders do it, and the
// block operations of the residual (SAD, bi-prediction average, subtraction).
//
// Compiled once per instruction set by simd_baseline.cpp, simd_sse2.cpp and simd_avx2.cpp, which define
// CODECPRIM_SIMD_LEVEL and CODECPRIM_SIMD_NS first; everything here lives in that namespace, so the builds
// never meet at link time. Each kernel dispatches on the block width once, to code compiled for 16, 8 and 4
// samples (the sizes the exporters emit), with a run-time width for anything else.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "h264_filters.h"
#include "interpolation.h"
#include "pixel_rows.h"
#include "simd_dispatch.h"

namespace codecprim::CODECPRIM_SIMD_NS {
namespace {

// The 6-tap filter reads 2 samples before and 3 after a position, and quarter-pel averages reach one sample
// further (the sample right of / below the block), so a block needs 2 samples before and 4 after it.
constexpr int kWindow = kMaxBlock + 2 + 4;

inline int clamp_int(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

// A view of the reference around a block: a pointer into the picture when the window lies inside it,
// else a copy with clamped coordinates (edge extension). `origin` addresses sample (x0, y0).
struct Window {
  uint8_t buffer[kWindow * kWindow];
  const uint8_t* origin;
  int stride;

  Window(const Plane& ref, int x0, int y0, int w, int h, int margin_before, int margin_after) {
    const int left = x0 - margin_before, top = y0 - margin_before;
    const int right = x0 + w + margin_after, bottom = y0 + h + margin_after;  // exclusive
    if (left >= 0 && top >= 0 && right <= ref.width && bottom <= ref.height) {
      origin = ref.data + static_cast<std::ptrdiff_t>(y0) * ref.stride + x0;
      stride = ref.stride;
      return;
    }
    stride = kWindow;
    const int cols = right - left, rows = bottom - top;
    // Columns split into a run left of the picture (copies of sample 0), the part inside, and a run right of
    // it (copies of the last sample); a window may lie wholly outside on one side.
    const int inner_begin = clamp_int(-left, 0, cols), inner_end = clamp_int(ref.width - left, inner_begin, cols);
    for (int r = 0; r < rows; ++r) {
      const uint8_t* src_row = ref.data + static_cast<std::ptrdiff_t>(clamp_int(top + r, 0, ref.height - 1)) * ref.stride;
      uint8_t* dst_row = buffer + r * kWindow;
      // Most edge windows cross one side only, or only the top or bottom: the empty runs cost no call.
      if (inner_begin > 0) std::memset(dst_row, src_row[0], static_cast<size_t>(inner_begin));
      std::memcpy(dst_row + inner_begin, src_row + left + inner_begin, static_cast<size_t>(inner_end - inner_begin));
      if (inner_end < cols) std::memset(dst_row + inner_end, src_row[ref.width - 1], static_cast<size_t>(cols - inner_end));
    }
    origin = buffer + margin_before * kWindow + margin_before;
  }
};

// Calls body(W) with W an integral constant: the compile-time width for 16, 8 and 4, else 0 (run-time width).
template <typename Body>
inline auto by_width(int w, Body&& body) {
  switch (w) {
    case 16: return body(std::integral_constant<int, 16>());
    case 8: return body(std::integral_constant<int, 8>());
    case 4: return body(std::integral_constant<int, 4>());
    default: return body(std::integral_constant<int, 0>());
  }
}

template <int W>
void halfpel_w(const Plane& ref, int x, int y, int mv_x, int mv_y, int w, int h, bool no_rounding, uint8_t* dst,
               int dst_stride) {
  const int fx = mv_x & 1, fy = mv_y & 1;
  const Window win(ref, x + (mv_x >> 1), y + (mv_y >> 1), w, h, 0, 1);
  const uint8_t* s = win.origin;
  const int st = win.stride;
  // One loop per sub-pel case, so the case is decided once per block rather than once per row.
  auto each_row = [&](auto&& row_op) {
    for (int r = 0; r < h; ++r) row_op(s + r * st, dst + r * dst_stride);
  };
  if (!fx && !fy) {
    each_row([&](const uint8_t* a, uint8_t* out) { rows::copy<W>(a, out, w); });
  } else if (fx && fy) {
    const int bias = no_rounding ? 1 : 2;
    each_row([&](const uint8_t* a, uint8_t* out) { rows::average4<W>(a, a + st, bias, out, w); });
  } else {
    const int step = fx ? 1 : st;  // right neighbour or the sample below
    if (no_rounding) {
      each_row([&](const uint8_t* a, uint8_t* out) { rows::average_down<W>(a, a + step, out, w); });
    } else {
      each_row([&](const uint8_t* a, uint8_t* out) { rows::average<W>(a, a + step, out, w); });
    }
  }
}

void halfpel(const Plane& ref, int x, int y, int mv_x, int mv_y, int w, int h, bool no_rounding, uint8_t* dst,
             int dst_stride) {
  by_width(w, [&](auto W) { halfpel_w<W()>(ref, x, y, mv_x, mv_y, w, h, no_rounding, dst, dst_stride); });
}

void bilinear_qpel(const Plane& ref, int x, int y, int mv_x, int mv_y, int w, int h, uint8_t* dst, int dst_stride) {
  const int fx = mv_x & 3, fy = mv_y & 3;
  const Window win(ref, x + (mv_x >> 2), y + (mv_y >> 2), w, h, 0, 1);
  const int w00 = (4 - fx) * (4 - fy), w01 = fx * (4 - fy), w10 = (4 - fx) * fy, w11 = fx * fy;
  for (int r = 0; r < h; ++r) {
    const uint8_t* a = win.origin + r * win.stride;
    const uint8_t* b = a + win.stride;
    uint8_t* out = dst + r * dst_stride;
    for (int c = 0; c < w; ++c) {
      out[c] = static_cast<uint8_t>((w00 * a[c] + w01 * a[c + 1] + w10 * b[c] + w11 * b[c + 1] + 8) >> 4);
    }
  }
}

template <int W>
void h264_qpel_w(const Plane& ref, int x, int y, int mv_x, int mv_y, int w, int h, uint8_t* dst, int dst_stride) {
  const int fx = mv_x & 3, fy = mv_y & 3;
  const Window win(ref, x + (mv_x >> 2), y + (mv_y >> 2), w, h, 2, 4);
  const uint8_t* G = win.origin;  // integer sample (0, 0) of the block
  const int st = win.stride;

  if (fx == 0 && fy == 0) {
    for (int r = 0; r < h; ++r) rows::copy<W>(G + r * st, dst + r * dst_stride, w);
    return;
  }
  // The standard's sample planes, as rows padded to whole 8-sample vectors:
  //   b[r]: horizontal half samples of row r + b_row (b_row 1 for fy == 3: the row below, "s")
  //   v[r]: vertical half samples below row r ("h"); for fx == 3 the column to the right ("m"), the only
  //         one those positions use
  //   j[r]: centre samples, from the unrounded horizontal intermediates b1 of rows r-2..r+3
  // Each position averages two of them (or copies one); only those two are computed.
  constexpr int kPad = kMaxBlock + 8;
  alignas(32) uint8_t b[kMaxBlock][kPad];
  alignas(32) uint8_t v[kMaxBlock][kPad];
  alignas(32) uint8_t j[kMaxBlock][kPad];
  struct Rows {
    const uint8_t* data;
    int step;
  };
  const Rows g0{G, st}, g1{G + 1, st}, gd{G + st, st}, hb{b[0], kPad}, hv{v[0], kPad}, hj{j[0], kPad},
      none{nullptr, 0};
  Rows first = none, second = none;
  switch (fy * 4 + fx) {
    case 1: first = g0, second = hb; break;   // a
    case 2: first = hb; break;                // b
    case 3: first = g1, second = hb; break;   // c
    case 4: first = g0, second = hv; break;   // d
    case 5: first = hb, second = hv; break;   // e
    case 6: first = hb, second = hj; break;   // f
    case 7: first = hb, second = hv; break;   // g (v holds "m")
    case 8: first = hv; break;                // h
    case 9: first = hv, second = hj; break;   // i
    case 10: first = hj; break;               // j
    case 11: first = hj, second = hv; break;  // k (v holds "m")
    case 12: first = gd, second = hv; break;  // n
    case 13: first = hv, second = hb; break;  // p (b holds "s")
    case 14: first = hj, second = hb; break;  // q (b holds "s")
    default: first = hv, second = hb; break;  // r (v holds "m", b holds "s")
  }
  auto uses = [&](const Rows& plane) { return first.data == plane.data || second.data == plane.data; };
  const int b_row = fy == 3 ? 1 : 0;
  if (uses(hj)) {
    alignas(32) int16_t b1[kMaxBlock + 5][kPad];  // rows -2 .. h+2; fits int16 (|b1| <= 42 * 255)
    for (int r = 0; r < h + 5; ++r) h264::horizontal_unrounded<W>(G + (r - 2) * st, b1[r], w);
    for (int r = 0; r < h; ++r) {
      h264::centre<W>(b1[r], b1[r + 1], b1[r + 2], b1[r + 3], b1[r + 4], b1[r + 5], j[r], w);
    }
    if (uses(hb)) {
      for (int r = 0; r < h; ++r) h264::rounded_half_samples<W>(b1[r + 2 + b_row], b[r], w);
    }
  } else if (uses(hb)) {
    for (int r = 0; r < h; ++r) h264::half_samples<W>(G + (r + b_row) * st, 1, b[r], w);
  }
  if (uses(hv)) h264::vertical_half_samples<W>(G + (fx == 3 ? 1 : 0), st, v[0], kPad, h, w);
  if (second.data == nullptr) {
    for (int r = 0; r < h; ++r) rows::copy<W>(first.data + r * first.step, dst + r * dst_stride, w);
    return;
  }
  for (int r = 0; r < h; ++r) {
    rows::average<W>(first.data + r * first.step, second.data + r * second.step, dst + r * dst_stride, w);
  }
}

void h264_qpel(const Plane& ref, int x, int y, int mv_x, int mv_y, int w, int h, uint8_t* dst, int dst_stride) {
  by_width(w, [&](auto W) { h264_qpel_w<W()>(ref, x, y, mv_x, mv_y, w, h, dst, dst_stride); });
}

void copy(const uint8_t* src, int src_stride, uint8_t* dst, int dst_stride, int w, int h) {
  by_width(w, [&](auto W) {
    for (int r = 0; r < h; ++r) rows::copy<W()>(src + r * src_stride, dst + r * dst_stride, w);
  });
}

#if CODECPRIM_SIMD_LEVEL >= 1
// The four 64-bit lanes' sum (SSE2: two) of psadbw partial sums.
#if CODECPRIM_SIMD_LEVEL >= 2
inline int lanes_sum(__m256i v) {
  const __m128i s = _mm_add_epi64(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  return _mm_cvtsi128_si32(_mm_add_epi64(s, _mm_srli_si128(s, 8)));
}
#endif
inline int lanes_sum(__m128i v) { return _mm_cvtsi128_si32(_mm_add_epi64(v, _mm_srli_si128(v, 8))); }

// SAD of a 16- or 8-wide block of even height, two rows per psadbw where they fit and the partial sums kept in a
// vector. H > 0 fixes the height, so the exporters' blocks (16 or 8 wide; 16, 8 or 4 high) run unrolled: the
// per-row loop and its bound checks were half of a SAD's instructions.
template <int W, int H>
int sad_vector(const uint8_t* a, int a_stride, const uint8_t* b, int b_stride, int h) {
  if constexpr (H > 0) h = H;
  if constexpr (W == 8) {
    __m128i acc = _mm_setzero_si128();
    for (int r = 0; r < h; r += 2) {
      const __m128i x = _mm_unpacklo_epi64(rows::load8(a + r * a_stride), rows::load8(a + (r + 1) * a_stride));
      const __m128i y = _mm_unpacklo_epi64(rows::load8(b + r * b_stride), rows::load8(b + (r + 1) * b_stride));
      acc = _mm_add_epi64(acc, _mm_sad_epu8(x, y));
    }
    return lanes_sum(acc);
  } else {
#if CODECPRIM_SIMD_LEVEL >= 2
    __m256i acc = _mm256_setzero_si256();
    for (int r = 0; r < h; r += 2) {
      const __m256i x = _mm256_inserti128_si256(_mm256_castsi128_si256(rows::load16(a + r * a_stride)),
                                                rows::load16(a + (r + 1) * a_stride), 1);
      const __m256i y = _mm256_inserti128_si256(_mm256_castsi128_si256(rows::load16(b + r * b_stride)),
                                                rows::load16(b + (r + 1) * b_stride), 1);
      acc = _mm256_add_epi64(acc, _mm256_sad_epu8(x, y));
    }
#else
    __m128i acc = _mm_setzero_si128();
    for (int r = 0; r < h; ++r) {
      acc = _mm_add_epi64(acc, _mm_sad_epu8(rows::load16(a + r * a_stride), rows::load16(b + r * b_stride)));
    }
#endif
    return lanes_sum(acc);
  }
}
#endif

int sad(const uint8_t* a, int a_stride, const uint8_t* b, int b_stride, int w, int h) {
#if CODECPRIM_SIMD_LEVEL >= 1
  if (w == 16) {
    if (h == 16) return sad_vector<16, 16>(a, a_stride, b, b_stride, h);
    if (h == 8) return sad_vector<16, 8>(a, a_stride, b, b_stride, h);
    if (h % 2 == 0) return sad_vector<16, 0>(a, a_stride, b, b_stride, h);
  } else if (w == 8) {
    if (h == 8) return sad_vector<8, 8>(a, a_stride, b, b_stride, h);
    if (h == 16) return sad_vector<8, 16>(a, a_stride, b, b_stride, h);
    if (h == 4) return sad_vector<8, 4>(a, a_stride, b, b_stride, h);
    if (h % 2 == 0) return sad_vector<8, 0>(a, a_stride, b, b_stride, h);
  }
#endif
  return by_width(w, [&](auto W) {
    int total = 0;
    for (int r = 0; r < h; ++r) total += rows::sad<W()>(a + r * a_stride, b + r * b_stride, w);
    return total;
  });
}

void average(const uint8_t* a, int a_stride, const uint8_t* b, int b_stride, uint8_t* dst, int dst_stride, int w,
             int h) {
  by_width(w, [&](auto W) {
    for (int r = 0; r < h; ++r) rows::average<W()>(a + r * a_stride, b + r * b_stride, dst + r * dst_stride, w);
  });
}

void subtract(const uint8_t* cur, int cur_stride, const uint8_t* pred, int pred_stride, int16_t* out,
              int out_stride, int w, int h) {
  auto rows_of = [&](auto W, int height) {
    for (int r = 0; r < height; ++r) {
      rows::subtract<W()>(cur + static_cast<std::ptrdiff_t>(r) * cur_stride, pred + r * pred_stride,
                          out + static_cast<std::ptrdiff_t>(r) * out_stride, w);
    }
  };
  // A whole macroblock, the common case, as straight-line code.
  if (w == 16 && h == 16) return rows_of(std::integral_constant<int, 16>(), 16);
  by_width(w, [&](auto W) { rows_of(W, h); });
}

int subtract_sad(const uint8_t* cur, int cur_stride, const uint8_t* pred, int pred_stride, int16_t* out,
                 int out_stride, int w, int h) {
#if CODECPRIM_SIMD_LEVEL >= 1
  if (w == 16 && h == 16) {
    // The macroblock the reference search tests first: psadbw on the bytes the subtraction loaded anyway.
    __m128i acc = _mm_setzero_si128();
    for (int r = 0; r < 16; ++r) {
      const __m128i x = rows::load16(cur + static_cast<std::ptrdiff_t>(r) * cur_stride);
      const __m128i p = rows::load16(pred + r * pred_stride);
      acc = _mm_add_epi64(acc, _mm_sad_epu8(x, p));
      rows::subtract16(x, p, out + static_cast<std::ptrdiff_t>(r) * out_stride);
    }
    return lanes_sum(acc);
  }
#endif
  subtract(cur, cur_stride, pred, pred_stride, out, out_stride, w, h);
  return sad(cur, cur_stride, pred, pred_stride, w, h);
}

void average_subtract(const uint8_t* cur, int cur_stride, const uint8_t* a, int a_stride, const uint8_t* b, int b_stride,
                      int16_t* out, int out_stride, int w, int h) {
#if CODECPRIM_SIMD_LEVEL >= 1
  if (w == 16 && h == 16) {
    // A bi-predicted macroblock: the average never leaves the registers.
    for (int r = 0; r < 16; ++r) {
      rows::subtract16(rows::load16(cur + static_cast<std::ptrdiff_t>(r) * cur_stride),
                       _mm_avg_epu8(rows::load16(a + r * a_stride), rows::load16(b + r * b_stride)),
                       out + static_cast<std::ptrdiff_t>(r) * out_stride);
    }
    return;
  }
#endif
  by_width(w, [&](auto W) {
    for (int r = 0; r < h; ++r) {
      uint8_t pred[kMaxBlock];
      rows::average<W()>(a + r * a_stride, b + r * b_stride, pred, w);
      rows::subtract<W()>(cur + static_cast<std::ptrdiff_t>(r) * cur_stride, pred,
                          out + static_cast<std::ptrdiff_t>(r) * out_stride, w);
    }
  });
}

void stream_rows(const uint8_t* src, std::ptrdiff_t src_stride, uint8_t* dst, std::ptrdiff_t dst_stride, size_t bytes,
                 int rows) {
#if CODECPRIM_SIMD_LEVEL >= 1
  constexpr size_t kLine = 64;
  for (int r = 0; r < rows; ++r) {
    const uint8_t* s = src + r * src_stride;
    uint8_t* d = dst + r * dst_stride;
    // Only whole cache lines are streamed: a partial line would leave the write-combining buffer half filled.
    const size_t head = std::min(bytes, (kLine - reinterpret_cast<uintptr_t>(d) % kLine) % kLine);
    const size_t body = (bytes - head) / kLine * kLine;
    // (The partial lines are rare, and a memcpy call per row cost as much as streaming the row's 10 lines.)
    if (head != 0) std::memcpy(d, s, head);
    for (size_t c = head; c < head + body; c += kLine) {
#if CODECPRIM_SIMD_LEVEL >= 2
      const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + c));
      const __m256i hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + c + 32));
      _mm256_stream_si256(reinterpret_cast<__m256i*>(d + c), lo);
      _mm256_stream_si256(reinterpret_cast<__m256i*>(d + c + 32), hi);
#else
      for (size_t q = 0; q < kLine; q += 16) {
        _mm_stream_si128(reinterpret_cast<__m128i*>(d + c + q), rows::load16(s + c + q));
      }
#endif
    }
    if (head + body != bytes) std::memcpy(d + head + body, s + head + body, bytes - head - body);
  }
  _mm_sfence();  // the streamed lines are visible to other threads before the buffer is handed over
#else
  for (int r = 0; r < rows; ++r) std::memcpy(dst + r * dst_stride, src + r * src_stride, bytes);
#endif
}

}  // namespace

const PixelKernels& kernels() {
  static const PixelKernels table{static_cast<SimdLevel>(CODECPRIM_SIMD_LEVEL), halfpel, h264_qpel, bilinear_qpel,
                                  copy, sad, average, subtract, subtract_sad, average_subtract,
                                  stream_rows};
  return table;
}

}  // namespace codecprim::CODECPRIM_SIMD_NS

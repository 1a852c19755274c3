// Row kernels of the H.264 6-tap luma filter (1, -5, 20, 20, -5, 1), for a block w wide (4, 8 or 16; W > 0
// fixes it at compile time). Compiled per instruction set like pixel_rows.h: AVX2 filters a 16-wide row in one
// pass of 16 int16 lanes, SSE2 in two of 8, plain loops one sample at a time; all give identical results.
#pragma once

#include <cstddef>
#include <cstdint>

#include "pixel_rows.h"

namespace codecprim::CODECPRIM_SIMD_NS::h264 {

inline uint8_t clip_pixel(int v) { return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v)); }
inline int tap6(int a, int b, int c, int d, int e, int f) { return a - 5 * b + 20 * c + 20 * d - 5 * e + f; }

#if CODECPRIM_SIMD_LEVEL >= 2
inline __m256i tap6_epi16(__m256i a, __m256i b, __m256i c, __m256i d, __m256i e, __m256i f) {
  const __m256i af = _mm256_add_epi16(a, f), be = _mm256_add_epi16(b, e), cd = _mm256_add_epi16(c, d);
  return _mm256_add_epi16(_mm256_sub_epi16(af, _mm256_mullo_epi16(be, _mm256_set1_epi16(5))),
                          _mm256_mullo_epi16(cd, _mm256_set1_epi16(20)));
}
inline __m256i load16_epi16(const uint8_t* p) { return _mm256_cvtepu8_epi16(rows::load16(p)); }
inline __m256i taps16(const uint8_t* p, std::ptrdiff_t step) {
  return tap6_epi16(load16_epi16(p - 2 * step), load16_epi16(p - step), load16_epi16(p), load16_epi16(p + step),
                    load16_epi16(p + 2 * step), load16_epi16(p + 3 * step));
}
// 16 int16 lanes to 16 bytes with unsigned saturation, in order.
inline __m128i pack16(__m256i v) { return _mm_packus_epi16(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1)); }
#endif

#if CODECPRIM_SIMD_LEVEL >= 1
// 8 taps from six int16 vectors: (a+f) - 5(b+e) + 20(c+d); exact in int16 for 8-bit inputs.
inline __m128i tap6_epi16(__m128i a, __m128i b, __m128i c, __m128i d, __m128i e, __m128i f) {
  const __m128i af = _mm_add_epi16(a, f), be = _mm_add_epi16(b, e), cd = _mm_add_epi16(c, d);
  return _mm_add_epi16(_mm_sub_epi16(af, _mm_mullo_epi16(be, _mm_set1_epi16(5))), _mm_mullo_epi16(cd, _mm_set1_epi16(20)));
}
inline __m128i load8_epi16(const uint8_t* p) {
  return _mm_unpacklo_epi8(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)), _mm_setzero_si128());
}
// The taps of 8 consecutive positions from p, over samples p - 2 step .. p + 3 step (step 1: horizontal).
inline __m128i taps8(const uint8_t* p, std::ptrdiff_t step) {
  return tap6_epi16(load8_epi16(p - 2 * step), load8_epi16(p - step), load8_epi16(p), load8_epi16(p + step),
                    load8_epi16(p + 2 * step), load8_epi16(p + 3 * step));
}
#endif

inline int tap_at(const uint8_t* p, std::ptrdiff_t step) {
  return tap6(p[-2 * step], p[-step], p[0], p[step], p[2 * step], p[3 * step]);
}

// Unrounded horizontal half samples: out[c] = tap6(s[c-2] .. s[c+3]), c in [0, w).
template <int W = 0>
inline void horizontal_unrounded(const uint8_t* s, int16_t* out, int w = W) {
  const int n = rows::width<W>(w);
  int c = 0;
#if CODECPRIM_SIMD_LEVEL >= 2
  for (; c + 16 <= n; c += 16) _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + c), taps16(s + c, 1));
#endif
#if CODECPRIM_SIMD_LEVEL >= 1
  for (; c + 8 <= n; c += 8) _mm_storeu_si128(reinterpret_cast<__m128i*>(out + c), taps8(s + c, 1));
#endif
  for (; c < n; ++c) out[c] = static_cast<int16_t>(tap_at(s + c, 1));
}

// Rounded half samples clip((tap + 16) >> 5) along `step`: horizontal (b) with step 1, vertical (h) below
// row s with the picture stride.
template <int W = 0>
inline void half_samples(const uint8_t* s, std::ptrdiff_t step, uint8_t* out, int w = W) {
  const int n = rows::width<W>(w);
  int c = 0;
#if CODECPRIM_SIMD_LEVEL >= 2
  for (; c + 16 <= n; c += 16) {
    const __m256i r = _mm256_srai_epi16(_mm256_add_epi16(taps16(s + c, step), _mm256_set1_epi16(16)), 5);
    rows::store16(out + c, pack16(r));
  }
#endif
#if CODECPRIM_SIMD_LEVEL >= 1
  for (; c + 8 <= n; c += 8) {
    const __m128i r = _mm_srai_epi16(_mm_add_epi16(taps8(s + c, step), _mm_set1_epi16(16)), 5);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(out + c), _mm_packus_epi16(r, r));
  }
#endif
  for (; c < n; ++c) out[c] = clip_pixel((tap_at(s + c, step) + 16) >> 5);
}

// Vertical half samples (h) of a block: out row r from source rows r-2 .. r+3 below s, for r in [0, h). Each
// column of vectors slides down the block, so every source row is loaded and widened once instead of six times.
template <int W = 0>
inline void vertical_half_samples(const uint8_t* s, std::ptrdiff_t st, uint8_t* out, std::ptrdiff_t out_stride, int h,
                                  int w = W) {
  const int n = rows::width<W>(w);
  int c = 0;
#if CODECPRIM_SIMD_LEVEL >= 2
  for (; c + 16 <= n; c += 16) {
    const uint8_t* p = s + c;
    __m256i r0 = load16_epi16(p - 2 * st), r1 = load16_epi16(p - st), r2 = load16_epi16(p);
    __m256i r3 = load16_epi16(p + st), r4 = load16_epi16(p + 2 * st);
    for (int r = 0; r < h; ++r) {
      const __m256i r5 = load16_epi16(p + (r + 3) * st);
      const __m256i v = _mm256_srai_epi16(_mm256_add_epi16(tap6_epi16(r0, r1, r2, r3, r4, r5), _mm256_set1_epi16(16)), 5);
      rows::store16(out + r * out_stride + c, pack16(v));
      r0 = r1, r1 = r2, r2 = r3, r3 = r4, r4 = r5;
    }
  }
#endif
#if CODECPRIM_SIMD_LEVEL >= 1
  for (; c + 8 <= n; c += 8) {
    const uint8_t* p = s + c;
    __m128i r0 = load8_epi16(p - 2 * st), r1 = load8_epi16(p - st), r2 = load8_epi16(p);
    __m128i r3 = load8_epi16(p + st), r4 = load8_epi16(p + 2 * st);
    for (int r = 0; r < h; ++r) {
      const __m128i r5 = load8_epi16(p + (r + 3) * st);
      const __m128i v = _mm_srai_epi16(_mm_add_epi16(tap6_epi16(r0, r1, r2, r3, r4, r5), _mm_set1_epi16(16)), 5);
      _mm_storel_epi64(reinterpret_cast<__m128i*>(out + r * out_stride + c), _mm_packus_epi16(v, v));
      r0 = r1, r1 = r2, r2 = r3, r3 = r4, r4 = r5;
    }
  }
#endif
  for (int r = 0; r < h; ++r) {
    for (int cc = c; cc < n; ++cc) out[r * out_stride + cc] = clip_pixel((tap_at(s + r * st + cc, st) + 16) >> 5);
  }
}

// Rounded half samples from unrounded horizontal intermediates: clip((b1 + 16) >> 5), the b samples of a row
// whose intermediates the centre samples needed anyway.
template <int W = 0>
inline void rounded_half_samples(const int16_t* b1, uint8_t* out, int w = W) {
  const int n = rows::width<W>(w);
  int c = 0;
#if CODECPRIM_SIMD_LEVEL >= 2
  for (; c + 16 <= n; c += 16) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b1 + c));
    rows::store16(out + c, pack16(_mm256_srai_epi16(_mm256_add_epi16(v, _mm256_set1_epi16(16)), 5)));
  }
#endif
#if CODECPRIM_SIMD_LEVEL >= 1
  for (; c + 8 <= n; c += 8) {
    const __m128i v = _mm_srai_epi16(
        _mm_add_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b1 + c)), _mm_set1_epi16(16)), 5);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(out + c), _mm_packus_epi16(v, v));
  }
#endif
  for (; c < n; ++c) out[c] = clip_pixel((b1[c] + 16) >> 5);
}

// Centre samples (j) from six rows of unrounded horizontal intermediates: clip((tap + 512) >> 10), in int32.
template <int W = 0>
inline void centre(const int16_t* r0, const int16_t* r1, const int16_t* r2, const int16_t* r3, const int16_t* r4,
                   const int16_t* r5, uint8_t* out, int w = W) {
  const int n = rows::width<W>(w);
  int c = 0;
#if CODECPRIM_SIMD_LEVEL >= 2
  {
    // As the SSE2 loop below; unpack and pack both work within 128-bit lanes, so the order comes back intact.
    const __m256i taps_af_be = _mm256_set1_epi32(static_cast<int32_t>(0xFFFB0001u));  // pairs (1, -5)
    const __m256i taps_cd_bias = _mm256_set1_epi32((512 << 16) | 20);                   // pairs (20, 512)
    const __m256i ones = _mm256_set1_epi16(1);
    for (; c + 16 <= n; c += 16) {
      auto load = [c](const int16_t* row) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + c)); };
      const __m256i af = _mm256_add_epi16(load(r0), load(r5));
      const __m256i be = _mm256_add_epi16(load(r1), load(r4));
      const __m256i cd = _mm256_add_epi16(load(r2), load(r3));
      const __m256i lo = _mm256_srai_epi32(
          _mm256_add_epi32(_mm256_madd_epi16(_mm256_unpacklo_epi16(af, be), taps_af_be),
                           _mm256_madd_epi16(_mm256_unpacklo_epi16(cd, ones), taps_cd_bias)), 10);
      const __m256i hi = _mm256_srai_epi32(
          _mm256_add_epi32(_mm256_madd_epi16(_mm256_unpackhi_epi16(af, be), taps_af_be),
                           _mm256_madd_epi16(_mm256_unpackhi_epi16(cd, ones), taps_cd_bias)), 10);
      rows::store16(out + c, pack16(_mm256_packs_epi32(lo, hi)));
    }
  }
#endif
#if CODECPRIM_SIMD_LEVEL >= 1
  // Pair sums of symmetric taps stay in int16 (|sum| <= 2 * 10710); pmaddwd then forms (a+f) - 5(b+e) and
  // 20(c+d) + 512 (the rounding bias rides along as a multiplier of 1) in int32 without any widening shifts.
  const __m128i taps_af_be = _mm_set_epi16(-5, 1, -5, 1, -5, 1, -5, 1);
  const __m128i taps_cd_bias = _mm_set_epi16(512, 20, 512, 20, 512, 20, 512, 20);
  const __m128i ones = _mm_set1_epi16(1);
  for (; c + 8 <= n; c += 8) {
    auto load = [c](const int16_t* row) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + c)); };
    const __m128i af = _mm_add_epi16(load(r0), load(r5));
    const __m128i be = _mm_add_epi16(load(r1), load(r4));
    const __m128i cd = _mm_add_epi16(load(r2), load(r3));
    const __m128i lo = _mm_srai_epi32(_mm_add_epi32(_mm_madd_epi16(_mm_unpacklo_epi16(af, be), taps_af_be),
                                                    _mm_madd_epi16(_mm_unpacklo_epi16(cd, ones), taps_cd_bias)), 10);
    const __m128i hi = _mm_srai_epi32(_mm_add_epi32(_mm_madd_epi16(_mm_unpackhi_epi16(af, be), taps_af_be),
                                                    _mm_madd_epi16(_mm_unpackhi_epi16(cd, ones), taps_cd_bias)), 10);
    const __m128i packed = _mm_packs_epi32(lo, hi);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(out + c), _mm_packus_epi16(packed, packed));
  }
#endif
  for (; c < n; ++c) out[c] = clip_pixel((tap6(r0[c], r1[c], r2[c], r3[c], r4[c], r5[c]) + 512) >> 10);
}

}  // namespace codecprim::CODECPRIM_SIMD_NS::h264

// Row operations on 8-bit samples for the block sizes the exporters emit (4, 8 or 16 wide): copies, the
// averages of half-pel interpolation and bi-prediction, sums of absolute differences and the residual
// subtraction. W > 0 fixes the width at compile time (the loops then unroll to one or two vector moves); W = 0
// takes the run-time width w.
//
// Included only by interpolation_kernels.h, once per instruction set: CODECPRIM_SIMD_LEVEL (0 plain loops,
// 1 SSE2, 2 AVX2) chooses the code and CODECPRIM_SIMD_NS the namespace, so the builds never meet at link time.
// Every level gives identical results (tests/core/test_simd_paths.py).
#pragma once

#include <cstdint>

#if !defined(CODECPRIM_SIMD_LEVEL) || !defined(CODECPRIM_SIMD_NS)
#error "pixel_rows.h is compiled through interpolation_kernels.h"
#endif
#if CODECPRIM_SIMD_LEVEL >= 2
#include <immintrin.h>
#elif CODECPRIM_SIMD_LEVEL >= 1
#include <emmintrin.h>
#endif

namespace codecprim::CODECPRIM_SIMD_NS::rows {

template <int W>
constexpr int width(int w) { return W > 0 ? W : w; }

#if CODECPRIM_SIMD_LEVEL >= 1
inline __m128i load16(const uint8_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); }
inline __m128i load8(const uint8_t* p) { return _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)); }
inline void store16(uint8_t* p, __m128i v) { _mm_storeu_si128(reinterpret_cast<__m128i*>(p), v); }
inline void store8(uint8_t* p, __m128i v) { _mm_storel_epi64(reinterpret_cast<__m128i*>(p), v); }
#endif

template <int W = 0>
inline void copy(const uint8_t* src, uint8_t* dst, int w = W) {
  const int n = width<W>(w);
  int c = 0;
#if CODECPRIM_SIMD_LEVEL >= 1
  for (; c + 16 <= n; c += 16) store16(dst + c, load16(src + c));
  if (c + 8 <= n) {
    store8(dst + c, load8(src + c));
    c += 8;
  }
#endif
  for (; c < n; ++c) dst[c] = src[c];
}

// (a + b + 1) >> 1: the quarter-pel averages of H.264 and the default bi-prediction of MPEG and H.264.
template <int W = 0>
inline void average(const uint8_t* a, const uint8_t* b, uint8_t* out, int w = W) {
  const int n = width<W>(w);
  int c = 0;
#if CODECPRIM_SIMD_LEVEL >= 1
  for (; c + 16 <= n; c += 16) store16(out + c, _mm_avg_epu8(load16(a + c), load16(b + c)));
  if (c + 8 <= n) {
    store8(out + c, _mm_avg_epu8(load8(a + c), load8(b + c)));
    c += 8;
  }
#endif
  for (; c < n; ++c) out[c] = static_cast<uint8_t>((a[c] + b[c] + 1) >> 1);
}

// (a + b) >> 1: the "no rounding" half-pel average of MPEG-4 / H.263+ P-pictures.
template <int W = 0>
inline void average_down(const uint8_t* a, const uint8_t* b, uint8_t* out, int w = W) {
  const int n = width<W>(w);
  int c = 0;
#if CODECPRIM_SIMD_LEVEL >= 1
  // pavgb rounds up; subtracting the lost low bit (a ^ b) & 1 turns it into rounding down.
  const __m128i one = _mm_set1_epi8(1);
  auto down = [&](__m128i x, __m128i y) {
    return _mm_sub_epi8(_mm_avg_epu8(x, y), _mm_and_si128(_mm_xor_si128(x, y), one));
  };
  for (; c + 16 <= n; c += 16) store16(out + c, down(load16(a + c), load16(b + c)));
  if (c + 8 <= n) {
    store8(out + c, down(load8(a + c), load8(b + c)));
    c += 8;
  }
#endif
  for (; c < n; ++c) out[c] = static_cast<uint8_t>((a[c] + b[c]) >> 1);
}

// (a[c] + a[c+1] + b[c] + b[c+1] + bias) >> 2: the diagonal half-pel sample of MPEG-1/2/4 and H.263
// (bias 2, or 1 under "no rounding").
template <int W = 0>
inline void average4(const uint8_t* a, const uint8_t* b, int bias, uint8_t* out, int w = W) {
  const int n = width<W>(w);
  int c = 0;
#if CODECPRIM_SIMD_LEVEL >= 2
  const __m256i add16 = _mm256_set1_epi16(static_cast<int16_t>(bias));
  for (; c + 16 <= n; c += 16) {
    auto widen = [](const uint8_t* p) { return _mm256_cvtepu8_epi16(load16(p)); };
    const __m256i sum = _mm256_add_epi16(_mm256_add_epi16(widen(a + c), widen(a + c + 1)),
                                         _mm256_add_epi16(_mm256_add_epi16(widen(b + c), widen(b + c + 1)), add16));
    const __m256i r = _mm256_srli_epi16(sum, 2);
    store16(out + c, _mm_packus_epi16(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1)));
  }
#endif
#if CODECPRIM_SIMD_LEVEL >= 1
  const __m128i zero = _mm_setzero_si128(), add = _mm_set1_epi16(static_cast<int16_t>(bias));
  for (; c + 8 <= n; c += 8) {
    auto widen = [&](const uint8_t* p) { return _mm_unpacklo_epi8(load8(p), zero); };
    const __m128i sum = _mm_add_epi16(_mm_add_epi16(widen(a + c), widen(a + c + 1)),
                                      _mm_add_epi16(_mm_add_epi16(widen(b + c), widen(b + c + 1)), add));
    const __m128i r = _mm_srli_epi16(sum, 2);
    store8(out + c, _mm_packus_epi16(r, r));
  }
#endif
  for (; c < n; ++c) out[c] = static_cast<uint8_t>((a[c] + a[c + 1] + b[c] + b[c + 1] + bias) >> 2);
}

template <int W = 0>
inline int sad(const uint8_t* a, const uint8_t* b, int w = W) {
  const int n = width<W>(w);
  int total = 0, c = 0;
#if CODECPRIM_SIMD_LEVEL >= 1
  for (; c + 16 <= n; c += 16) {
    const __m128i s = _mm_sad_epu8(load16(a + c), load16(b + c));
    total += _mm_cvtsi128_si32(s) + _mm_cvtsi128_si32(_mm_srli_si128(s, 8));
  }
  if (c + 8 <= n) {
    total += _mm_cvtsi128_si32(_mm_sad_epu8(load8(a + c), load8(b + c)));
    c += 8;
  }
#endif
  for (; c < n; ++c) total += a[c] > b[c] ? a[c] - b[c] : b[c] - a[c];
  return total;
}

#if CODECPRIM_SIMD_LEVEL >= 1
// out[0..16) = x - p as int16, for 16 samples already in registers.
inline void subtract16(__m128i x, __m128i p, int16_t* out) {
#if CODECPRIM_SIMD_LEVEL >= 2
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), _mm256_sub_epi16(_mm256_cvtepu8_epi16(x), _mm256_cvtepu8_epi16(p)));
#else
  const __m128i zero = _mm_setzero_si128();
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out), _mm_sub_epi16(_mm_unpacklo_epi8(x, zero), _mm_unpacklo_epi8(p, zero)));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 8),
                   _mm_sub_epi16(_mm_unpackhi_epi8(x, zero), _mm_unpackhi_epi8(p, zero)));
#endif
}
#endif

// out = cur - pred as int16: the residual.
template <int W = 0>
inline void subtract(const uint8_t* cur, const uint8_t* pred, int16_t* out, int w = W) {
  const int n = width<W>(w);
  int c = 0;
#if CODECPRIM_SIMD_LEVEL >= 1
  for (; c + 16 <= n; c += 16) subtract16(load16(cur + c), load16(pred + c), out + c);
  if (c + 8 <= n) {
    const __m128i zero = _mm_setzero_si128();
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + c),
                     _mm_sub_epi16(_mm_unpacklo_epi8(load8(cur + c), zero), _mm_unpacklo_epi8(load8(pred + c), zero)));
    c += 8;
  }
#endif
  for (; c < n; ++c) out[c] = static_cast<int16_t>(cur[c] - pred[c]);
}

}  // namespace codecprim::CODECPRIM_SIMD_NS::rows

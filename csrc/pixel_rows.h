// Row operations on 8-bit samples for the block sizes the exporters emit (4, 8 or 16 wide): copies, the
// averages of half-pel interpolation and bi-prediction, and sums of absolute differences. Fixed 16- and
// 8-byte SSE2 moves instead of memcpy calls, whose per-call cost dominates at these widths. Plain loops where
// SSE2 is missing give identical results.
#pragma once

#include <cstdint>
#include <cstdlib>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace codecprim::rows {

#if defined(__SSE2__)
inline __m128i load16(const uint8_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); }
inline __m128i load8(const uint8_t* p) { return _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)); }
inline void store16(uint8_t* p, __m128i v) { _mm_storeu_si128(reinterpret_cast<__m128i*>(p), v); }
inline void store8(uint8_t* p, __m128i v) { _mm_storel_epi64(reinterpret_cast<__m128i*>(p), v); }
#endif

inline void copy(const uint8_t* src, uint8_t* dst, int w) {
  int c = 0;
#if defined(__SSE2__)
  for (; c + 16 <= w; c += 16) store16(dst + c, load16(src + c));
  if (c + 8 <= w) {
    store8(dst + c, load8(src + c));
    c += 8;
  }
#endif
  for (; c < w; ++c) dst[c] = src[c];
}

// (a + b + 1) >> 1: the quarter-pel averages of H.264 and the default bi-prediction of MPEG and H.264.
inline void average(const uint8_t* a, const uint8_t* b, uint8_t* out, int w) {
  int c = 0;
#if defined(__SSE2__)
  for (; c + 16 <= w; c += 16) store16(out + c, _mm_avg_epu8(load16(a + c), load16(b + c)));
  if (c + 8 <= w) {
    store8(out + c, _mm_avg_epu8(load8(a + c), load8(b + c)));
    c += 8;
  }
#endif
  for (; c < w; ++c) out[c] = static_cast<uint8_t>((a[c] + b[c] + 1) >> 1);
}

// (a + b) >> 1: the "no rounding" half-pel average of MPEG-4 / H.263+ P-pictures.
inline void average_down(const uint8_t* a, const uint8_t* b, uint8_t* out, int w) {
  int c = 0;
#if defined(__SSE2__)
  // pavgb rounds up; subtracting the lost low bit (a ^ b) & 1 turns it into rounding down.
  const __m128i one = _mm_set1_epi8(1);
  auto down = [&](__m128i x, __m128i y) {
    return _mm_sub_epi8(_mm_avg_epu8(x, y), _mm_and_si128(_mm_xor_si128(x, y), one));
  };
  for (; c + 16 <= w; c += 16) store16(out + c, down(load16(a + c), load16(b + c)));
  if (c + 8 <= w) {
    store8(out + c, down(load8(a + c), load8(b + c)));
    c += 8;
  }
#endif
  for (; c < w; ++c) out[c] = static_cast<uint8_t>((a[c] + b[c]) >> 1);
}

// (a[c] + a[c+1] + b[c] + b[c+1] + bias) >> 2: the diagonal half-pel sample of MPEG-1/2/4 and H.263
// (bias 2, or 1 under "no rounding").
inline void average4(const uint8_t* a, const uint8_t* b, int bias, uint8_t* out, int w) {
  int c = 0;
#if defined(__SSE2__)
  const __m128i zero = _mm_setzero_si128(), add = _mm_set1_epi16(static_cast<int16_t>(bias));
  for (; c + 8 <= w; c += 8) {
    auto widen = [&](const uint8_t* p) { return _mm_unpacklo_epi8(load8(p), zero); };
    const __m128i sum = _mm_add_epi16(_mm_add_epi16(widen(a + c), widen(a + c + 1)),
                                      _mm_add_epi16(_mm_add_epi16(widen(b + c), widen(b + c + 1)), add));
    const __m128i r = _mm_srli_epi16(sum, 2);
    store8(out + c, _mm_packus_epi16(r, r));
  }
#endif
  for (; c < w; ++c) out[c] = static_cast<uint8_t>((a[c] + a[c + 1] + b[c] + b[c + 1] + bias) >> 2);
}

inline int sad(const uint8_t* a, const uint8_t* b, int w) {
  int total = 0, c = 0;
#if defined(__SSE2__)
  for (; c + 16 <= w; c += 16) {
    const __m128i s = _mm_sad_epu8(load16(a + c), load16(b + c));
    total += _mm_cvtsi128_si32(s) + _mm_cvtsi128_si32(_mm_srli_si128(s, 8));
  }
  if (c + 8 <= w) {
    total += _mm_cvtsi128_si32(_mm_sad_epu8(load8(a + c), load8(b + c)));
    c += 8;
  }
#endif
  for (; c < w; ++c) total += std::abs(static_cast<int>(a[c]) - static_cast<int>(b[c]));
  return total;
}

}  // namespace codecprim::rows

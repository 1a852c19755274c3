// Instruction-set dispatch of the pixel kernels (motion compensation, SAD, residual subtraction).
//
// interpolation_kernels.h is compiled three times: plain C++ loops (baseline), SSE2 (the x86-64 baseline) and
// AVX2 (its own -mavx2 translation unit). The best level the CPU supports is chosen once, at first use; the
// environment variable CODECPRIM_SIMD=avx2|sse2|baseline lowers it (tests compare the levels, which must give
// identical results; a level the CPU lacks, or an unknown value, falls back to the best supported one).
#pragma once

#include <cstddef>
#include <cstdint>

namespace codecprim {

struct Plane;

enum class SimdLevel : int { kBaseline = 0, kSse2 = 1, kAvx2 = 2 };

struct PixelKernels {
  SimdLevel level;
  // Luma motion compensation of one block (interpolation.h documents each method).
  void (*halfpel)(const Plane& ref, int x, int y, int mv_x, int mv_y, int w, int h, bool no_rounding, uint8_t* dst,
                  int dst_stride);
  void (*h264_qpel)(const Plane& ref, int x, int y, int mv_x, int mv_y, int w, int h, uint8_t* dst, int dst_stride);
  void (*bilinear_qpel)(const Plane& ref, int x, int y, int mv_x, int mv_y, int w, int h, uint8_t* dst,
                        int dst_stride);
  // Copies a w x h block.
  void (*copy)(const uint8_t* src, int src_stride, uint8_t* dst, int dst_stride, int w, int h);
  // Sum of absolute differences of two w x h blocks.
  int (*sad)(const uint8_t* a, int a_stride, const uint8_t* b, int b_stride, int w, int h);
  // dst = (a + b + 1) >> 1: a bi-predicted block from its two directions (dst may be a).
  void (*average)(const uint8_t* a, int a_stride, const uint8_t* b, int b_stride, uint8_t* dst, int dst_stride, int w,
                  int h);
  // out = cur - pred as int16.
  void (*subtract)(const uint8_t* cur, int cur_stride, const uint8_t* pred, int pred_stride, int16_t* out,
                   int out_stride, int w, int h);
  // The same, returning the sum of absolute differences of cur and pred (the sad of the two blocks): a reference
  // search that usually takes its first candidate gets the residual and the test of it from one read.
  int (*subtract_sad)(const uint8_t* cur, int cur_stride, const uint8_t* pred, int pred_stride, int16_t* out,
                      int out_stride, int w, int h);
  // out = cur - ((a + b + 1) >> 1): the residual of a bi-predicted block from its two directions.
  void (*average_subtract)(const uint8_t* cur, int cur_stride, const uint8_t* a, int a_stride, const uint8_t* b,
                           int b_stride, int16_t* out, int out_stride, int w, int h);
  // Copies `rows` rows of `bytes` bytes into an output buffer that is written once and read later, by another
  // pass or thread: whole cache lines go out with non-temporal stores, so the destination's old contents are
  // never read into the cache (a cold output otherwise costs a memory read per line written).
  void (*stream_rows)(const uint8_t* src, std::ptrdiff_t src_stride, uint8_t* dst, std::ptrdiff_t dst_stride,
                      size_t bytes, int rows);
};

// The kernels of the level in use.
const PixelKernels& pixel_kernels();

const char* simd_level_name(SimdLevel level);

}  // namespace codecprim

// Luma motion compensation of one block, as the decoders do it. Samples outside the reference picture are
// edge-extended (coordinates clamped to [0, width-1] x [0, height-1]), which is what FFmpeg's emulated-edge
// buffers and padded frames amount to. The code is interpolation_kernels.h, built per instruction set; these
// functions call the level simd_dispatch.h chose.
#pragma once

#include <cstdint>

namespace codecprim {

// A reference picture plane. width/height are the edge positions the decoder clamps at.
struct Plane {
  const uint8_t* data = nullptr;
  int stride = 0;
  int width = 0;
  int height = 0;
};

// Largest block the exporters emit (16x16); all block buffers are sized for it.
constexpr int kMaxBlock = 16;

// MPEG-1/2/4 Part 2 and H.263: half-pel bilinear, vector in half-pel units. no_rounding selects the
// "no rounding" averages ((a+b)>>1, (a+b+c+d+1)>>2) that MPEG-4/H.263+ P-pictures may signal.
void predict_halfpel(const Plane& ref, int x, int y, int mv_x, int mv_y, int w, int h, bool no_rounding, uint8_t* dst,
                     int dst_stride);

// H.264 luma sample interpolation (ISO/IEC 14496-10, 8.4.2.2.1): 6-tap half-pel, the centre sample from
// unrounded intermediates, quarter-pel as rounded averages. Vector in quarter-pel units.
void predict_h264_qpel(const Plane& ref, int x, int y, int mv_x, int mv_y, int w, int h, uint8_t* dst, int dst_stride);

// Bilinear interpolation at quarter-pel precision: the documented approximation for codecs whose own
// quarter-pel filter is not replicated (MPEG-4 Part 2 quarter_sample streams).
void predict_bilinear_qpel(const Plane& ref, int x, int y, int mv_x, int mv_y, int w, int h, uint8_t* dst,
                           int dst_stride);

}  // namespace codecprim

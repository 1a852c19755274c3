#include "interpolation.h"

#include "simd_dispatch.h"

namespace codecprim {

void predict_halfpel(const Plane& ref, int x, int y, int mv_x, int mv_y, int w, int h, bool no_rounding, uint8_t* dst,
                     int dst_stride) {
  pixel_kernels().halfpel(ref, x, y, mv_x, mv_y, w, h, no_rounding, dst, dst_stride);
}

void predict_h264_qpel(const Plane& ref, int x, int y, int mv_x, int mv_y, int w, int h, uint8_t* dst, int dst_stride) {
  pixel_kernels().h264_qpel(ref, x, y, mv_x, mv_y, w, h, dst, dst_stride);
}

void predict_bilinear_qpel(const Plane& ref, int x, int y, int mv_x, int mv_y, int w, int h, uint8_t* dst,
                           int dst_stride) {
  pixel_kernels().bilinear_qpel(ref, x, y, mv_x, mv_y, w, h, dst, dst_stride);
}

}  // namespace codecprim

#include "motion_vectors.h"

namespace codecprim {

const char* const* motion_vector_column_names() {
  static const char* const names[kMotionVectorColumns] = {"source", "w",     "h",        "src_x",    "src_y",
                                                          "dst_x",  "dst_y", "motion_x", "motion_y", "motion_scale"};
  return names;
}

MotionVectorRows copy_motion_vectors(const AVFrame* frame) {
  MotionVectorRows out;
  const AVFrameSideData* side = av_frame_get_side_data(frame, AV_FRAME_DATA_MOTION_VECTORS);
  const int64_t count = side != nullptr ? static_cast<int64_t>(side->size / sizeof(AVMotionVector)) : 0;
  out.rows = OwnedBuffer<int32_t>(static_cast<size_t>(count) * kMotionVectorColumns);
  out.count = count;
  if (count == 0) return out;
  const auto* mvs = reinterpret_cast<const AVMotionVector*>(side->data);
  int32_t* dst = out.rows.data();
  for (int64_t i = 0; i < count; ++i, dst += kMotionVectorColumns) {
    const AVMotionVector& mv = mvs[i];
    dst[mv::kSource] = mv.source;
    dst[mv::kW] = mv.w;
    dst[mv::kH] = mv.h;
    dst[mv::kSrcX] = mv.src_x;
    dst[mv::kSrcY] = mv.src_y;
    dst[mv::kDstX] = mv.dst_x;
    dst[mv::kDstY] = mv.dst_y;
    dst[mv::kMotionX] = mv.motion_x;
    dst[mv::kMotionY] = mv.motion_y;
    dst[mv::kMotionScale] = static_cast<int32_t>(mv.motion_scale);
  }
  return out;
}

}  // namespace codecprim

// FFmpeg's exported motion vectors (AV_FRAME_DATA_MOTION_VECTORS) as int32 rows of 10 columns:
// source, w, h, src_x, src_y, dst_x, dst_y, motion_x, motion_y, motion_scale, in FFmpeg's own order.
#pragma once

#include <cstdint>

#include "ffmpeg.h"
#include "owned_buffer.h"

namespace codecprim {

// Column of a motion-vector row. Python mirrors these as codecprim.reader.MV (a test checks they agree
// through motion_vector_column_names()).
namespace mv {
enum Column : int {
  kSource = 0,      // -1: predicted from a past reference, +1: from a future one
  kW,               // block width
  kH,               // block height
  kSrcX,            // block centre in the reference (integer part)
  kSrcY,
  kDstX,            // block centre in this picture
  kDstY,
  kMotionX,         // motion in 1/motion_scale pixels
  kMotionY,
  kMotionScale,
  kCount,
};
}  // namespace mv

constexpr int kMotionVectorColumns = mv::kCount;

// The columns' names in order ("source", "w", ...), as Python spells them.
const char* const* motion_vector_column_names();

struct MotionVectorRows {
  OwnedBuffer<int32_t> rows;  // (count, 10)
  int64_t count = 0;
};

// Copies the frame's side data; an empty result when the decoder exported none (I-frames, HEVC, ...).
MotionVectorRows copy_motion_vectors(const AVFrame* frame);

}  // namespace codecprim

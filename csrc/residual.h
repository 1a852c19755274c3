// Luma residual of an inter picture: the decoded luma minus its motion-compensated prediction, rebuilt from
// the exported block vectors and the reference pictures the reader keeps.
//
// Per block the prediction is the codec's own interpolation (see interpolation.h); a block predicted from
// both directions (B-pictures) averages the two with rounding up, as MPEG and H.264 default prediction do.
// FFmpeg exports no reference index: when a stream may use several references (H.264 multi-reference), every
// candidate reference in the block's direction is tried and the prediction closest to the decoded block (least
// SAD) is kept, the nearest reference winning ties; the search stops early when the nearest reference already
// predicts within one level per pixel. With one candidate this is exactly the decoder's prediction.
// Pixels no vector covers are intra-coded: they are predicted by the co-located sample of the past reference
// (zero motion), so their residual is the plain frame difference; with no reference at all, by 128.
#pragma once

#include <cstdint>
#include <vector>

#include "interpolation.h"
#include "simd_dispatch.h"

namespace codecprim {

enum class CodecFamily {
  kMpegHalfPel,  // MPEG-1/2, MPEG-4 Part 2, H.263: half-pel bilinear (quarter-pel MPEG-4: bilinear, approximate)
  kH264,         // 6-tap quarter-pel
  kOther,        // unknown exporters: bilinear at the exported precision
};

struct PredictionInputs {
  Plane current;                   // the decoded picture, full coded size
  const Plane* past = nullptr;     // candidate references for rows with source < 0, nearest first
  int num_past = 0;
  const Plane* future = nullptr;   // candidate references for rows with source > 0, nearest first
  int num_future = 0;
  const int32_t* rows = nullptr;  // (count, 10) exported vectors
  int64_t count = 0;
  CodecFamily family = CodecFamily::kMpegHalfPel;
  bool no_rounding = false;       // MPEG-4 / H.263+ P-picture rounding control
};

class ResidualBuilder {
 public:
  // Writes the residual of the display rectangle (crop_x, crop_y, out_width, out_height) of the coded picture
  // into `out` (row-major, out_width wide). Returns the number of pixels predicted by a vector.
  //
  // One pass over the macroblocks: each 16x16 tile is predicted from the vectors that fall in it (a local
  // buffer; there is no prediction picture) and its residual written at once, while the decoded tile is still
  // in cache. Vectors keep their export order within a tile, so bi-prediction averages as before.
  int64_t compute(const PredictionInputs& in, int crop_x, int crop_y, int out_width, int out_height, int16_t* out);

 private:
  void predict_block(const PredictionInputs& in, const Plane& ref, const int32_t* row, uint8_t* dst,
                     int dst_stride) const;
  // Prediction of one block from the best of its candidate references.
  void predict_best(const PredictionInputs& in, const int32_t* row, uint8_t* dst, int dst_stride) const;

  const PixelKernels* kernels_ = &pixel_kernels();
  // Reused between pictures so a stream allocates them once.
  std::vector<int32_t> tile_first_;     // per macroblock: start of its vectors in tile_rows_ (prefix sums)
  std::vector<int32_t> tile_cursor_;
  std::vector<int32_t> tile_rows_;      // vector indices grouped by the macroblock tiles they cover
  std::vector<int32_t> usable_;         // vectors the reader can honour
  std::vector<uint8_t> column_weight_;  // per cell column: its pixels inside the display rectangle (0..4)
};

}  // namespace codecprim

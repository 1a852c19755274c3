// Luma residual of an inter picture: the decoded luma minus its motion-compensated prediction, rebuilt from
// the exported block vectors and the reference pictures the reader keeps.
//
// Per block the prediction is the codec's own interpolation (see interpolation.h); a block predicted from
// both directions (B-pictures) averages the two with rounding up, as MPEG and H.264 default prediction do.
// FFmpeg exports no reference index: when a stream may use several references (H.264 multi-reference), the
// candidate references in the block's direction are searched for the prediction closest to the decoded block
// (least SAD), nearest first, the nearest winning ties. The search stops at the first candidate whose mean
// absolute difference the coded residual at the block's QP can explain (an eighth of the quantiser step, at
// least one level; one level without QP). With one candidate this is exactly the decoder's prediction.
// Pixels no vector covers are intra-coded: they are predicted by the co-located sample of the past reference
// (zero motion), so their residual is the plain frame difference; with no reference at all, by 128.
#pragma once

#include <cstdint>
#include <vector>

#include "interpolation.h"
#include "residual_energy.h"
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
  const int8_t* qp = nullptr;     // (qp_rows, qp_stride) quantiser per macroblock, when the decoder exports it
  int qp_stride = 0;
  int qp_rows = 0;
};

class ResidualBuilder {
 public:
  // Writes the residual of the display rectangle (crop_x, crop_y, out_width, out_height) of the coded picture
  // into `out` (row-major, out_width wide), and, when `luma` is given, that rectangle of the decoded picture
  // into it (the same layout). Returns the number of pixels predicted by a vector.
  //
  // One pass over the macroblocks: each 16x16 tile is predicted from the vectors that fall in it (a local
  // buffer; there is no prediction picture) and its residual written at once, while the decoded tile is still
  // in cache. Vectors keep their export order within a tile, so bi-prediction averages as before. A row of
  // tiles collects its residual in a strip that then streams out (stream_rows) with the decoded rows it read:
  // the output buffers are cold when a frame starts, and storing into them tile by tile first read every line
  // of them from memory (a 720p frame's compute took 0.9-1.2 ms so, 0.7-0.78 ms into pre-touched buffers).
  // The decoded picture and its nearest references are read ahead row by row (pull_rows in residual.cpp).
  // The common macroblocks, one 16x16 vector for the tile (or two, bi-predicted), skip the per-cell bookkeeping,
  // and their residual is written from registers (subtract_sad gives a search's first candidate its residual and
  // its cost from one read; average_subtract never stores the average): 13-16 % fewer instructions in the pass
  // on x264 clips (callgrind), the same output.
  //
  // With `cells`, each row of tiles' residual is also added to its per-cell sums of squares while the strip is in
  // cache; `out` may then be null (the residual itself is not kept).
  int64_t compute(const PredictionInputs& in, int crop_x, int crop_y, int out_width, int out_height, int16_t* out,
                  uint8_t* luma = nullptr, CellSquareSums* cells = nullptr);

  // Blocks with several candidate references so far, and how many of them tried every candidate.
  int64_t reference_searches() const { return search_.searches; }
  int64_t reference_search_exhausted() const { return search_.exhausted; }

 private:
  // Where a block's prediction lies: the dst it was asked to fill, or the reference picture itself (a
  // whole-sample vector inside it).
  struct View {
    const uint8_t* data;
    int stride;
  };
  // A vector the reader can honour, with its block's place in the coded picture (read from the row once).
  struct Block {
    const int32_t* row;
    int32_t tile;
    int32_t x, y;
    uint8_t w, h;
  };
  View predict_block(const PredictionInputs& in, const Plane& ref, const Block& b, uint8_t* dst, int dst_stride) const;
  // Prediction of one block from the best of its candidate references.
  View predict_best(const PredictionInputs& in, const Block& b, uint8_t* dst, int dst_stride);
  // The same, always written into dst.
  void predict_into(const PredictionInputs& in, const Block& b, uint8_t* dst, int dst_stride);
  // The references a block may come from, nearest first, and what its search compares against.
  struct Candidates {
    const Plane* refs;
    int count;
    bool search;             // several candidates and a decoded block to compare them with
    const uint8_t* decoded;  // the block in the decoded picture (its stride is in.current's)
    int enough;              // a candidate within this SAD is taken at once
  };
  Candidates candidates_of(const PredictionInputs& in, const Block& b) const;
  // The search's remaining candidates (c.refs[1..c.count)), given the best so far and its cost (updated).
  View search_on(const PredictionInputs& in, const Block& b, const Candidates& c, View best_view, int& best,
                 uint8_t* dst, int dst_stride);
  // A tile predicted by one 16x16 block at its origin: its residual written to out (16 rows of out_stride).
  void predict_whole_tile(const PredictionInputs& in, const Block& b, uint8_t* tile, int16_t* out, int out_stride);

  struct Search {
    int sad_per_pixel = 1;         // a candidate within this mean absolute difference is taken at once
    int64_t searches = 0;          // blocks with several candidate references
    int64_t exhausted = 0;         // of those, blocks where every candidate was tried
  };
  Search search_;

  const PixelKernels* kernels_ = &pixel_kernels();
  // Reused between pictures so a stream allocates them once.
  std::vector<int32_t> tile_first_;     // per macroblock: start of its blocks in tile_blocks_ (prefix sums)
  std::vector<int32_t> tile_cursor_;
  std::vector<Block> usable_;           // the vectors the reader can honour, once per tile they touch
  std::vector<Block> tile_blocks_;      // the same grouped by tile, when the export order did not already do it
  std::vector<uint8_t> column_weight_;  // per cell column: its pixels inside the display rectangle (0..4)
  std::vector<int16_t> strip_;          // the residual of one row of tiles, out_width wide
};

}  // namespace codecprim

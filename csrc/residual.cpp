#include "residual.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "motion_vectors.h"
#include "pixel_rows.h"

namespace codecprim {
namespace {

constexpr int kCell = 4;

bool valid_block_size(int v) { return v == 4 || v == 8 || v == 16; }

// A block's row of coverage cells (1, 2 or 4 of them) as one word: compared and filled without a loop.
bool cells_equal(const uint8_t* cells, int count, uint8_t value) {
  if (count == 4) {
    uint32_t word;
    std::memcpy(&word, cells, 4);
    return word == value * 0x01010101u;
  }
  return cells[0] == value && (count == 1 || cells[1] == value);
}

void fill_cells(uint8_t* cells, int count, uint8_t value) {
  if (count == 4) {
    const uint32_t word = value * 0x01010101u;
    std::memcpy(cells, &word, 4);
    return;
  }
  cells[0] = value;
  if (count == 2) cells[1] = value;
}

}  // namespace

void ResidualBuilder::predict_block(const PredictionInputs& in, const Plane& ref, const int32_t* row, uint8_t* dst,
                                    int dst_stride) const {
  const int w = row[mv::kW], h = row[mv::kH];
  const int x = row[mv::kDstX] - w / 2, y = row[mv::kDstY] - h / 2;
  int mv_x = row[mv::kMotionX], mv_y = row[mv::kMotionY];
  const int scale = row[mv::kMotionScale];
  if (scale == 2 && in.family != CodecFamily::kH264) {
    predict_halfpel(ref, x, y, mv_x, mv_y, w, h, in.no_rounding, dst, dst_stride);
    return;
  }
  if (scale == 4 && in.family == CodecFamily::kH264) {
    predict_h264_qpel(ref, x, y, mv_x, mv_y, w, h, dst, dst_stride);
    return;
  }
  // Any other precision: bilinear at quarter-pel, the vector converted (rounded) to quarter-pel units.
  if (scale != 4 && scale > 0) {
    mv_x = (mv_x * 4 + (mv_x >= 0 ? scale / 2 : -scale / 2)) / scale;
    mv_y = (mv_y * 4 + (mv_y >= 0 ? scale / 2 : -scale / 2)) / scale;
  }
  predict_bilinear_qpel(ref, x, y, mv_x, mv_y, w, h, dst, dst_stride);
}

void ResidualBuilder::predict_best(const PredictionInputs& in, const int32_t* row, uint8_t* dst, int dst_stride) const {
  const Plane* refs = row[0] < 0 ? in.past : in.future;
  const int count = row[0] < 0 ? in.num_past : in.num_future;
  predict_block(in, refs[0], row, dst, dst_stride);
  if (count == 1) return;
  const int w = row[1], h = row[2];
  const int x = row[5] - w / 2, y = row[6] - h / 2;
  if (x + w > in.current.width || y + h > in.current.height) return;  // block in the alignment padding
  const uint8_t* cur = in.current.data + static_cast<std::ptrdiff_t>(y) * in.current.stride + x;
  auto sad = [&](const uint8_t* block, int stride) {
    int total = 0;
    for (int r = 0; r < h; ++r) {
      total += rows::sad(cur + static_cast<std::ptrdiff_t>(r) * in.current.stride, block + r * stride, w);
    }
    return total;
  };
  // When the nearest reference already predicts the block to within one level per pixel on average, any
  // other candidate could only shave off a residual that small: keep it and skip the search.
  int best = sad(dst, dst_stride);
  if (best <= w * h) return;
  uint8_t candidate[kMaxBlock * kMaxBlock];
  for (int i = 1; i < count; ++i) {
    predict_block(in, refs[i], row, candidate, kMaxBlock);
    const int cost = sad(candidate, kMaxBlock);
    if (cost < best) {
      best = cost;
      for (int r = 0; r < h; ++r) rows::copy(candidate + r * kMaxBlock, dst + r * dst_stride, w);
    }
  }
}

int64_t ResidualBuilder::compute(const PredictionInputs& in, int crop_x, int crop_y, int out_width, int out_height,
                                 int16_t* out) {
  const int aw = (in.current.width + 15) / 16 * 16, ah = (in.current.height + 15) / 16 * 16;
  if (aw != aligned_width_ || ah != aligned_height_) {
    aligned_width_ = aw;
    aligned_height_ = ah;
    prediction_.assign(static_cast<size_t>(aw) * ah, 0);
    coverage_.assign(static_cast<size_t>(aw / kCell) * (ah / kCell), 0);
  } else {
    std::fill(coverage_.begin(), coverage_.end(), 0);
  }
  const int cells_w = aw / kCell;

  uint8_t block[kMaxBlock * kMaxBlock];
  for (int64_t i = 0; i < in.count; ++i) {
    const int32_t* row = in.rows + i * kMotionVectorColumns;
    const int w = row[mv::kW], h = row[mv::kH];
    const int x = row[mv::kDstX] - w / 2, y = row[mv::kDstY] - h / 2;
    const int candidates = row[mv::kSource] < 0 ? in.num_past : in.num_future;
    // Rows the reader cannot honour (no such reference, odd geometry from a damaged stream) stay intra.
    if (candidates == 0 || !valid_block_size(w) || !valid_block_size(h) || x < 0 || y < 0 ||
        x + w > aw || y + h > ah || (x % kCell) != 0 || (y % kCell) != 0 || row[mv::kMotionScale] <= 0) {
      continue;
    }
    uint8_t* cover_row0 = coverage_.data() + static_cast<size_t>(y / kCell) * cells_w + x / kCell;
    // The block's cells were all untouched (its first or only direction) or all seen once (the second
    // direction of a bi-predicted block): then whole rows are written or averaged at once. A first direction
    // is predicted straight into the picture.
    const uint8_t first = cover_row0[0];
    bool uniform = first < 2;
    for (int cy = 0; cy < h / kCell && uniform; ++cy) {
      uniform = cells_equal(cover_row0 + cy * cells_w, w / kCell, first);
    }
    uint8_t* picture = prediction_.data() + static_cast<size_t>(y) * aw + x;
    if (uniform) {
      if (first == 0) {
        predict_best(in, row, picture, aw);
      } else {
        predict_best(in, row, block, kMaxBlock);
        for (int r = 0; r < h; ++r) {
          uint8_t* dst = picture + static_cast<size_t>(r) * aw;
          rows::average(dst, block + r * kMaxBlock, dst, w);
        }
      }
      for (int cy = 0; cy < h / kCell; ++cy) fill_cells(cover_row0 + cy * cells_w, w / kCell, first + 1);
      continue;
    }
    predict_best(in, row, block, kMaxBlock);
    // Mixed cells (partitions of the two directions differ): cell by cell.
    for (int cy = 0; cy < h; cy += kCell) {
      for (int cx = 0; cx < w; cx += kCell) {
        uint8_t& cover = coverage_[static_cast<size_t>((y + cy) / kCell) * cells_w + (x + cx) / kCell];
        for (int r = 0; r < kCell; ++r) {
          uint8_t* dst = prediction_.data() + static_cast<size_t>(y + cy + r) * aw + x + cx;
          const uint8_t* src = block + (cy + r) * kMaxBlock + cx;
          if (cover == 0) {
            std::memcpy(dst, src, kCell);
          } else {
            for (int c = 0; c < kCell; ++c) dst[c] = static_cast<uint8_t>((dst[c] + src[c] + 1) >> 1);
          }
        }
        if (cover < 2) ++cover;
      }
    }
  }

  // Intra cells: zero-motion prediction from the past reference (else the future one, else mid-grey).
  const Plane* fallback = in.num_past > 0 ? in.past : (in.num_future > 0 ? in.future : nullptr);
  // Pixels of a cell inside the display rectangle (cells may reach into the macroblock padding).
  auto inside = [](int start, int lo, int hi) { return std::max(0, std::min(start + kCell, hi) - std::max(start, lo)); };
  column_weight_.resize(static_cast<size_t>(cells_w));
  for (int cx = 0; cx < cells_w; ++cx) {
    column_weight_[cx] = static_cast<uint8_t>(inside(cx * kCell, crop_x, crop_x + out_width));
  }
  int64_t covered = 0;
  for (int cy = 0; cy < ah / kCell; ++cy) {
    const uint8_t* cover = coverage_.data() + static_cast<size_t>(cy) * cells_w;
    int row_cover = 0;
    for (int cx = 0; cx < cells_w; ++cx) row_cover += cover[cx] != 0 ? column_weight_[cx] : 0;
    covered += static_cast<int64_t>(row_cover) * inside(cy * kCell, crop_y, crop_y + out_height);
    if (row_cover == out_width) continue;  // every cell of this row had a vector
    for (int cx = 0; cx < cells_w; ++cx) {
      if (cover[cx] != 0) continue;
      for (int r = 0; r < kCell; ++r) {
        const int yy = cy * kCell + r;
        uint8_t* dst = prediction_.data() + static_cast<size_t>(yy) * aw + cx * kCell;
        if (fallback == nullptr) {
          std::memset(dst, 128, kCell);
          continue;
        }
        const uint8_t* src_row =
            fallback->data + static_cast<ptrdiff_t>(std::min(yy, fallback->height - 1)) * fallback->stride;
        if (cx * kCell + kCell <= fallback->width) {
          std::memcpy(dst, src_row + cx * kCell, kCell);
        } else {
          for (int c = 0; c < kCell; ++c) dst[c] = src_row[std::min(cx * kCell + c, fallback->width - 1)];
        }
      }
    }
  }

  // The residual itself: one plain subtraction over the display rectangle, which the compiler vectorises.
  for (int r = 0; r < out_height; ++r) {
    const uint8_t* cur = in.current.data + static_cast<ptrdiff_t>(crop_y + r) * in.current.stride + crop_x;
    const uint8_t* pred = prediction_.data() + static_cast<size_t>(crop_y + r) * aw + crop_x;
    int16_t* dst = out + static_cast<size_t>(r) * out_width;
    for (int c = 0; c < out_width; ++c) dst[c] = static_cast<int16_t>(cur[c] - pred[c]);
  }
  return covered;
}

}  // namespace codecprim

#include "residual.h"

#include <algorithm>
#include <cstring>

#include "motion_vectors.h"

namespace codecprim {
namespace {

constexpr int kCell = 4;
constexpr int kTile = 16;                   // a macroblock
constexpr int kTileCells = kTile / kCell;   // cells per tile side

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

// Pixels of [start, start + size) inside [lo, hi).
int inside(int start, int size, int lo, int hi) { return std::max(0, std::min(start + size, hi) - std::max(start, lo)); }

}  // namespace

void ResidualBuilder::predict_block(const PredictionInputs& in, const Plane& ref, const int32_t* row, uint8_t* dst,
                                    int dst_stride) const {
  const int w = row[mv::kW], h = row[mv::kH];
  const int x = row[mv::kDstX] - w / 2, y = row[mv::kDstY] - h / 2;
  int mv_x = row[mv::kMotionX], mv_y = row[mv::kMotionY];
  const int scale = row[mv::kMotionScale];
  if (scale == 2 && in.family != CodecFamily::kH264) {
    kernels_->halfpel(ref, x, y, mv_x, mv_y, w, h, in.no_rounding, dst, dst_stride);
    return;
  }
  if (scale == 4 && in.family == CodecFamily::kH264) {
    kernels_->h264_qpel(ref, x, y, mv_x, mv_y, w, h, dst, dst_stride);
    return;
  }
  // Any other precision: bilinear at quarter-pel, the vector converted (rounded) to quarter-pel units.
  if (scale != 4 && scale > 0) {
    mv_x = (mv_x * 4 + (mv_x >= 0 ? scale / 2 : -scale / 2)) / scale;
    mv_y = (mv_y * 4 + (mv_y >= 0 ? scale / 2 : -scale / 2)) / scale;
  }
  kernels_->bilinear_qpel(ref, x, y, mv_x, mv_y, w, h, dst, dst_stride);
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
  // When the nearest reference already predicts the block to within one level per pixel on average, any
  // other candidate could only shave off a residual that small: keep it and skip the search.
  int best = kernels_->sad(cur, in.current.stride, dst, dst_stride, w, h);
  if (best <= w * h) return;
  alignas(32) uint8_t candidate[kMaxBlock * kMaxBlock];
  for (int i = 1; i < count; ++i) {
    predict_block(in, refs[i], row, candidate, kMaxBlock);
    const int cost = kernels_->sad(cur, in.current.stride, candidate, kMaxBlock, w, h);
    if (cost < best) {
      best = cost;
      for (int r = 0; r < h; ++r) std::memcpy(dst + r * dst_stride, candidate + r * kMaxBlock, static_cast<size_t>(w));
    }
  }
}

int64_t ResidualBuilder::compute(const PredictionInputs& in, int crop_x, int crop_y, int out_width, int out_height,
                                 int16_t* out) {
  const int aw = (in.current.width + kTile - 1) / kTile * kTile, ah = (in.current.height + kTile - 1) / kTile * kTile;
  const int tiles_w = aw / kTile, tiles_h = ah / kTile;

  // Group the vectors by the tiles they cover, keeping their order: one tile each from every exporter, but a
  // misaligned block from an odd stream is predicted in each tile it touches and applied there in part.
  tile_first_.assign(static_cast<size_t>(tiles_w) * tiles_h + 1, 0);
  usable_.clear();
  auto tiles_of = [&](const int32_t* row, auto&& each) {
    const int w = row[mv::kW], h = row[mv::kH];
    const int x = row[mv::kDstX] - w / 2, y = row[mv::kDstY] - h / 2;
    for (int ty = y / kTile; ty <= (y + h - 1) / kTile; ++ty) {
      for (int tx = x / kTile; tx <= (x + w - 1) / kTile; ++tx) each(ty * tiles_w + tx);
    }
  };
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
    usable_.push_back(static_cast<int32_t>(i));
    tiles_of(row, [&](int t) { ++tile_first_[t + 1]; });
  }
  for (size_t t = 1; t < tile_first_.size(); ++t) tile_first_[t] += tile_first_[t - 1];
  tile_cursor_.assign(tile_first_.begin(), tile_first_.end() - 1);
  tile_rows_.resize(static_cast<size_t>(tile_first_.back()));
  for (const int32_t i : usable_) {
    tiles_of(in.rows + static_cast<int64_t>(i) * kMotionVectorColumns, [&](int t) { tile_rows_[tile_cursor_[t]++] = i; });
  }

  const int cells_w = aw / kCell;
  column_weight_.resize(static_cast<size_t>(cells_w));
  for (int cx = 0; cx < cells_w; ++cx) {
    column_weight_[cx] = static_cast<uint8_t>(inside(cx * kCell, kCell, crop_x, crop_x + out_width));
  }
  // Intra cells: zero-motion prediction from the past reference (else the future one, else mid-grey).
  const Plane* fallback = in.num_past > 0 ? in.past : (in.num_future > 0 ? in.future : nullptr);

  alignas(32) uint8_t tile[kTile * kTile];
  alignas(32) uint8_t block[kMaxBlock * kMaxBlock];
  uint8_t cover[kTileCells * kTileCells];  // vectors seen per cell: 0 intra, 1 one direction, 2 both
  int64_t covered = 0;
  const int last_ty = (crop_y + out_height - 1) / kTile, last_tx = (crop_x + out_width - 1) / kTile;
  for (int ty = crop_y / kTile; ty <= last_ty; ++ty) {
    const int y0 = ty * kTile;
    int row_weight[kTileCells];
    for (int cy = 0; cy < kTileCells; ++cy) row_weight[cy] = inside(y0 + cy * kCell, kCell, crop_y, crop_y + out_height);
    for (int tx = crop_x / kTile; tx <= last_tx; ++tx) {
      const int x0 = tx * kTile;
      const int t = ty * tiles_w + tx;
      std::memset(cover, 0, sizeof(cover));
      for (int32_t k = tile_first_[t]; k < tile_first_[t + 1]; ++k) {
        const int32_t* row = in.rows + static_cast<int64_t>(tile_rows_[k]) * kMotionVectorColumns;
        const int w = row[mv::kW], h = row[mv::kH];
        const int bx = row[mv::kDstX] - w / 2 - x0, by = row[mv::kDstY] - h / 2 - y0;  // in the tile
        const bool within = bx >= 0 && by >= 0 && bx + w <= kTile && by + h <= kTile;
        // The block's cells were all untouched (its first or only direction) or all seen once (the second
        // direction of a bi-predicted block): then the whole block is written or averaged at once, a first
        // direction predicted straight into the tile.
        uint8_t* cover0 = within ? cover + (by / kCell) * kTileCells + bx / kCell : nullptr;
        const uint8_t first = within ? cover0[0] : 2;
        bool uniform = first < 2;
        for (int cy = 0; cy < h / kCell && uniform; ++cy) uniform = cells_equal(cover0 + cy * kTileCells, w / kCell, first);
        if (uniform) {
          uint8_t* dst = tile + by * kTile + bx;
          if (first == 0) {
            predict_best(in, row, dst, kTile);
          } else {
            predict_best(in, row, block, kMaxBlock);
            kernels_->average(block, kMaxBlock, dst, kTile, w, h);
          }
          for (int cy = 0; cy < h / kCell; ++cy) fill_cells(cover0 + cy * kTileCells, w / kCell, first + 1);
          continue;
        }
        // Mixed cells (partitions of the two directions differ) or a block reaching out of the tile: cell by cell.
        predict_best(in, row, block, kMaxBlock);
        for (int cy = std::max(0, -by / kCell); cy < h / kCell && by + cy * kCell < kTile; ++cy) {
          for (int cx = std::max(0, -bx / kCell); cx < w / kCell && bx + cx * kCell < kTile; ++cx) {
            const int px = bx + cx * kCell, py = by + cy * kCell;
            uint8_t& c = cover[(py / kCell) * kTileCells + px / kCell];
            for (int r = 0; r < kCell; ++r) {
              uint8_t* dst = tile + (py + r) * kTile + px;
              const uint8_t* src = block + (cy * kCell + r) * kMaxBlock + cx * kCell;
              if (c == 0) {
                std::memcpy(dst, src, kCell);
              } else {
                for (int i = 0; i < kCell; ++i) dst[i] = static_cast<uint8_t>((dst[i] + src[i] + 1) >> 1);
              }
            }
            if (c < 2) ++c;
          }
        }
      }

      const uint8_t* pred = tile;
      int pred_stride = kTile;
      uint32_t any_cover = 0;
      for (int cy = 0; cy < kTileCells; ++cy) {
        int row_cover = 0;
        for (int cx = 0; cx < kTileCells; ++cx) {
          const uint8_t c = cover[cy * kTileCells + cx];
          any_cover |= c;
          row_cover += c != 0 ? column_weight_[tx * kTileCells + cx] : 0;
        }
        covered += static_cast<int64_t>(row_cover) * row_weight[cy];
      }
      if (any_cover == 0 && fallback != nullptr && x0 + kTile <= fallback->width && y0 + kTile <= fallback->height) {
        // An intra macroblock: its prediction is the co-located reference tile itself.
        pred = fallback->data + static_cast<std::ptrdiff_t>(y0) * fallback->stride + x0;
        pred_stride = fallback->stride;
      } else {
        for (int cell = 0; cell < kTileCells * kTileCells; ++cell) {
          if (cover[cell] != 0) continue;
          const int px = (cell % kTileCells) * kCell, py = (cell / kTileCells) * kCell;
          for (int r = 0; r < kCell; ++r) {
            uint8_t* dst = tile + (py + r) * kTile + px;
            if (fallback == nullptr) {
              std::memset(dst, 128, kCell);
              continue;
            }
            const int yy = y0 + py + r, xx = x0 + px;
            const uint8_t* src_row =
                fallback->data + static_cast<std::ptrdiff_t>(std::min(yy, fallback->height - 1)) * fallback->stride;
            if (xx + kCell <= fallback->width) {
              std::memcpy(dst, src_row + xx, kCell);
            } else {
              for (int c = 0; c < kCell; ++c) dst[c] = src_row[std::min(xx + c, fallback->width - 1)];
            }
          }
        }
      }

      // The tile's residual, clipped to the display rectangle.
      const int r0 = std::max(y0, crop_y), r1 = std::min(y0 + kTile, crop_y + out_height);
      const int c0 = std::max(x0, crop_x), c1 = std::min(x0 + kTile, crop_x + out_width);
      kernels_->subtract(in.current.data + static_cast<std::ptrdiff_t>(r0) * in.current.stride + c0, in.current.stride,
                         pred + static_cast<std::ptrdiff_t>(r0 - y0) * pred_stride + (c0 - x0), pred_stride,
                         out + static_cast<std::ptrdiff_t>(r0 - crop_y) * out_width + (c0 - crop_x), out_width,
                         c1 - c0, r1 - r0);
    }
  }
  return covered;
}

}  // namespace codecprim

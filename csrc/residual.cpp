#include "residual.h"

#include <algorithm>
#include <cstring>

#include "motion_vectors.h"

namespace codecprim {
namespace {

constexpr int kCell = 4;
constexpr int kTile = 16;                   // a macroblock
constexpr int kTileCells = kTile / kCell;   // cells per tile side

// The block sizes a vector may have (4, 8 or 16 on each side), as bits.
constexpr unsigned kBlockSizes = (1u << 4) | (1u << 8) | (1u << 16);
static_assert(kTile == 16, "the tile of a position is position >> 4");

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

// Mean absolute difference per pixel that the coded residual of an H.264 block at this QP can account for: an
// eighth of the quantiser step (Qstep doubles every 6 QP; 1.0 at QP 4), and at least one level. Larger
// fractions stop on a worse reference too often: Qstep/2 made the mean |residual| of x264 clips 7-22 % larger,
// Qstep/8 0.2-3 % (the search's order included).
constexpr int sad_explained_by_qp_uncached(int qp) {
  constexpr int kStepTimes16[6] = {10, 11, 13, 14, 16, 18};  // Qstep * 16 for QP 0..5
  const int per_pixel = (kStepTimes16[qp % 6] << (qp / 6)) / 128;
  return per_pixel > 1 ? per_pixel : 1;
}

// Looked up once per macroblock.
struct QpTable {
  int per_pixel[52];
  constexpr QpTable() : per_pixel() {
    for (int qp = 0; qp < 52; ++qp) per_pixel[qp] = sad_explained_by_qp_uncached(qp);
  }
};
constexpr QpTable kQpTable;

int sad_explained_by_qp(int qp) { return kQpTable.per_pixel[std::clamp(qp, 0, 51)]; }

// Tile rows a row of tiles reads ahead of its use (see pull_rows).
constexpr int kPullAhead = 2;

// Loads one byte of every cache line of rows [from, to) of a plane, in address order. The decoded picture and
// its nearest references were decoded frames ago and have mostly left the caches; the tiles' own accesses
// (16 short rows at a time, several pictures) leave the hardware prefetchers little to follow, while one
// sequential read per row of tiles, two rows of tiles ahead, streams them in with many misses in flight: a
// 720p frame's compute took 0.78-0.82 ms without it, 0.58-0.71 ms with it (thread CPU, 7 runs each,
// interleaved, loaded machine). Software prefetch instructions over the same lines gained about half of that.
void pull_rows(const Plane& p, int from, int to) {
  from = std::max(from, 0);
  to = std::min(to, p.height);
  if (from >= to) return;
  const uint8_t* q = p.data + static_cast<std::ptrdiff_t>(from) * p.stride;
  const uint8_t* const end = p.data + static_cast<std::ptrdiff_t>(to - 1) * p.stride + p.width;
  unsigned sum = 0;
  for (; q + 192 < end; q += 256) sum += q[0] + q[64] + q[128] + q[192];
  for (; q < end; q += 64) sum += *q;
  asm volatile("" : : "r"(sum));  // the loads are the point: keep them
}

}  // namespace

// predict_block and predict_best are inlined into their callers (always_inline): the call chain per block cost
// 1.5 % of a full extraction's instructions on the 720p clip and 1.7 % on the MPEG-4 one (callgrind).
[[gnu::always_inline]] inline ResidualBuilder::View ResidualBuilder::predict_block(
    const PredictionInputs& in, const Plane& ref, const Block& b, uint8_t* dst, int dst_stride) const {
  const int32_t* row = b.row;
  const int w = b.w, h = b.h, x = b.x, y = b.y;
  int mv_x = row[mv::kMotionX], mv_y = row[mv::kMotionY];
  const int scale = row[mv::kMotionScale];
  enum { kHalfpel, kH264, kBilinear } method = kBilinear;
  if (scale == 2 && in.family != CodecFamily::kH264) {
    method = kHalfpel;
  } else if (scale == 4 && in.family == CodecFamily::kH264) {
    method = kH264;
  } else if (scale != 4 && scale > 0) {
    // Any other precision: bilinear at quarter-pel, the vector converted (rounded) to quarter-pel units.
    mv_x = (mv_x * 4 + (mv_x >= 0 ? scale / 2 : -scale / 2)) / scale;
    mv_y = (mv_y * 4 + (mv_y >= 0 ? scale / 2 : -scale / 2)) / scale;
  }
  // A whole-sample vector inside the picture predicts with the reference samples themselves: no copy.
  const int shift = method == kHalfpel ? 1 : 2;
  if (((mv_x | mv_y) & ((1 << shift) - 1)) == 0) {
    const int sx = x + (mv_x >> shift), sy = y + (mv_y >> shift);
    if (sx >= 0 && sy >= 0 && sx + w <= ref.width && sy + h <= ref.height) {
      return View{ref.data + static_cast<std::ptrdiff_t>(sy) * ref.stride + sx, ref.stride};
    }
  }
  switch (method) {
    case kHalfpel: kernels_->halfpel(ref, x, y, mv_x, mv_y, w, h, in.no_rounding, dst, dst_stride); break;
    case kH264: kernels_->h264_qpel(ref, x, y, mv_x, mv_y, w, h, dst, dst_stride); break;
    case kBilinear: kernels_->bilinear_qpel(ref, x, y, mv_x, mv_y, w, h, dst, dst_stride); break;
  }
  return View{dst, dst_stride};
}

[[gnu::always_inline]] inline ResidualBuilder::Candidates ResidualBuilder::candidates_of(const PredictionInputs& in,
                                                                                       const Block& b) const {
  const bool past = b.row[mv::kSource] < 0;
  Candidates c{past ? in.past : in.future, past ? in.num_past : in.num_future, false,
               in.current.data + static_cast<std::ptrdiff_t>(b.y) * in.current.stride + b.x, 0};
  // One candidate, or a block in the alignment padding (nothing decoded to compare with): the nearest, unsearched.
  c.search = c.count > 1 && b.x + b.w <= in.current.width && b.y + b.h <= in.current.height;
  if (c.search) c.enough = search_.sad_per_pixel * b.w * b.h;
  return c;
}

[[gnu::always_inline]] inline ResidualBuilder::View ResidualBuilder::predict_best(
    const PredictionInputs& in, const Block& b, uint8_t* dst, int dst_stride) {
  const Candidates c = candidates_of(in, b);
  // Nearest first. Trying first the reference that predicted the previous block instead made no difference to
  // the work on x264 clips (the nearest is mostly right) and left slightly larger residuals (up to 1.7 %).
  const View nearest = predict_block(in, c.refs[0], b, dst, dst_stride);
  if (!c.search) return nearest;
  ++search_.searches;
  int cost = kernels_->sad(c.decoded, in.current.stride, nearest.data, nearest.stride, b.w, b.h);
  if (cost <= c.enough) return nearest;
  return search_on(in, b, c, nearest, cost, dst, dst_stride);
}

ResidualBuilder::View ResidualBuilder::search_on(const PredictionInputs& in, const Block& b, const Candidates& c,
                                                 View best_view, int& best, uint8_t* dst, int dst_stride) {
  const int w = b.w, h = b.h;
  alignas(32) uint8_t candidate[kMaxBlock * kMaxBlock];
  for (int i = 1; i < c.count; ++i) {
    const View view = predict_block(in, c.refs[i], b, candidate, kMaxBlock);
    const int cost = kernels_->sad(c.decoded, in.current.stride, view.data, view.stride, w, h);
    if (cost >= best) continue;
    best = cost;
    best_view = view;
    if (view.data == candidate) {  // the buffer is reused by the next candidate
      kernels_->copy(candidate, kMaxBlock, dst, dst_stride, w, h);
      best_view = View{dst, dst_stride};
    }
    if (best <= c.enough) return best_view;
  }
  ++search_.exhausted;
  return best_view;
}

[[gnu::always_inline]] inline void ResidualBuilder::predict_whole_tile(const PredictionInputs& in, const Block& b,
                                                                      uint8_t* tile, int16_t* out, int out_stride) {
  const Candidates c = candidates_of(in, b);
  const View nearest = predict_block(in, c.refs[0], b, tile, kTile);
  if (!c.search) {
    kernels_->subtract(c.decoded, in.current.stride, nearest.data, nearest.stride, out, out_stride, kTile, kTile);
    return;
  }
  // The search as predict_best runs it; the nearest's residual is written while its cost is taken, and kept
  // when the nearest is good enough, as it mostly is.
  ++search_.searches;
  const int nearest_cost = kernels_->subtract_sad(c.decoded, in.current.stride, nearest.data, nearest.stride, out,
                                                  out_stride, kTile, kTile);
  if (nearest_cost <= c.enough) return;
  int cost = nearest_cost;
  const View best = search_on(in, b, c, nearest, cost, tile, kTile);
  if (cost < nearest_cost) {  // another reference predicts it better: its residual replaces the nearest's
    kernels_->subtract(c.decoded, in.current.stride, best.data, best.stride, out, out_stride, kTile, kTile);
  }
}

void ResidualBuilder::predict_into(const PredictionInputs& in, const Block& b, uint8_t* dst, int dst_stride) {
  const View view = predict_best(in, b, dst, dst_stride);
  if (view.data != dst) kernels_->copy(view.data, view.stride, dst, dst_stride, b.w, b.h);
}

int64_t ResidualBuilder::compute(const PredictionInputs& in, int crop_x, int crop_y, int out_width, int out_height,
                                 int16_t* out, uint8_t* luma, CellSquareSums* cells) {
  const int aw = (in.current.width + kTile - 1) / kTile * kTile, ah = (in.current.height + kTile - 1) / kTile * kTile;
  const int tiles_w = aw / kTile, tiles_h = ah / kTile;

  // Group the vectors by the tiles they cover, keeping their order: every exporter lists a macroblock's blocks
  // together, macroblocks in raster order, so the export order usually is the grouping already; otherwise a
  // counting sort. A misaligned block from an odd stream is listed in each tile it touches, and predicted whole
  // and applied in part there.
  tile_first_.assign(static_cast<size_t>(tiles_w) * tiles_h + 1, 0);
  usable_.resize(static_cast<size_t>(in.count));
  size_t used = 0;
  bool grouped = true;
  int32_t last_tile = 0;
  int32_t* first = tile_first_.data() + 1;
  const int32_t* const rows_end = in.rows + in.count * kMotionVectorColumns;
  for (const int32_t* row = in.rows; row != rows_end; row += kMotionVectorColumns) {
    const int w = row[mv::kW], h = row[mv::kH];
    const int x = row[mv::kDstX] - (w >> 1), y = row[mv::kDstY] - (h >> 1);
    const int candidates = row[mv::kSource] < 0 ? in.num_past : in.num_future;
    // Rows the reader cannot honour (no such reference, odd geometry from a damaged stream) stay intra. Tested
    // with few branches: this runs once per exported vector.
    const bool sizes = (w == kTile && h == kTile) ||
                       (static_cast<unsigned>(w | h) < 32 && ((kBlockSizes >> w) & (kBlockSizes >> h) & 1) != 0);
    const bool placed = (static_cast<unsigned>(x | y) & (0x80000000u | (kCell - 1))) == 0;  // >= 0, on the cell grid
    if (!sizes || !placed || candidates == 0 || x + w > aw || y + h > ah || row[mv::kMotionScale] <= 0) continue;
    const int tx0 = x >> 4, tx1 = (x + w - 1) >> 4, ty0 = y >> 4, ty1 = (y + h - 1) >> 4;
    const Block block{row, ty0 * tiles_w + tx0, x, y, static_cast<uint8_t>(w), static_cast<uint8_t>(h)};
    if (tx0 == tx1 && ty0 == ty1) {
      grouped &= block.tile >= last_tile;
      last_tile = block.tile;
      ++first[block.tile];
      usable_[used++] = block;
      continue;
    }
    for (int ty = ty0; ty <= ty1; ++ty) {
      for (int tx = tx0; tx <= tx1; ++tx) {
        if (used == usable_.size()) usable_.resize(usable_.size() + 8);
        const int32_t t = ty * tiles_w + tx;
        grouped &= t >= last_tile;
        last_tile = t;
        ++first[t];
        usable_[used] = block;
        usable_[used++].tile = t;
      }
    }
  }
  for (size_t t = 1; t < tile_first_.size(); ++t) tile_first_[t] += tile_first_[t - 1];
  const Block* blocks = usable_.data();
  if (!grouped) {
    tile_cursor_.assign(tile_first_.begin(), tile_first_.end() - 1);
    tile_blocks_.resize(used);
    for (size_t k = 0; k < used; ++k) tile_blocks_[tile_cursor_[usable_[k].tile]++] = usable_[k];
    blocks = tile_blocks_.data();
  }

  const int cells_w = aw / kCell;
  column_weight_.resize(static_cast<size_t>(cells_w));
  for (int cx = 0; cx < cells_w; ++cx) {
    column_weight_[cx] = static_cast<uint8_t>(inside(cx * kCell, kCell, crop_x, crop_x + out_width));
  }
  strip_.resize(static_cast<size_t>(kTile) * out_width);
  search_.sad_per_pixel = 1;
  const bool searching = in.qp != nullptr && (in.num_past > 1 || in.num_future > 1);
  // Intra cells: zero-motion prediction from the past reference (else the future one, else mid-grey).
  const Plane* fallback = in.num_past > 0 ? in.past : (in.num_future > 0 ? in.future : nullptr);

  alignas(32) uint8_t tile[kTile * kTile];
  alignas(32) uint8_t block[kMaxBlock * kMaxBlock];
  // Vectors seen per cell: 0 intra, 1 one direction, 2 both; also read as two words.
  alignas(8) uint8_t cover[kTileCells * kTileCells];  // valid once `cells` is set
  int64_t covered = 0;
  const int last_ty = (crop_y + out_height - 1) / kTile, last_tx = (crop_x + out_width - 1) / kTile;
  // Tiles [inside_tx0, inside_tx1) of a row lie wholly inside the display rectangle's columns.
  const int inside_tx0 = (crop_x + kTile - 1) / kTile, inside_tx1 = (crop_x + out_width) / kTile;
  auto pull = [&](int from, int to) {
    pull_rows(in.current, from, to);
    if (in.num_past > 0) pull_rows(in.past[0], from, to);
    if (in.num_future > 0) pull_rows(in.future[0], from, to);
  };
  pull(crop_y / kTile * kTile, (crop_y / kTile + kPullAhead) * kTile);
  for (int ty = crop_y / kTile; ty <= last_ty; ++ty) {
    const int y0 = ty * kTile;
    if (ty + kPullAhead <= last_ty) pull(y0 + kPullAhead * kTile, y0 + (kPullAhead + 1) * kTile);
    const bool rows_inside = y0 >= crop_y && y0 + kTile <= crop_y + out_height;
    // The strip's first row is display row r0 - crop_y.
    const int r0 = std::max(y0, crop_y), r1 = std::min(y0 + kTile, crop_y + out_height);
    int row_weight[kTileCells];
    for (int cy = 0; cy < kTileCells; ++cy) row_weight[cy] = inside(y0 + cy * kCell, kCell, crop_y, crop_y + out_height);
    const int8_t* qp_row = searching ? in.qp + std::min(ty, in.qp_rows - 1) * in.qp_stride : nullptr;
    for (int tx = crop_x / kTile; tx <= last_tx; ++tx) {
      const int x0 = tx * kTile;
      const int t = ty * tiles_w + tx;
      if (searching) search_.sad_per_pixel = sad_explained_by_qp(qp_row[std::min(tx, in.qp_stride - 1)]);
      const int32_t k_begin = tile_first_[t], k_end = tile_first_[t + 1];
      const bool tile_inside = rows_inside && tx >= inside_tx0 && tx < inside_tx1;
      // The common macroblocks, predicted and subtracted without the per-cell bookkeeping below: one vector for
      // the whole tile (P or one-direction B 16x16 or skip), or two (bi-predicted 16x16).
      auto whole_tile = [&](const Block& b) { return b.w == kTile && b.h == kTile && b.x == x0 && b.y == y0; };
      if (tile_inside && k_end - k_begin == 1 && whole_tile(blocks[k_begin])) {
        predict_whole_tile(in, blocks[k_begin], tile, strip_.data() + (x0 - crop_x), out_width);
        covered += kTile * kTile;
        continue;
      }
      if (tile_inside && k_end - k_begin == 2 && whole_tile(blocks[k_begin]) && whole_tile(blocks[k_begin + 1])) {
        const View first = predict_best(in, blocks[k_begin], tile, kTile);
        const View second = predict_best(in, blocks[k_begin + 1], block, kMaxBlock);
        kernels_->average_subtract(in.current.data + static_cast<std::ptrdiff_t>(y0) * in.current.stride + x0,
                                   in.current.stride, first.data, first.stride, second.data, second.stride,
                                   strip_.data() + (x0 - crop_x), out_width, kTile, kTile);
        covered += kTile * kTile;
        continue;
      }
      // Whole-tile vectors (16x16 at the tile's origin) are applied without per-cell bookkeeping while no
      // partial block has come: `whole` then stands for every cell's coverage, and the first one may be a view
      // of the reference itself.
      int whole = 0;
      bool cells = false;
      View pred{tile, kTile};
      auto into_tile = [&]() {
        if (pred.data != tile) kernels_->copy(pred.data, pred.stride, tile, kTile, kTile, kTile);
        pred = View{tile, kTile};
      };
      auto materialise = [&]() {
        if (cells) return;
        std::memset(cover, whole, sizeof(cover));
        cells = true;
      };
      for (int32_t k = k_begin; k < k_end; ++k) {
        const Block& b = blocks[k];
        const int w = b.w, h = b.h;
        const int bx = b.x - x0, by = b.y - y0;  // in the tile
        if (!cells && w == kTile && h == kTile && bx == 0 && by == 0) {
          if (whole == 0) {
            pred = predict_best(in, b, tile, kTile);
          } else {
            // The first direction may be a view of its reference: the average reads it there (no copy).
            const View second = predict_best(in, b, block, kMaxBlock);
            kernels_->average(pred.data, pred.stride, second.data, second.stride, tile, kTile, kTile, kTile);
            pred = View{tile, kTile};
          }
          whole = std::min(whole + 1, 2);
          continue;
        }
        into_tile();
        materialise();
        const bool within = bx >= 0 && by >= 0 && bx + w <= kTile && by + h <= kTile;
        // The block's cells were all untouched (its first or only direction) or all seen once (the second
        // direction of a bi-predicted block): then the whole block is written or averaged at once, a first
        // direction predicted straight into the tile.
        uint8_t* cover0 = within ? cover + (by / kCell) * kTileCells + bx / kCell : nullptr;
        const uint8_t seen = within ? cover0[0] : 2;
        bool uniform = seen < 2;
        for (int cy = 0; cy < h / kCell && uniform; ++cy) uniform = cells_equal(cover0 + cy * kTileCells, w / kCell, seen);
        if (uniform) {
          uint8_t* dst = tile + by * kTile + bx;
          if (seen == 0) {
            predict_into(in, b, dst, kTile);
          } else {
            const View second = predict_best(in, b, block, kMaxBlock);
            kernels_->average(dst, kTile, second.data, second.stride, dst, kTile, w, h);
          }
          // (by + h <= kTile here; the bound on cy says so to the compiler too)
          for (int cy = 0; cy < h / kCell && by / kCell + cy < kTileCells; ++cy) {
            fill_cells(cover0 + cy * kTileCells, w / kCell, seen + 1);
          }
          continue;
        }
        // Mixed cells (partitions of the two directions differ) or a block reaching out of the tile: cell by cell.
        const View view = predict_best(in, b, block, kMaxBlock);
        for (int cy = std::max(0, -by / kCell); cy < h / kCell && by + cy * kCell < kTile; ++cy) {
          for (int cx = std::max(0, -bx / kCell); cx < w / kCell && bx + cx * kCell < kTile; ++cx) {
            const int px = bx + cx * kCell, py = by + cy * kCell;
            uint8_t& c = cover[(py / kCell) * kTileCells + px / kCell];
            for (int r = 0; r < kCell; ++r) {
              uint8_t* dst = tile + (py + r) * kTile + px;
              const uint8_t* src = view.data + (cy * kCell + r) * view.stride + cx * kCell;
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

      // Cells with a vector: cover values are 0..2, so (v | v >> 1) & 1 per byte marks them, and a multiply
      // sums the marks of a word into its top byte.
      int with_vector = whole > 0 ? kTileCells * kTileCells : 0;
      if (cells) {
        uint64_t words[2];
        std::memcpy(words, cover, sizeof(words));
        constexpr uint64_t kOnes = 0x0101010101010101ull;
        with_vector = static_cast<int>(((((words[0] | words[0] >> 1) & kOnes) * kOnes) >> 56) +
                                       ((((words[1] | words[1] >> 1) & kOnes) * kOnes) >> 56));
      }
      if (tile_inside) {
        covered += with_vector * kCell * kCell;
      } else if (with_vector > 0) {
        materialise();
        for (int cy = 0; cy < kTileCells; ++cy) {
          int row_cover = 0;
          for (int cx = 0; cx < kTileCells; ++cx) {
            row_cover += cover[cy * kTileCells + cx] != 0 ? column_weight_[tx * kTileCells + cx] : 0;
          }
          covered += static_cast<int64_t>(row_cover) * row_weight[cy];
        }
      }
      if (with_vector == 0 && fallback != nullptr && x0 + kTile <= fallback->width && y0 + kTile <= fallback->height) {
        // An intra macroblock: its prediction is the co-located reference tile itself.
        pred = View{fallback->data + static_cast<std::ptrdiff_t>(y0) * fallback->stride + x0, fallback->stride};
      } else if (with_vector < kTileCells * kTileCells) {
        materialise();
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
      const int c0 = std::max(x0, crop_x), c1 = std::min(x0 + kTile, crop_x + out_width);
      kernels_->subtract(in.current.data + static_cast<std::ptrdiff_t>(r0) * in.current.stride + c0, in.current.stride,
                         pred.data + static_cast<std::ptrdiff_t>(r0 - y0) * pred.stride + (c0 - x0), pred.stride,
                         strip_.data() + (c0 - crop_x), out_width, c1 - c0, r1 - r0);
    }
    const std::ptrdiff_t first_row = static_cast<std::ptrdiff_t>(r0 - crop_y) * out_width;
    if (cells != nullptr) cells->add_rows(strip_.data(), r0 - crop_y, r1 - r0);
    if (out != nullptr) {
      kernels_->stream_rows(reinterpret_cast<const uint8_t*>(strip_.data()), 0,
                            reinterpret_cast<uint8_t*>(out + first_row), 0,
                            static_cast<size_t>(r1 - r0) * out_width * sizeof(int16_t), 1);
    }
    if (luma != nullptr) {
      kernels_->stream_rows(in.current.data + static_cast<std::ptrdiff_t>(r0) * in.current.stride + crop_x,
                            in.current.stride, luma + first_row, out_width, static_cast<size_t>(out_width), r1 - r0);
    }
  }
  return covered;
}

}  // namespace codecprim

// Block-matching motion estimation: CUDA twin of csrc/block_matching.cpp (the CPU twin).
//
// One thread block (256 threads, 8 warps) per macroblock of a (T, H, W) uint8 stack; block b is
// frame b / (rows * cols), row (b / cols) % rows, column b % cols. Everything is integer
// arithmetic, so the results equal the CPU twin's bit for bit:
//   * SAD over the block's support (block grown by `margin` on every side), pixels outside the
//     frame skipped, reference pixels edge clamped;
//   * cost = (SAD << 2 * level) + lam * |q(v) - pred_q|_1 with q(v) = v * (4 << level), or
//     (SAD << 2 * level) + 2^30 when |q(v)| > limit_q in either component;
//   * candidate order: window centre, the rest of the window in raster order (dy outer, dx
//     inner), then the per-block extras; sub-pel: current best, then its 8 neighbours in raster
//     order. The first candidate of minimal cost wins, exactly like torch.argmin.
// Each warp evaluates candidates warp, warp + 8, ...; its lanes stride over the support pixels
// and the partial sums meet in a shuffle reduction.

namespace {

constexpr int kWarps = 8;
constexpr int kInf = 1 << 30;
constexpr int kIntMax = 0x7fffffff;  // NVRTC has no <climits>
constexpr int kQuarter = 4;

__device__ __forceinline__ int clampi(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

// floor(v / 4) for negative v too (C++ division truncates toward zero).
__device__ __forceinline__ int floor_div4(int v) { return v >= 0 ? v / 4 : -((-v + 3) / 4); }

__device__ __forceinline__ int warp_sum(int v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
  return v;
}

__device__ __forceinline__ int regulariser(int qx, int qy, int px, int py, int limit_q, int lam) {
  if (abs(qx) > limit_q || abs(qy) > limit_q) return kInf;
  return lam * (abs(qx - px) + abs(qy - py));
}

// The block's support from `cur` into shared memory: value, or -1 outside the frame.
__device__ void load_support(const unsigned char* cur, int height, int width, int top, int left,
                             int support, short* blk) {
  for (int p = threadIdx.x; p < support * support; p += blockDim.x) {
    const int y = top + p / support, x = left + p % support;
    const bool inside = y >= 0 && y < height && x >= 0 && x < width;
    blk[p] = inside ? static_cast<short>(cur[static_cast<long long>(y) * width + x]) : short(-1);
  }
}

// An edge-clamped square of `ref` with top-left (top, left) into shared memory.
__device__ void load_tile(const unsigned char* ref, int height, int width, int top, int left, int side,
                          unsigned char* tile) {
  for (int p = threadIdx.x; p < side * side; p += blockDim.x) {
    const int y = clampi(top + p / side, 0, height - 1), x = clampi(left + p % side, 0, width - 1);
    tile[p] = ref[static_cast<long long>(y) * width + x];
  }
}

}  // namespace

// Integer search of one pyramid level. centres, pred_q: (B, 2) int32 (x, y); extras: (B, E, 2);
// out_vec (B, 2) and out_cost (B,) int32. Shared memory (bytes, in this order): 2 * support^2
// block, then when use_tile the P^2 edge-clamped reference window (n = 2 radius + 1, P = support
// + n - 1); without it the window is read from global memory. Each warp keeps the first minimum
// of its candidates (it visits them in increasing order); thread 0 then takes the smallest
// (cost, candidate index) pair over the warps, which is the global first minimum.
extern "C" __global__ void me_level_search_u8(
    const unsigned char* cur, const unsigned char* ref, int height, int width, int rows, int cols,
    int size, int margin, const int* centres, int radius, const int* extras, int num_extras,
    const int* pred_q, int level, int limit_q, int lam, int use_tile, int* out_vec, int* out_cost) {
  extern __shared__ short smem_level[];
  __shared__ int warp_cost[kWarps];
  __shared__ int warp_index[kWarps];
  const int b = blockIdx.x;
  const int per_frame = rows * cols;
  const long long plane = static_cast<long long>(height) * width;
  const unsigned char* cur_t = cur + (b / per_frame) * plane;
  const unsigned char* ref_t = ref + (b / per_frame) * plane;
  const int support = size + 2 * margin;
  const int top = (b / cols) % rows * size - margin;
  const int left = b % cols * size - margin;
  const int n = 2 * radius + 1;
  const int window = n * n;
  const int total = window + num_extras;
  const int centre_raster = window / 2;
  const int cx = centres[2 * b], cy = centres[2 * b + 1];
  const int px = pred_q[2 * b], py = pred_q[2 * b + 1];
  const int qscale = kQuarter << level;

  short* blk = smem_level;
  unsigned char* tile = reinterpret_cast<unsigned char*>(blk + support * support);
  const int side = support + n - 1;

  load_support(cur_t, height, width, top, left, support, blk);
  if (use_tile) load_tile(ref_t, height, width, top + cy - radius, left + cx - radius, side, tile);
  __syncthreads();

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  int my_cost = kIntMax, my_index = total;  // above any real cost (at most 2^30 + SAD << 2 level)
  for (int k = warp; k < total; k += kWarps) {
    int vx, vy, ox = 0, oy = 0;  // (ox, oy): window offset in [0, n) for window candidates
    const bool in_window = k < window;
    if (in_window) {
      const int raster = k == 0 ? centre_raster : (k - 1 < centre_raster ? k - 1 : k);
      oy = raster / n;
      ox = raster % n;
      vx = cx + ox - radius;
      vy = cy + oy - radius;
    } else {
      const int* e = extras + (static_cast<long long>(b) * num_extras + (k - window)) * 2;
      vx = e[0];
      vy = e[1];
    }
    int sad = 0;
    for (int p = lane; p < support * support; p += 32) {
      const int c = blk[p];
      if (c < 0) continue;
      const int i = p / support, j = p % support;
      int r;
      if (in_window && use_tile) {
        r = tile[(i + oy) * side + (j + ox)];
      } else {
        const int y = clampi(top + i + vy, 0, height - 1), x = clampi(left + j + vx, 0, width - 1);
        r = ref_t[static_cast<long long>(y) * width + x];
      }
      sad += abs(c - r);
    }
    sad = __shfl_sync(0xffffffffu, warp_sum(sad), 0);
    const int cost = (sad << (2 * level)) + regulariser(vx * qscale, vy * qscale, px, py, limit_q, lam);
    if (cost < my_cost) {
      my_cost = cost;
      my_index = k;
    }
  }
  if (lane == 0) {
    warp_cost[warp] = my_cost;
    warp_index[warp] = my_index;
  }
  __syncthreads();

  if (threadIdx.x == 0) {
    int best = 0;
    for (int w = 1; w < kWarps; ++w) {
      if (warp_cost[w] < warp_cost[best] || (warp_cost[w] == warp_cost[best] && warp_index[w] < warp_index[best])) {
        best = w;
      }
    }
    const int k = warp_index[best];
    int vx, vy;
    if (k < window) {
      const int raster = k == 0 ? centre_raster : (k - 1 < centre_raster ? k - 1 : k);
      vx = cx + raster % n - radius;
      vy = cy + raster / n - radius;
    } else {
      const int* e = extras + (static_cast<long long>(b) * num_extras + (k - window)) * 2;
      vx = e[0];
      vy = e[1];
    }
    out_vec[2 * b] = vx;
    out_vec[2 * b + 1] = vy;
    out_cost[b] = warp_cost[best];
  }
}

// Half- then quarter-pel refinement around the integer vectors (B, 2) at full resolution.
// base_cost (B,) is the integer vector's cost; out_q (B, 2) quarter pels, out_cost (B,).
// Shared memory (bytes, in this order): 4 * 8 costs, 2 * size^2 block, (size + 3)^2 patch whose
// top-left is one pixel up-left of the integer match, so every tap of a +-3 quarter-pel offset
// lies inside it.
extern "C" __global__ void me_subpel_u8(
    const unsigned char* cur, const unsigned char* ref, int height, int width, int rows, int cols,
    int size, const int* vectors, const int* base_cost, const int* pred_q, int limit_q, int lam,
    int* out_q, int* out_cost) {
  extern __shared__ int smem_subpel[];
  __shared__ int best_rel[2];
  __shared__ int best_cost;
  const int b = blockIdx.x;
  const int per_frame = rows * cols;
  const long long plane = static_cast<long long>(height) * width;
  const unsigned char* cur_t = cur + (b / per_frame) * plane;
  const unsigned char* ref_t = ref + (b / per_frame) * plane;
  const int top = (b / cols) % rows * size;
  const int left = b % cols * size;
  const int vx = vectors[2 * b], vy = vectors[2 * b + 1];
  const int px = pred_q[2 * b], py = pred_q[2 * b + 1];
  const int side = size + 3;

  int* costs = smem_subpel;
  short* blk = reinterpret_cast<short*>(costs + 8);
  unsigned char* patch = reinterpret_cast<unsigned char*>(blk + size * size);

  load_support(cur_t, height, width, top, left, size, blk);
  load_tile(ref_t, height, width, top + vy - 1, left + vx - 1, side, patch);
  if (threadIdx.x == 0) {
    best_rel[0] = 0;
    best_rel[1] = 0;
    best_cost = base_cost[b];
  }
  __syncthreads();

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  for (int step = 2; step >= 1; --step) {
    // Warp k evaluates the k-th neighbour in raster order, skipping the centre.
    const int raster = warp < 4 ? warp : warp + 1;
    const int rx = best_rel[0] + step * (raster % 3 - 1);
    const int ry = best_rel[1] + step * (raster / 3 - 1);
    const int ox = floor_div4(rx), oy = floor_div4(ry);
    const int fx = rx - kQuarter * ox, fy = ry - kQuarter * oy;
    int sad = 0;
    for (int p = lane; p < size * size; p += 32) {
      const int c = blk[p];
      if (c < 0) continue;
      const int i = p / size, j = p % size;
      const unsigned char* a = patch + (1 + oy + i) * side + (1 + ox + j);
      const int upper = (4 - fx) * a[0] + fx * a[1];
      const int lower = (4 - fx) * a[side] + fx * a[side + 1];
      const int pred = ((4 - fy) * upper + fy * lower + 8) >> 4;
      sad += abs(c - pred);
    }
    sad = warp_sum(sad);
    if (lane == 0) {
      costs[warp] = sad + regulariser(kQuarter * vx + rx, kQuarter * vy + ry, px, py, limit_q, lam);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      int best = -1;
      int cost = best_cost;
      for (int k = 0; k < 8; ++k) {
        if (costs[k] < cost) {
          cost = costs[k];
          best = k;
        }
      }
      if (best >= 0) {
        const int r = best < 4 ? best : best + 1;
        best_rel[0] += step * (r % 3 - 1);
        best_rel[1] += step * (r / 3 - 1);
        best_cost = cost;
      }
    }
    __syncthreads();
  }

  if (threadIdx.x == 0) {
    out_q[2 * b] = kQuarter * vx + best_rel[0];
    out_q[2 * b + 1] = kQuarter * vy + best_rel[1];
    out_cost[b] = best_cost;
  }
}

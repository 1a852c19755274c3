// Per-patch saliency on the (T, Hg, Wg) grid: CUDA twin of codecprim.ops.saliency.
//
// Grid cell (r, c) covers coded pixels y in [rows[r], rows[r+1]), x in [cols[c], cols[c+1]) with
// rows[i] = (i * H) / Hg and cols[i] = (i * W) / Wg (integer division), the same borders as the CPU.
//
// residual_sums_*      exact uint64 sums of residual^2 per cell (bit-identical to the CPU twin). One
//                      block per (grid row, frame); 16-byte loads of 8 pixels (x8) where rows allow, and
//                      when a band is narrower than the block, threads take interleaved pixel rows, so
//                      every thread of the block streams.
// motion_sums_float32  sum(length * overlap) and sum(overlap) per cell. One block per frame, no global
//                      atomics: the frame's blocks are bucketed by the cell holding their top-left pixel
//                      (a counting sort in shared memory, each bucket then sorted by block index), and
//                      each cell sums only the buckets within a block's reach, in bucket (raster) order,
//                      then block order. The CPU twin adds in that same order (no FMA: --fmad=false), so
//                      the float sums agree to rounding of the per-block lengths torch computed on
//                      each device. Work is linear in the blocks, not cells x blocks.
// combine_saliency_float32  per-frame p-quantile normalisation of each channel (bitonic sort in
//                      shared memory, the CPU's interpolation formula), fusion, centre prior.

namespace {

// Column cell of pixel x: the c with cols[c] <= x < cols[c+1], cols[c] = (c * W) / Wg.
__device__ __forceinline__ int cell_of(int x, int length, int cells) {
  return static_cast<int>(((static_cast<long long>(x) + 1) * cells - 1) / length);
}

__device__ __forceinline__ short low_half(unsigned v) { return static_cast<short>(v & 0xffffu); }
__device__ __forceinline__ short high_half(unsigned v) { return static_cast<short>(v >> 16); }

// VEC consecutive pixels per thread; VEC = 4 / 8 reads them with one 8- / 16-byte load. A band has
// `groups` such columns; with fewer groups than threads, `slices` threads share a column, each taking
// every slices-th pixel row, so the whole block streams the band.
template <int VEC>
__device__ void residual_sums(const short* __restrict__ residual, const int* __restrict__ rows,
                              int height, int width, int wg, unsigned long long* __restrict__ sums) {
  extern __shared__ unsigned long long acc[];  // one accumulator per grid column of this band
  const int r = blockIdx.x;
  const int t = blockIdx.y;
  const int hg = gridDim.x;
  for (int c = threadIdx.x; c < wg; c += blockDim.x) acc[c] = 0ull;
  __syncthreads();
  const int y0 = rows[r], y1 = rows[r + 1];
  const short* frame = residual + static_cast<long long>(t) * height * width;
  const int groups = width / VEC;
  const int slices = groups >= static_cast<int>(blockDim.x) ? 1 : static_cast<int>(blockDim.x) / groups;
  for (int k = threadIdx.x; k < groups * slices; k += blockDim.x) {
    const int g = k % groups;
    unsigned long long local[VEC];
#pragma unroll
    for (int v = 0; v < VEC; ++v) local[v] = 0ull;
    for (int y = y0 + k / groups; y < y1; y += slices) {
      const short* row = frame + static_cast<long long>(y) * width + g * VEC;
      short px[VEC];
      if constexpr (VEC == 8) {
        const int4 packed = *reinterpret_cast<const int4*>(row);
        const unsigned words[4] = {static_cast<unsigned>(packed.x), static_cast<unsigned>(packed.y),
                                   static_cast<unsigned>(packed.z), static_cast<unsigned>(packed.w)};
#pragma unroll
        for (int w = 0; w < 4; ++w) {
          px[2 * w] = low_half(words[w]);
          px[2 * w + 1] = high_half(words[w]);
        }
      } else if constexpr (VEC == 4) {
        const uint2 packed = *reinterpret_cast<const uint2*>(row);
        px[0] = low_half(packed.x);
        px[1] = high_half(packed.x);
        px[2] = low_half(packed.y);
        px[3] = high_half(packed.y);
      } else {
        px[0] = row[0];
      }
#pragma unroll
      for (int v = 0; v < VEC; ++v) {
        const int p = px[v];
        local[v] += static_cast<unsigned long long>(p * p);  // p*p <= 2^30 fits in int
      }
    }
#pragma unroll
    for (int v = 0; v < VEC; ++v) atomicAdd(&acc[cell_of(g * VEC + v, width, wg)], local[v]);
  }
  __syncthreads();
  for (int c = threadIdx.x; c < wg; c += blockDim.x) {
    sums[(static_cast<long long>(t) * hg + r) * wg + c] = acc[c];
  }
}

__device__ __forceinline__ void bitonic_sort(float* buf, int n) {
  for (int k = 2; k <= n; k <<= 1) {
    for (int j = k >> 1; j > 0; j >>= 1) {
      for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const int partner = i ^ j;
        if (partner > i) {
          const bool ascending = (i & k) == 0;
          const float a = buf[i], b = buf[partner];
          if ((a > b) == ascending) {
            buf[i] = b;
            buf[partner] = a;
          }
        }
      }
      __syncthreads();
    }
  }
}

// Loads one frame's channel into shared memory (padding with +inf), sorts it and gives every
// thread the channel's floor (its noise quantile, or 0) and scale max(q - floor, reference).
__device__ void frame_scale(const float* values, float* buf, int p, int padded, int lo, int hi, float frac,
                            bool has_noise, int nlo, int nhi, float nfrac, float reference,
                            float* floor_out, float* scale_out) {
  const float inf = __int_as_float(0x7f800000);
  for (int i = threadIdx.x; i < padded; i += blockDim.x) buf[i] = i < p ? values[i] : inf;
  __syncthreads();
  bitonic_sort(buf, padded);
  float level = 0.0f;
  if (has_noise) level = buf[nlo] + nfrac * (buf[nhi] - buf[nlo]);
  const float q = buf[lo] + frac * (buf[hi] - buf[lo]);
  __syncthreads();  // buf is reused by the caller
  *floor_out = level;
  *scale_out = fmaxf(q - level, reference);
}

}  // namespace

// Launch: grid (Hg, T), any block size, dynamic shared memory Wg * 8 bytes.
extern "C" __global__ void residual_sums_int16(const short* residual, const int* rows, int height,
                                               int width, int wg, unsigned long long* sums) {
  residual_sums<1>(residual, rows, height, width, wg, sums);
}

// Same contract; needs width % 4 == 0 and an 8-byte aligned residual pointer.
extern "C" __global__ void residual_sums_int16x4(const short* residual, const int* rows, int height,
                                                 int width, int wg, unsigned long long* sums) {
  residual_sums<4>(residual, rows, height, width, wg, sums);
}

// Same contract; needs width % 8 == 0 and a 16-byte aligned residual pointer.
extern "C" __global__ void residual_sums_int16x8(const short* residual, const int* rows, int height,
                                                 int width, int wg, unsigned long long* sums) {
  residual_sums<8>(residual, rows, height, width, wg, sums);
}

// Launch: grid (T), any block size up to 1024, dynamic shared memory Hg * Wg * 4 bytes. rects (M, 4)
// int32 x0, y0, x1, y1 (clipped), offsets (T + 1) int32: frame t owns rows [offsets[t], offsets[t+1]);
// order (M,) int32 scratch (frame t's blocks bucketed in its slice).
extern "C" __global__ void motion_sums_float32(const int* rects, const int* offsets, const float* length,
                                               const int* rows, const int* cols, int height, int width,
                                               int hg, int wg, int* order, float* sum_v, long long* sum_a) {
  extern __shared__ int bucket_end[];  // per cell: blocks counted, then first slot, then one past the last
  __shared__ int partial[1024];
  __shared__ int reach[2];             // the most cell rows / columns a block extends past its first
  const int t = blockIdx.x;
  const int cells = hg * wg;
  const int base = offsets[t];
  const int n = offsets[t + 1] - base;
  const int4* frame_rects = reinterpret_cast<const int4*>(rects) + base;
  int* frame_order = order + base;
  for (int c = threadIdx.x; c < cells; c += blockDim.x) bucket_end[c] = 0;
  if (threadIdx.x == 0) reach[0] = reach[1] = 0;
  __syncthreads();
  // 1. count the blocks of each bucket (the cell of a block's top-left pixel); empty blocks cover nothing
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    const int4 b = frame_rects[i];
    if (b.z <= b.x || b.w <= b.y) continue;
    const int cy = cell_of(b.y, height, hg), cx = cell_of(b.x, width, wg);
    atomicAdd(&bucket_end[cy * wg + cx], 1);
    atomicMax(&reach[0], cell_of(b.w - 1, height, hg) - cy);
    atomicMax(&reach[1], cell_of(b.z - 1, width, wg) - cx);
  }
  __syncthreads();
  // 2. exclusive scan: each thread a contiguous run of buckets, one thread over the runs' totals
  const int run = (cells + blockDim.x - 1) / blockDim.x;
  const int first = min(cells, static_cast<int>(threadIdx.x) * run), last = min(cells, first + run);
  int total = 0;
  for (int c = first; c < last; ++c) total += bucket_end[c];
  partial[threadIdx.x] = total;
  __syncthreads();
  if (threadIdx.x == 0) {
    int sum = 0;
    for (int k = 0; k < static_cast<int>(blockDim.x); ++k) {
      const int here = partial[k];
      partial[k] = sum;
      sum += here;
    }
  }
  __syncthreads();
  for (int c = first, sum = partial[threadIdx.x]; c < last; ++c) {
    const int here = bucket_end[c];
    bucket_end[c] = sum;
    sum += here;
  }
  __syncthreads();
  // 3. fill the buckets (slots taken in any order) ...
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    const int4 b = frame_rects[i];
    if (b.z <= b.x || b.w <= b.y) continue;
    frame_order[atomicAdd(&bucket_end[cell_of(b.y, height, hg) * wg + cell_of(b.x, width, wg)], 1)] = i;
  }
  __syncthreads();
  // ... then put each bucket in block order (buckets hold a few blocks: insertion sort)
  for (int c = threadIdx.x; c < cells; c += blockDim.x) {
    const int start = c ? bucket_end[c - 1] : 0;
    for (int j = start + 1; j < bucket_end[c]; ++j) {
      const int value = frame_order[j];
      int k = j - 1;
      for (; k >= start && frame_order[k] > value; --k) frame_order[k + 1] = frame_order[k];
      frame_order[k + 1] = value;
    }
  }
  __syncthreads();
  // 4. every cell sums the buckets a block reaching it can start in, in raster order
  const int reach_y = reach[0], reach_x = reach[1];
  for (int cell = threadIdx.x; cell < cells; cell += blockDim.x) {
    const int cr = cell / wg, cc = cell % wg;
    const int cx0 = cols[cc], cx1 = cols[cc + 1], cy0 = rows[cr], cy1 = rows[cr + 1];
    float sv = 0.0f;
    long long sa = 0;
    for (int br = max(0, cr - reach_y); br <= cr; ++br) {
      for (int bc = max(0, cc - reach_x); bc <= cc; ++bc) {
        const int bucket = br * wg + bc;
        for (int j = bucket ? bucket_end[bucket - 1] : 0; j < bucket_end[bucket]; ++j) {
          const int i = frame_order[j];
          const int4 b = frame_rects[i];
          const int ox = min(b.z, cx1) - max(b.x, cx0);
          const int oy = min(b.w, cy1) - max(b.y, cy0);
          if (ox > 0 && oy > 0) {
            const int ov = ox * oy;
            sv = sv + length[base + i] * static_cast<float>(ov);
            sa += ov;
          }
        }
      }
    }
    const long long out = static_cast<long long>(t) * cells + cell;
    sum_v[out] = sv;
    sum_a[out] = sa;
  }
}

// Launch: grid (T), block min(1024, padded) threads, dynamic shared memory padded * 4 bytes.
// Quantile q of a frame = s[lo] + frac * (s[hi] - s[lo]) over its sorted values (noise: nlo, nhi,
// nfrac, residual channel only when has_noise). Normalised x = max(x - floor, 0) / scale.
// mode 0: weighted sum wm * m + wr * r ("mean" / "weighted"); 1: max(m, r); 2: motion only.
extern "C" __global__ void combine_saliency_float32(const float* motion, const float* residual,
                                                    const unsigned char* is_iframe, const float* prior,
                                                    int p, int padded, int lo, int hi, float frac,
                                                    int has_noise, int nlo, int nhi, float nfrac,
                                                    float motion_ref, float residual_ref, float wm, float wr,
                                                    int mode, float* out) {
  extern __shared__ float buf[];
  const int t = blockIdx.x;
  const long long base = static_cast<long long>(t) * p;
  if (is_iframe[t]) {
    for (int i = threadIdx.x; i < p; i += blockDim.x) out[base + i] = 0.0f;
    return;
  }
  float mfloor, mscale, rfloor = 0.0f, rscale = 1.0f;
  frame_scale(motion + base, buf, p, padded, lo, hi, frac, false, 0, 0, 0.0f, motion_ref, &mfloor, &mscale);
  if (mode != 2) {
    frame_scale(residual + base, buf, p, padded, lo, hi, frac, has_noise != 0, nlo, nhi, nfrac, residual_ref,
                &rfloor, &rscale);
  }
  for (int i = threadIdx.x; i < p; i += blockDim.x) {
    const float m = fmaxf(motion[base + i] - mfloor, 0.0f) / mscale;
    float fused;
    if (mode == 2) {
      fused = m;
    } else {
      const float r = fmaxf(residual[base + i] - rfloor, 0.0f) / rscale;
      fused = mode == 1 ? fmaxf(m, r) : wm * m + wr * r;
    }
    out[base + i] = fused * prior[i];
  }
}

// Top-k selection: CUDA twins of codecprim.ops.select.topk_sorted and, fused, select_patches.
//
// keys: (S, L) int64, non-negative and unique within a segment (codecprim.ops.select builds them
// so). For each segment s, the k[s] largest keys are found with an 8-pass MSB radix select (one
// 256-bin histogram per byte, restricted to the keys that share the bytes fixed so far), which
// yields the exact k-th largest key tau. The flat indices s * L + i of the keys >= tau are then
// compacted in index order, so each segment's output is sorted ascending, like the CPU twin.
//
// select_patches_float32 is the whole of select_patches for one clip in one launch: anchors, the
// selection keys of ops.select.selection_keys (tiers, saliency bits, the ordered-dither fallback in
// golden-ratio frame order) and the top-k above, writing the Selection's fields directly.

namespace {

constexpr int kMaxWarps = 32;
constexpr int kIndexBits = 30;       // ops.select._INDEX_BITS
constexpr int kTierShift = 61;       // ops.select._TIER_SHIFT
constexpr long long kGolden = 2654435769ll;  // round(2**32 * 0.6180339887)

// The `want` largest of the `length` keys of `seg`, handed to emit(position, i) in ascending i
// (position 0 .. want-1). Every thread of the block calls it; blockDim.x a multiple of 32 (<= 1024).
template <typename Emit>
__device__ void select_largest(const unsigned long long* seg, long long length, long long want, Emit emit) {
  __shared__ unsigned int hist[256];
  __shared__ unsigned long long prefix_shared;
  __shared__ long long remaining_shared;
  __shared__ unsigned int warp_counts[kMaxWarps];
  __shared__ long long chunk_base;
  if (want <= 0) return;

  // 1. exact k-th largest key (every key qualifies when k >= L: threshold 0)
  unsigned long long threshold = 0ull;
  if (want < length) {
    if (threadIdx.x == 0) {
      prefix_shared = 0ull;
      remaining_shared = want;
    }
    unsigned long long mask = 0ull;
    for (int shift = 56; shift >= 0; shift -= 8) {
      for (int b = threadIdx.x; b < 256; b += blockDim.x) hist[b] = 0u;
      __syncthreads();
      const unsigned long long prefix = prefix_shared;
      for (long long i = threadIdx.x; i < length; i += blockDim.x) {
        const unsigned long long key = seg[i];
        if ((key & mask) == prefix) atomicAdd(&hist[(key >> shift) & 0xffull], 1u);
      }
      __syncthreads();
      if (threadIdx.x == 0) {
        long long remaining = remaining_shared;
        int digit = 255;
        for (; digit > 0; --digit) {
          if (static_cast<long long>(hist[digit]) >= remaining) break;
          remaining -= hist[digit];
        }
        prefix_shared = prefix | (static_cast<unsigned long long>(digit) << shift);
        remaining_shared = remaining;
      }
      mask |= 0xffull << shift;
      __syncthreads();
    }
    threshold = prefix_shared;
  }

  // 2. ordered compaction of keys >= threshold, one blockDim-sized chunk at a time
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const int warps = (blockDim.x + 31) >> 5;
  if (threadIdx.x == 0) chunk_base = 0;
  __syncthreads();
  for (long long start = 0; start < length; start += blockDim.x) {
    const long long i = start + threadIdx.x;
    const bool take = i < length && seg[i] >= threshold;
    const unsigned int ballot = __ballot_sync(0xffffffffu, take);
    if (lane == 0) warp_counts[warp] = __popc(ballot);
    __syncthreads();
    long long pos = chunk_base + __popc(ballot & ((1u << lane) - 1u));
    for (int w = 0; w < warp; ++w) pos += warp_counts[w];
    // with unique keys exactly `want` pass; the guard keeps malformed input in bounds
    if (take && pos < want) emit(pos, i);
    __syncthreads();
    if (threadIdx.x == 0) {
      long long total = 0;
      for (int w = 0; w < warps; ++w) total += warp_counts[w];
      chunk_base += total;
    }
    __syncthreads();
  }
}

// ops.select.bayer_value: ordered-dither rank of (y, x) in a 2**bits square.
__device__ __forceinline__ long long bayer_value(long long y, long long x, int bits) {
  long long value = 0;
  for (int i = 0; i < bits; ++i) {
    const long long by = (y >> i) & 1, bx = (x >> i) & 1;
    value |= (((bx ^ by) << 1) | by) << (2 * (bits - 1 - i));
  }
  return value;
}

}  // namespace

// Launch: grid (S), block of a multiple of 32 threads (<= 1024); no dynamic shared memory.
// out[offsets[s] .. offsets[s] + k[s]) receives segment s.
extern "C" __global__ void topk_select_int64(const long long* keys, long long length, const long long* k,
                                             const long long* offsets, long long* out) {
  const int s = blockIdx.x;
  const long long base = static_cast<long long>(s) * length;
  long long* dst = out + offsets[s];
  select_largest(reinterpret_cast<const unsigned long long*>(keys) + base, length, k[s],
                 [&](long long pos, long long i) { dst[pos] = base + i; });
}

// Launch: grid (1), block of a multiple of 32 threads (<= 1024); no dynamic shared memory.
// saliency (T, P0) float32 on a grid of `wg` columns, is_iframe (T,) uint8. budget >= 0: one clip-wide
// top-`budget` (budget <= T * P0); budget < 0: ratio mode, `per_frame` patches per non-anchor frame.
// bits: the dither square's side is 2**bits >= Hg, Wg. Scratch: dither (T * P0) int32, keys (T * P0) int64,
// frame_k (T + 1) int64, frame_rank (T) int32, still_rank (T * 4**bits) int32. Outputs: visible (K) int64 ascending, positions (K, 3) int64, tier (K) int8,
// anchor (T) uint8, with K = budget or sum over frames of (anchor ? P0 : per_frame).
extern "C" __global__ void select_patches_float32(const float* saliency, const unsigned char* is_iframe, int t,
                                                  int p0, int wg, long long budget, int per_frame, float floor,
                                                  int bits, int* dither, long long* keys, long long* frame_k,
                                                  int* frame_rank, int* still_rank, long long* visible, long long* positions, signed char* tier,
                                                  unsigned char* anchor) {
  const long long cells = static_cast<long long>(t) * p0;
  const long long low_top = (1ll << kIndexBits) - 1;
  // 1. anchors (ops.select.anchor_frames): every I-frame, or budget // P0 of them spread evenly
  if (threadIdx.x == 0) {
    int n_iframes = 0;
    for (int f = 0; f < t; ++f) n_iframes += is_iframe[f] != 0;
    const long long room = budget < 0 ? n_iframes : budget / p0;
    const int n = static_cast<int>(room < n_iframes ? room : n_iframes);
    int j = 0, rank = 0;
    for (int f = 0; f < t; ++f) {
      anchor[f] = 0;
      if (!is_iframe[f]) continue;
      // the j-th anchor is I-frame number floor(j * nI / n)
      if (j < n && static_cast<long long>(j) * n_iframes / n == rank) {
        anchor[f] = 1;
        ++j;
      }
      ++rank;
    }
    // output slots per frame (ratio mode) as offsets
    frame_k[0] = 0;
    for (int f = 0; f < t; ++f) frame_k[f + 1] = frame_k[f] + (anchor[f] ? p0 : per_frame);
  }
  // each frame's rank in golden-ratio order (ops.select._frame_order; the phases are distinct)
  for (int frame = threadIdx.x; frame < t; frame += blockDim.x) {
    const long long phase = (static_cast<long long>(frame) * kGolden) & 0xffffffffll;
    int rank = 0;
    for (int u = 0; u < t; ++u) rank += ((static_cast<long long>(u) * kGolden) & 0xffffffffll) < phase;
    frame_rank[frame] = rank;
  }
  __syncthreads();
  const int side = 1 << bits;
  const long long square = static_cast<long long>(side) * side;
  for (long long i = threadIdx.x; i < t * square; i += blockDim.x) still_rank[i] = 0;
  __syncthreads();
  // 2. per cell: salient or not, and the dither value of the still cells the fallback orders

  for (long long f = threadIdx.x; f < cells; f += blockDim.x) {
    const int frame = static_cast<int>(f / p0), cell = static_cast<int>(f % p0);
    float s = saliency[f];
    if (!(s >= 0.0f)) s = 0.0f;  // NaN and negatives count as 0 (torch.nan_to_num, clamp)
    const bool salient = s >= floor && !anchor[frame];
    long long sy = 0, sx = 0;
    for (int i = 0; i < bits; ++i) {  // ops.select._dither_shift
      const long long digit = (static_cast<long long>(frame) >> (2 * i)) & 3, by = digit & 1;
      sy |= by << i;
      sx |= (((digit >> 1) ^ by) & 1) << i;
    }
    const long long value = bayer_value((cell / wg + sy) % side, (cell % wg + sx) % side, bits);
    const bool still = !salient && !anchor[frame];
    dither[f] = still ? static_cast<int>(value) : -1;
    if (still) still_rank[frame * square + value] = 1;  // dither values are distinct within a frame
  }
  __syncthreads();
  // a still cell's rank among its frame's still cells in dither order: an exclusive scan of the frame's marks
  for (int frame = threadIdx.x; frame < t; frame += blockDim.x) {
    int* marks = still_rank + frame * square;
    int count = 0;
    for (long long v = 0; v < square; ++v) {
      const int here = marks[v];
      marks[v] = count;
      count += here;
    }
  }
  __syncthreads();
  // 3. the keys of ops.select.selection_keys
  for (long long f = threadIdx.x; f < cells; f += blockDim.x) {
    const int frame = static_cast<int>(f / p0);
    const long long low = low_top - f;
    long long key;
    if (anchor[frame]) {
      key = low | (2ll << kTierShift);
    } else if (dither[f] < 0) {  // salient: its float bits order it (s >= 0)
      float s = saliency[f];
      if (!(s >= 0.0f)) s = 0.0f;
      if (s > 3.402823466e38f) s = 3.402823466e38f;  // +inf counts as float32 max
      const long long bits_of_s = __float_as_int(s);
      key = (bits_of_s << kIndexBits) | low | (1ll << kTierShift);
    } else {
      // rank among the frame's still cells in dither order, then the frame's golden-ratio rank
      const long long rank = still_rank[frame * square + dither[f]];
      key = ((((1ll << 31) - 1) - rank) << kIndexBits) | (low_top - frame_rank[frame]);
    }
    keys[f] = key;
  }
  __syncthreads();
  // 4. top-k, written as the Selection's fields
  const unsigned long long* all = reinterpret_cast<const unsigned long long*>(keys);
  const auto emit_at = [&](long long out_base, long long base) {
    return [=](long long pos, long long i) {
      const long long f = base + i, slot = out_base + pos;
      visible[slot] = f;
      positions[3 * slot] = f / p0;
      positions[3 * slot + 1] = (f % p0) / wg;
      positions[3 * slot + 2] = f % wg;
      tier[slot] = static_cast<signed char>(keys[f] >> kTierShift);
    };
  };
  if (budget >= 0) {
    select_largest(all, cells, budget, emit_at(0, 0));
  } else {
    for (int frame = 0; frame < t; ++frame) {
      const long long base = static_cast<long long>(frame) * p0;
      select_largest(all + base, p0, frame_k[frame + 1] - frame_k[frame], emit_at(frame_k[frame], base));
    }
  }
}

// Saliency + top-K selection kernels on a batch of synthetic clips: the GPU half of bench/ops_select.py
// as a standalone nvcc program (no Python, torch or CuPy).
//
// The kernels are cuda/saliency.cu and cuda/topk_select.cu themselves, included below (not copied), and
// are launched with the grid, block, arguments and shared memory that python/codecprim/ops/saliency.py
// and ops/select.py give them. B clips of 64 frames (640x360 coded, 16x16 patch grid, I-frames at t = 0
// and t = 32, K = 2048) run as one clip of B*64 frames (B segments for the top-K), as ops_select does.
// The steps between kernels that torch does in the package (RMS, motion means, selection keys) are done
// here on the host, once.
//
// Check first: every clip of the batch (all copies of one synthetic clip) against a host reference of
// that clip. Integers exactly (residual sums, overlap areas, selected indices), floats within 1e-5
// (relative; absolute below 1): built with --fmad=false, as CuPy builds them, they normally agree exactly.
// The selection reference is the documented order, not the keys: anchor frames whole, then saliency
// descending, then flat index ascending; the synthetic clip has many equal saliencies, so the tie-break
// decides. (The host steps and references were checked bit for bit against the package's CPU twins.)
//
// Then time: 3 warm-up launches, then N launches, each alone between two cudaEvents, with the L2 cache
// flushed before each (otherwise the small grids and keys would be read from L2). Median and best.
// Bytes moved: every input read once and every output written once (compulsory DRAM traffic; re-reads
// served by caches are not counted). Peak bandwidth: 2 x memory clock x bus width, from
// cudaDevAttrMemoryClockRate and cudaDevAttrGlobalMemoryBusWidth (CUDA 13 removed
// cudaDeviceProp::memoryClockRate; the attributes remain).
//
// Build: nvcc -std=c++17 -O3 -arch=sm_90 --fmad=false bench/cuda/bench_select.cu -o build/bench_select
//        (or the CMake target bench_select, configured with -DCODECPRIM_CUDA_CHECK=ON)
// Usage: bench_select [--batch B] [--repeats N]          (defaults: 64 clips, 50 timed launches)
// Exit:  0 checked and timed, 1 a result differs from the host reference, 2 no CUDA device,
//        3 a CUDA call failed, 64 bad arguments.
#include <cuda_runtime.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "../../cuda/saliency.cu"
#include "../../cuda/topk_select.cu"

namespace {

// Clip shape and selection: the package defaults (ops/select.py, ops/saliency.py SaliencyConfig).
constexpr int kFrames = 64, kHeight = 360, kWidth = 640, kGop = 32;
constexpr int kGridH = 16, kGridW = 16, kCells = kGridH * kGridW;
constexpr int kBudget = 2048;                    // K, anchors included
constexpr float kFloor = 0.5f;                   // select_patches(floor=0.5)
constexpr double kPercentile = 0.95, kNoisePercentile = 0.25;
constexpr float kMotionReference = 0.5f, kResidualReference = 12.0f;
constexpr double kCentrePrior = 0.0, kCentreSigma = 0.5;
constexpr float kMotionWeight = 0.5f, kResidualWeight = 0.5f;  // fusion "mean"
// Synthetic content: 16x16 blocks; an object (fast, strong checkerboard residual) on a slow, grainy
// background. The object covers grid rows and columns 4..11 exactly, so its inner cells tie.
constexpr int kBlock = 16;
constexpr int kObjectY0 = 90, kObjectY1 = 270, kObjectX0 = 160, kObjectX1 = 480;
// selection_keys' bit layout (ops/select.py)
constexpr int kIndexBits = 30, kTierShift = 61;
constexpr long long kGolden = 2654435769LL, kMask32 = (1LL << 32) - 1;
constexpr int kThreads = 256;                    // the ops' block size for the saliency kernels

constexpr int kExitMismatch = 1, kExitNoDevice = 2, kExitCuda = 3, kExitUsage = 64;

void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) {
    std::fprintf(stderr, "bench_select: %s failed: %s\n", what, cudaGetErrorString(err));
    std::exit(kExitCuda);
  }
}

// A device array that frees itself.
template <typename T>
class DeviceArray {
 public:
  explicit DeviceArray(size_t count) : count_(count) {
    check(cudaMalloc(reinterpret_cast<void**>(&ptr_), bytes()), "cudaMalloc");
  }
  ~DeviceArray() { cudaFree(ptr_); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  T* get() const { return ptr_; }
  size_t bytes() const { return count_ * sizeof(T); }

  void upload(const std::vector<T>& host) {
    check(cudaMemcpy(ptr_, host.data(), bytes(), cudaMemcpyHostToDevice), "cudaMemcpy to device");
  }
  // `copies` back-to-back copies of `clip` (one upload, then device-to-device copies).
  void upload_repeated(const std::vector<T>& clip, int copies) {
    const size_t n = clip.size();
    check(cudaMemcpy(ptr_, clip.data(), n * sizeof(T), cudaMemcpyHostToDevice), "cudaMemcpy to device");
    for (int i = 1; i < copies; ++i) {
      check(cudaMemcpy(ptr_ + i * n, ptr_, n * sizeof(T), cudaMemcpyDeviceToDevice), "cudaMemcpy on device");
    }
  }
  std::vector<T> download() const {
    std::vector<T> host(count_);
    check(cudaMemcpy(host.data(), ptr_, bytes(), cudaMemcpyDeviceToHost), "cudaMemcpy to host");
    return host;
  }

 private:
  T* ptr_ = nullptr;
  size_t count_;
};

// ---------------------------------------------------------------------------------------------
// the synthetic clip and the host references

struct Clip {
  std::vector<short> residual;           // (T, H, W) coded residual
  std::vector<int> rects;                // (M, 4) x0, y0, x1, y1 of each block, clipped to the frame
  std::vector<int> offsets;              // (T + 1) frame t owns blocks [offsets[t], offsets[t+1])
  std::vector<float> length;             // (M,) camera-compensated motion length, model pixels
  std::vector<unsigned char> is_iframe;  // (T,)
};

bool in_object(int y, int x) { return y >= kObjectY0 && y < kObjectY1 && x >= kObjectX0 && x < kObjectX1; }

Clip make_clip() {
  Clip clip;
  clip.residual.resize(static_cast<size_t>(kFrames) * kHeight * kWidth);
  unsigned int state = 12345u;  // LCG: the background grain, uniform in [-6, 6]
  size_t i = 0;
  for (int t = 0; t < kFrames; ++t) {
    for (int y = 0; y < kHeight; ++y) {
      for (int x = 0; x < kWidth; ++x, ++i) {
        state = state * 1664525u + 1013904223u;
        const int grain = static_cast<int>((state >> 16) % 13u) - 6;
        clip.residual[i] = static_cast<short>(in_object(y, x) ? ((x + y) % 2 ? 48 : -48) : grain);
      }
    }
  }
  clip.offsets.push_back(0);
  for (int t = 0; t < kFrames; ++t) {
    clip.is_iframe.push_back(t % kGop == 0);
    if (!clip.is_iframe.back()) {  // I-frames carry no vectors
      for (int by = 0; by * kBlock < kHeight; ++by) {
        for (int bx = 0; bx * kBlock < kWidth; ++bx) {
          const int x0 = bx * kBlock, y0 = by * kBlock;
          clip.rects.insert(clip.rects.end(),
                            {x0, y0, std::min(x0 + kBlock, kWidth), std::min(y0 + kBlock, kHeight)});
          const bool object = in_object(y0 + kBlock / 2, x0 + kBlock / 2);
          clip.length.push_back(object ? 3.0f : 0.25f + 0.05f * static_cast<float>((bx + 3 * by + t) % 5));
        }
      }
    }
    clip.offsets.push_back(static_cast<int>(clip.length.size()));
  }
  return clip;
}

// Cell borders (i * length) / cells, as ops.saliency.cell_bounds.
std::vector<int> cell_bounds(int length, int cells) {
  std::vector<int> bounds(cells + 1);
  for (int i = 0; i <= cells; ++i) bounds[i] = i * length / cells;
  return bounds;
}

// Cell of every pixel along an axis.
std::vector<int> cell_of_pixel(const std::vector<int>& bounds) {
  std::vector<int> cell(bounds.back());
  for (size_t c = 0; c + 1 < bounds.size(); ++c) {
    for (int x = bounds[c]; x < bounds[c + 1]; ++x) cell[x] = static_cast<int>(c);
  }
  return cell;
}

std::vector<unsigned long long> residual_sums_reference(const Clip& clip, const std::vector<int>& rows,
                                                        const std::vector<int>& cols) {
  const std::vector<int> row_of = cell_of_pixel(rows), col_of = cell_of_pixel(cols);
  std::vector<unsigned long long> sums(static_cast<size_t>(kFrames) * kCells, 0ull);
  size_t i = 0;
  for (int t = 0; t < kFrames; ++t) {
    for (int y = 0; y < kHeight; ++y) {
      unsigned long long* band = sums.data() + (static_cast<size_t>(t) * kGridH + row_of[y]) * kGridW;
      for (int x = 0; x < kWidth; ++x, ++i) {
        const long long p = clip.residual[i];
        band[col_of[x]] += static_cast<unsigned long long>(p * p);
      }
    }
  }
  return sums;
}

// sum(length * overlap) and sum(overlap) per cell, each block scattered onto the cells it overlaps,
// blocks in order (the order ops.saliency's CPU twin adds them in).
void motion_sums_reference(const Clip& clip, const std::vector<int>& rows, const std::vector<int>& cols,
                           std::vector<float>& sum_v, std::vector<long long>& sum_a) {
  sum_v.assign(static_cast<size_t>(kFrames) * kCells, 0.0f);
  sum_a.assign(sum_v.size(), 0);
  for (int t = 0; t < kFrames; ++t) {
    for (int i = clip.offsets[t]; i < clip.offsets[t + 1]; ++i) {
      const int* b = &clip.rects[static_cast<size_t>(i) * 4];
      for (int r = 0; r < kGridH; ++r) {
        const int oy = std::min(b[3], rows[r + 1]) - std::max(b[1], rows[r]);
        for (int c = 0; c < kGridW && oy > 0; ++c) {
          const int ox = std::min(b[2], cols[c + 1]) - std::max(b[0], cols[c]);
          if (ox <= 0) continue;
          const size_t cell = static_cast<size_t>(t) * kCells + r * kGridW + c;
          sum_v[cell] = sum_v[cell] + clip.length[i] * static_cast<float>(ox * oy);
          sum_a[cell] += ox * oy;
        }
      }
    }
  }
}

// Arguments of combine_saliency_float32, as ops.saliency._combine_cuda derives them.
struct CombineArgs {
  int p, padded, lo, hi;
  float frac;
  int has_noise, nlo, nhi;
  float nfrac, motion_ref, residual_ref, wm, wr;
  int mode;
};

void quantile_position(int p, double q, int* lo, int* hi, float* frac) {
  const double pos = q * (p - 1);
  *lo = static_cast<int>(std::floor(pos));
  *hi = std::min(*lo + 1, p - 1);
  *frac = static_cast<float>(pos - *lo);
}

CombineArgs combine_args() {
  CombineArgs a{};
  a.p = kCells;
  a.padded = 1;
  while (a.padded < a.p) a.padded <<= 1;
  quantile_position(a.p, kPercentile, &a.lo, &a.hi, &a.frac);
  a.has_noise = 1;
  quantile_position(a.p, kNoisePercentile, &a.nlo, &a.nhi, &a.nfrac);
  a.motion_ref = kMotionReference;
  a.residual_ref = kResidualReference;
  a.wm = kMotionWeight;
  a.wr = kResidualWeight;
  a.mode = 0;  // weighted sum: fusion "mean" with a residual channel
  return a;
}

// ops.saliency.centre_prior, in float64 then rounded, as there.
std::vector<float> centre_prior() {
  std::vector<float> prior(kCells);
  for (int r = 0; r < kGridH; ++r) {
    for (int c = 0; c < kGridW; ++c) {
      const double y = (r + 0.5) / (kGridH / 2.0) - 1.0, x = (c + 0.5) / (kGridW / 2.0) - 1.0;
      const double d2 = y * y + x * x;
      prior[r * kGridW + c] =
          static_cast<float>((1.0 - kCentrePrior) + kCentrePrior * std::exp(-d2 / (2.0 * kCentreSigma * kCentreSigma)));
    }
  }
  return prior;
}

// Per-frame normalisation of one channel: max(x - floor, 0) / max(q - floor, reference), float32.
void normalise_frame(const float* x, const CombineArgs& a, bool noise, float reference, float* out) {
  std::vector<float> s(x, x + a.p);
  std::sort(s.begin(), s.end());
  const float floor = noise ? s[a.nlo] + a.nfrac * (s[a.nhi] - s[a.nlo]) : 0.0f;
  const float q = s[a.lo] + a.frac * (s[a.hi] - s[a.lo]);
  const float scale = std::max(q - floor, reference);
  for (int i = 0; i < a.p; ++i) out[i] = std::max(x[i] - floor, 0.0f) / scale;
}

std::vector<float> combine_reference(const std::vector<float>& motion, const std::vector<float>& residual,
                                     const std::vector<unsigned char>& is_iframe, const std::vector<float>& prior,
                                     const CombineArgs& a) {
  std::vector<float> out(motion.size(), 0.0f), m(a.p), r(a.p);
  for (size_t t = 0; t < is_iframe.size(); ++t) {
    if (is_iframe[t]) continue;
    normalise_frame(&motion[t * a.p], a, false, a.motion_ref, m.data());
    normalise_frame(&residual[t * a.p], a, a.has_noise != 0, a.residual_ref, r.data());
    for (int i = 0; i < a.p; ++i) out[t * a.p + i] = (a.wm * m[i] + a.wr * r[i]) * prior[i];
  }
  return out;
}

// ops.select.anchor_frames in budget mode: K // P0 of the I-frames, spread evenly.
std::vector<unsigned char> anchor_frames(const std::vector<unsigned char>& is_iframe) {
  std::vector<int> iframes;
  for (size_t t = 0; t < is_iframe.size(); ++t) {
    if (is_iframe[t]) iframes.push_back(static_cast<int>(t));
  }
  const int n = std::min(static_cast<int>(iframes.size()), kBudget / kCells);
  std::vector<unsigned char> anchor(is_iframe.size(), 0);
  for (int j = 0; j < n; ++j) anchor[iframes[j * static_cast<int>(iframes.size()) / n]] = 1;
  return anchor;
}

long long bayer_value(long long y, long long x, int bits) {
  long long value = 0;
  for (int i = 0; i < bits; ++i) {
    const long long by = (y >> i) & 1, bx = (x >> i) & 1;
    value |= (((bx ^ by) << 1) | by) << (2 * (bits - 1 - i));
  }
  return value;
}

// Host port of ops.select.selection_keys: the keys the package hands topk_select_int64.
std::vector<long long> selection_keys(const std::vector<float>& saliency, const std::vector<unsigned char>& anchor) {
  int bits = 1;
  while ((1 << bits) < std::max(kGridH, kGridW)) ++bits;
  const long long side = 1LL << bits;
  std::vector<int> frames(kFrames), frame_rank(kFrames);  // golden-ratio order of the frames
  std::iota(frames.begin(), frames.end(), 0);
  const auto phase = [](int t) { return (t * kGolden) & kMask32; };
  std::sort(frames.begin(), frames.end(), [&](int a, int b) { return phase(a) < phase(b); });
  for (int i = 0; i < kFrames; ++i) frame_rank[frames[i]] = i;

  std::vector<long long> keys(saliency.size());
  std::vector<long long> order_key(kCells);
  std::vector<int> order(kCells), rank(kCells);
  for (int t = 0; t < kFrames; ++t) {
    long long sy = 0, sx = 0;  // this frame's dither shift: base-4 digits of t
    for (int i = 0; i < bits; ++i) {
      const long long digit = (t >> (2 * i)) & 3, by = digit & 1;
      sy |= by << i;
      sx |= (((digit >> 1) ^ by) & 1) << i;
    }
    const float* s = &saliency[static_cast<size_t>(t) * kCells];
    for (int cell = 0; cell < kCells; ++cell) {
      const bool taken = anchor[t] || s[cell] >= kFloor;
      const long long dither = bayer_value((cell / kGridW + sy) % side, (cell % kGridW + sx) % side, bits);
      order_key[cell] = (static_cast<long long>(taken) << 61) | dither;
    }
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int a, int b) { return order_key[a] < order_key[b]; });
    for (int i = 0; i < kCells; ++i) rank[order[i]] = i;
    for (int cell = 0; cell < kCells; ++cell) {
      const long long flat = static_cast<long long>(t) * kCells + cell;
      const long long low = (1LL << kIndexBits) - 1 - flat;
      const float v = std::isnan(s[cell]) ? 0.0f : std::min(std::max(s[cell], 0.0f), FLT_MAX);
      long long key;
      if (anchor[t]) {
        key = low | (2LL << kTierShift);
      } else if (v >= kFloor) {
        int bits32;
        std::memcpy(&bits32, &v, sizeof bits32);
        key = (static_cast<long long>(bits32) << kIndexBits) | low | (1LL << kTierShift);
      } else {
        key = ((((1LL << 31) - 1) - rank[cell]) << kIndexBits) | ((1LL << kIndexBits) - 1 - frame_rank[t]);
      }
      keys[flat] = key;
    }
  }
  return keys;
}

// The documented selection, from the saliency (not the keys): anchor frames whole, then the salient
// patches by saliency descending, then flat index ascending; sorted ascending. Needs enough salient
// patches to fill K (the still-content fallback is not modelled here); returns {} otherwise.
std::vector<long long> selection_reference(const std::vector<float>& saliency, const std::vector<unsigned char>& anchor,
                                           int* ties_at_cut) {
  std::vector<long long> chosen, salient;
  for (int t = 0; t < kFrames; ++t) {
    for (int cell = 0; cell < kCells; ++cell) {
      const long long flat = static_cast<long long>(t) * kCells + cell;
      if (anchor[t]) {
        chosen.push_back(flat);
      } else if (saliency[flat] >= kFloor) {
        salient.push_back(flat);
      }
    }
  }
  const size_t need = kBudget - chosen.size();
  if (salient.size() < need) return {};
  std::sort(salient.begin(), salient.end(), [&](long long a, long long b) {
    return saliency[a] != saliency[b] ? saliency[a] > saliency[b] : a < b;
  });
  const float cut = saliency[salient[need - 1]];
  *ties_at_cut = static_cast<int>(
      std::count_if(salient.begin(), salient.end(), [&](long long i) { return saliency[i] == cut; }));
  chosen.insert(chosen.end(), salient.begin(), salient.begin() + need);
  std::sort(chosen.begin(), chosen.end());
  return chosen;
}

// ---------------------------------------------------------------------------------------------
// checking and timing

// Number of entries of the batch output that differ from `clip` (every clip a copy of it).
template <typename T>
size_t count_different(const std::vector<T>& batch, const std::vector<T>& clip) {
  size_t n = 0;
  for (size_t i = 0; i < batch.size(); ++i) n += batch[i] != clip[i % clip.size()];
  return n;
}

// Largest |batch - clip| / max(1, |clip|) (every clip a copy of `clip`).
double max_relative_diff(const std::vector<float>& batch, const std::vector<float>& clip) {
  double worst = 0.0;
  for (size_t i = 0; i < batch.size(); ++i) {
    const double ref = clip[i % clip.size()];
    worst = std::max(worst, std::fabs(batch[i] - ref) / std::max(1.0, std::fabs(ref)));
  }
  return worst;
}

constexpr double kFloatTolerance = 1e-5;

struct Timing {
  double median_ms, best_ms;
};

// Writing a buffer twice the L2's size before each timed launch evicts the previous launch's data.
class L2Flush {
 public:
  explicit L2Flush(int l2_bytes) : buffer_(std::max<size_t>(2 * static_cast<size_t>(l2_bytes), 1 << 20)) {}
  void operator()() { check(cudaMemsetAsync(buffer_.get(), ++fill_ & 0xff, buffer_.bytes()), "L2 flush"); }

 private:
  DeviceArray<unsigned char> buffer_;
  int fill_ = 0;
};

template <typename Launch>
Timing time_launches(const Launch& launch, int repeats, L2Flush& flush) {
  for (int i = 0; i < 3; ++i) launch();
  check(cudaDeviceSynchronize(), "warm-up");
  cudaEvent_t start, stop;
  check(cudaEventCreate(&start), "cudaEventCreate");
  check(cudaEventCreate(&stop), "cudaEventCreate");
  std::vector<float> samples;
  for (int i = 0; i < repeats; ++i) {
    flush();
    check(cudaEventRecord(start), "cudaEventRecord");
    launch();
    check(cudaEventRecord(stop), "cudaEventRecord");
    check(cudaEventSynchronize(stop), "kernel");
    float ms = 0.0f;
    check(cudaEventElapsedTime(&ms, start, stop), "cudaEventElapsedTime");
    samples.push_back(ms);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(samples.begin(), samples.end());
  const size_t mid = samples.size() / 2;
  const double median = samples.size() % 2 ? samples[mid] : 0.5 * (samples[mid - 1] + samples[mid]);
  return {median, samples.front()};
}

// Theoretical peak DRAM bandwidth in bytes/s (0 if the device does not report it).
double peak_bandwidth(int device, int* clock_khz, int* bus_bits) {
  *clock_khz = *bus_bits = 0;
  if (cudaDeviceGetAttribute(clock_khz, cudaDevAttrMemoryClockRate, device) != cudaSuccess ||
      cudaDeviceGetAttribute(bus_bits, cudaDevAttrGlobalMemoryBusWidth, device) != cudaSuccess) {
    cudaGetLastError();  // clear it: not knowing the peak only blanks a column
    return 0.0;
  }
  return 2.0 * *clock_khz * 1e3 * (*bus_bits / 8.0);
}

// "(x,y)x256, smem 128 B": a launch's grid, block and dynamic shared memory, for the table.
std::string launch_text(dim3 grid, int block, size_t smem) {
  std::string text = "(" + std::to_string(grid.x) + (grid.y > 1 ? "," + std::to_string(grid.y) : "") + ")x" +
                     std::to_string(block);
  return smem ? text + ", smem " + std::to_string(smem) + " B" : text;
}

bool parse_int(const char* text, int low, int high, int* out) {
  char* end = nullptr;
  const long value = std::strtol(text, &end, 10);
  if (end == text || *end != '\0' || value < low || value > high) return false;
  *out = static_cast<int>(value);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  int batch = 64, repeats = 50;
  const int max_batch = 65535 / kFrames;  // B * T frames form gridDim.y of the saliency kernels
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool ok = i + 1 < argc && ((arg == "--batch" && parse_int(argv[i + 1], 1, max_batch, &batch)) ||
                                     (arg == "--repeats" && parse_int(argv[i + 1], 1, 100000, &repeats)));
    if (!ok) {
      std::fprintf(stderr, "usage: %s [--batch 1..%d] [--repeats N]\n", argv[0], max_batch);
      return kExitUsage;
    }
    ++i;
  }

  int devices = 0;
  const cudaError_t found = cudaGetDeviceCount(&devices);
  if (found != cudaSuccess || devices == 0) {
    std::fprintf(stderr, "bench_select: no CUDA device available (%s); run it on a machine with an NVIDIA GPU\n",
                 found != cudaSuccess ? cudaGetErrorString(found) : "cudaGetDeviceCount found none");
    return kExitNoDevice;
  }
  const int device = 0;
  check(cudaSetDevice(device), "cudaSetDevice");
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
  int clock_khz, bus_bits;
  const double peak = peak_bandwidth(device, &clock_khz, &bus_bits);

  // host: the clip, and every stage of the reference pipeline
  const Clip clip = make_clip();
  const std::vector<int> rows = cell_bounds(kHeight, kGridH), cols = cell_bounds(kWidth, kGridW);
  const std::vector<unsigned long long> sums_ref = residual_sums_reference(clip, rows, cols);
  std::vector<float> sum_v_ref;
  std::vector<long long> sum_a_ref;
  motion_sums_reference(clip, rows, cols, sum_v_ref, sum_a_ref);
  // the torch steps between the kernels: RMS (float64) and motion means (float32)
  std::vector<float> residual_grid(sums_ref.size()), motion_grid(sums_ref.size());
  for (size_t i = 0; i < sums_ref.size(); ++i) {
    const int r = static_cast<int>(i % kCells) / kGridW, c = static_cast<int>(i % kCells) % kGridW;
    const long long area = static_cast<long long>(rows[r + 1] - rows[r]) * (cols[c + 1] - cols[c]);
    residual_grid[i] = static_cast<float>(std::sqrt(static_cast<double>(sums_ref[i]) / static_cast<double>(area)));
    motion_grid[i] = sum_v_ref[i] / static_cast<float>(std::max(sum_a_ref[i], area));
  }
  const CombineArgs ca = combine_args();
  const std::vector<float> prior = centre_prior();
  const std::vector<float> saliency_ref = combine_reference(motion_grid, residual_grid, clip.is_iframe, prior, ca);
  const std::vector<unsigned char> anchor = anchor_frames(clip.is_iframe);
  const std::vector<long long> keys = selection_keys(saliency_ref, anchor);
  int ties = 0;
  const std::vector<long long> selection_ref = selection_reference(saliency_ref, anchor, &ties);
  if (selection_ref.empty()) {
    std::fprintf(stderr, "bench_select: the synthetic clip has too few salient patches for the reference\n");
    return kExitMismatch;
  }

  // device: B copies of the clip, run as one clip of B*T frames (B segments for the top-K)
  const int frames = batch * kFrames;
  const int blocks_per_clip = clip.offsets.back();
  const size_t cells = static_cast<size_t>(frames) * kCells;
  const long long length = static_cast<long long>(kFrames) * kCells;
  DeviceArray<short> d_residual(clip.residual.size() * batch);
  DeviceArray<int> d_rows(rows.size()), d_cols(cols.size());
  DeviceArray<unsigned long long> d_sums(cells);
  DeviceArray<int> d_rects(clip.rects.size() * batch), d_offsets(frames + 1);
  DeviceArray<float> d_length(clip.length.size() * batch), d_sum_v(cells);
  DeviceArray<long long> d_sum_a(cells);
  DeviceArray<float> d_motion(cells), d_residual_grid(cells), d_prior(prior.size()), d_saliency(cells);
  DeviceArray<unsigned char> d_is_iframe(frames);
  DeviceArray<long long> d_keys(keys.size() * batch), d_k(batch), d_out_offsets(batch + 1),
      d_selected(static_cast<size_t>(batch) * kBudget);

  d_residual.upload_repeated(clip.residual, batch);
  d_rows.upload(rows);
  d_cols.upload(cols);
  d_rects.upload_repeated(clip.rects, batch);
  d_length.upload_repeated(clip.length, batch);
  std::vector<int> offsets(frames + 1);
  for (int f = 0; f <= frames; ++f) offsets[f] = (f / kFrames) * blocks_per_clip + clip.offsets[f % kFrames];
  d_offsets.upload(offsets);
  d_motion.upload_repeated(motion_grid, batch);
  d_residual_grid.upload_repeated(residual_grid, batch);
  d_is_iframe.upload_repeated(clip.is_iframe, batch);
  d_prior.upload(prior);
  d_keys.upload_repeated(keys, batch);
  std::vector<long long> k(batch, kBudget), out_offsets(batch + 1);
  for (int b = 0; b <= batch; ++b) out_offsets[b] = static_cast<long long>(b) * kBudget;
  d_k.upload(k);
  d_out_offsets.upload(out_offsets);

  // the launches of ops/saliency.py (_residual_sums_cuda, _motion_sums_cuda, _combine_cuda) and
  // ops/select.py (_topk_cuda); width 640 is a multiple of 4, so the ops pick residual_sums_int16x4
  const dim3 residual_grid_dim(kGridH, frames), motion_grid_dim((kCells + kThreads - 1) / kThreads, frames);
  const size_t residual_smem = kGridW * sizeof(unsigned long long);  // one accumulator per grid column
  const int combine_threads = std::min(1024, ca.padded);
  const size_t combine_smem = ca.padded * sizeof(float);
  const int topk_threads = length >= 4096 ? 1024 : 256;
  auto residual_sums = [&] {
    residual_sums_int16x4<<<residual_grid_dim, kThreads, residual_smem>>>(
        d_residual.get(), d_rows.get(), kHeight, kWidth, kGridW, d_sums.get());
    check(cudaGetLastError(), "residual_sums_int16x4 launch");
  };
  auto motion_sums = [&] {
    motion_sums_float32<<<motion_grid_dim, kThreads>>>(d_rects.get(), d_offsets.get(), d_length.get(), d_rows.get(),
                                                       d_cols.get(), kGridH, kGridW, d_sum_v.get(), d_sum_a.get());
    check(cudaGetLastError(), "motion_sums_float32 launch");
  };
  auto combine = [&] {
    combine_saliency_float32<<<frames, combine_threads, combine_smem>>>(
        d_motion.get(), d_residual_grid.get(), d_is_iframe.get(), d_prior.get(), ca.p, ca.padded, ca.lo, ca.hi,
        ca.frac, ca.has_noise, ca.nlo, ca.nhi, ca.nfrac, ca.motion_ref, ca.residual_ref, ca.wm, ca.wr, ca.mode,
        d_saliency.get());
    check(cudaGetLastError(), "combine_saliency_float32 launch");
  };
  auto topk = [&] {
    topk_select_int64<<<batch, topk_threads>>>(d_keys.get(), length, d_k.get(), d_out_offsets.get(),
                                                d_selected.get());
    check(cudaGetLastError(), "topk_select_int64 launch");
  };

  // check every clip of the batch against the host reference
  residual_sums();
  motion_sums();
  combine();
  topk();
  check(cudaDeviceSynchronize(), "kernels");
  std::vector<long long> selection_batch(static_cast<size_t>(batch) * kBudget);
  for (size_t i = 0; i < selection_batch.size(); ++i) {
    selection_batch[i] = static_cast<long long>(i / kBudget) * length + selection_ref[i % kBudget];
  }
  const size_t bad_sums = count_different(d_sums.download(), sums_ref);
  const size_t bad_areas = count_different(d_sum_a.download(), sum_a_ref);
  const double motion_diff = max_relative_diff(d_sum_v.download(), sum_v_ref);
  const double saliency_diff = max_relative_diff(d_saliency.download(), saliency_ref);
  const size_t bad_selected = count_different(d_selected.download(), selection_batch);
  std::printf("check: %d clips against the host reference of one (integers exact, floats within %.0e relative)\n",
              batch, kFloatTolerance);
  std::printf("  residual_sums_int16x4     %zu of %zu sums differ\n", bad_sums, cells);
  std::printf("  motion_sums_float32       %zu of %zu areas differ; sums max rel diff %.2e\n", bad_areas, cells,
              motion_diff);
  std::printf("  combine_saliency_float32  max rel diff %.2e\n", saliency_diff);
  std::printf("  topk_select_int64         %zu of %zu indices differ (K = %d per clip; %d patches tie at the cut,"
              " ordered by flat index)\n", bad_selected, selection_batch.size(), kBudget, ties);
  if (bad_sums || bad_areas || bad_selected || !(motion_diff <= kFloatTolerance) ||
      !(saliency_diff <= kFloatTolerance)) {
    std::fprintf(stderr, "bench_select: CUDA results differ from the host reference\n");
    return kExitMismatch;
  }

  // time
  L2Flush flush(prop.l2CacheSize);
  struct Row {
    const char* kernel;
    std::string launch;
    double bytes;
    Timing timing;
  };
  const double motion_bytes = d_rects.bytes() + d_offsets.bytes() + d_length.bytes() + d_rows.bytes() +
                              d_cols.bytes() + d_sum_v.bytes() + d_sum_a.bytes();
  const double combine_bytes = d_motion.bytes() + d_residual_grid.bytes() + d_is_iframe.bytes() + d_prior.bytes() +
                               d_saliency.bytes();
  const double topk_bytes = d_keys.bytes() + d_k.bytes() + d_out_offsets.bytes() + d_selected.bytes();
  const Row rows_out[] = {
      {"residual_sums_int16x4", launch_text(residual_grid_dim, kThreads, residual_smem),
       static_cast<double>(d_residual.bytes() + d_rows.bytes() + d_sums.bytes()),
       time_launches(residual_sums, repeats, flush)},
      {"motion_sums_float32", launch_text(motion_grid_dim, kThreads, 0), motion_bytes,
       time_launches(motion_sums, repeats, flush)},
      {"combine_saliency_float32", launch_text(dim3(frames), combine_threads, combine_smem), combine_bytes,
       time_launches(combine, repeats, flush)},
      {"topk_select_int64", launch_text(dim3(batch), topk_threads, 0), topk_bytes, time_launches(topk, repeats, flush)},
  };

  std::printf("\n");
  for (int i = 0; i < argc; ++i) std::printf("%s%s", i ? " " : "command: ", argv[i]);
  std::printf("\ndevice: %s (sm_%d%d), ", prop.name, prop.major, prop.minor);
  if (peak > 0) {
    std::printf("peak %.0f GB/s = 2 x %.0f MHz x %d bit\n", peak / 1e9, clock_khz / 1e3, bus_bits);
  } else {
    std::printf("peak bandwidth not reported\n");
  }
  std::printf("%d clips x %d frames, %dx%d coded, %dx%d grid, K = %d; %d timed launches each, L2 flushed before each;\n"
              "bytes moved: every input read once, every output written once\n\n",
              batch, kFrames, kWidth, kHeight, kGridH, kGridW, kBudget, repeats);
  std::printf("%-26s %-30s %10s %10s %10s %9s %8s\n", "kernel", "grid x block", "median ms", "best ms", "MB moved",
              "GB/s", "of peak");
  for (const Row& row : rows_out) {
    const double rate = row.bytes / (row.timing.median_ms * 1e-3);
    std::printf("%-26s %-30s %10.3f %10.3f %10.1f %9.0f ", row.kernel, row.launch.c_str(), row.timing.median_ms,
                row.timing.best_ms, row.bytes / 1e6, rate / 1e9);
    if (peak > 0) {
      std::printf("%7.1f%%\n", 100.0 * rate / peak);
    } else {
      std::printf("%8s\n", "n/a");
    }
  }
  std::printf("(GB/s and %% of peak from the median)\n");
  return 0;
}

// Saliency + top-K selection kernels on a batch of clips: the GPU half of bench/ops_select.py as a
// standalone nvcc program (no Python, torch or CuPy at run time).
//
// The kernels are cuda/saliency.cu and cuda/topk_select.cu themselves, included below (not copied), and
// are launched with the grid, block, arguments and shared memory that python/codecprim/ops/saliency.py
// and ops/select.py give them. Their inputs and expected outputs come from a case folder written by
// bench/cuda/make_select_case.py with the package's own ops and CPU twins (one 64-frame 640x360 clip,
// GOP 32, 16x16 grid, K = 2048), so nothing of the ops is implemented a second time here. B copies of the
// clip run as one clip of B*64 frames (B segments for the top-K), as ops_select does.
//
// Check first: every clip of the batch against the CPU twins' outputs. Integers exactly (residual sums,
// overlap areas, selected indices), floats within 1e-5 (relative; absolute below 1): built with
// --fmad=false, as CuPy builds them, they normally agree exactly. select_patches_float32 (anchors, keys
// and top-K fused, the launch select_patches makes on CUDA) runs on one clip, as select_patches does.
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
// Usage: python bench/cuda/make_select_case.py CASE && bench_select CASE [--batch B] [--repeats N]
//        (defaults: 64 clips, 50 timed launches). The case is read and summarised before the device is
//        looked for, so the reader is exercised on machines without a GPU too.
// Exit:  0 checked and timed, 1 a result differs from the CPU twins, 2 no CUDA device, 3 a CUDA call
//        failed, 4 the case folder is missing or malformed, 64 bad arguments.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "../../cuda/saliency.cu"
#include "../../cuda/topk_select.cu"

namespace {

constexpr int kThreads = 256;  // the ops' block size for the saliency kernels
constexpr int kExitMismatch = 1, kExitNoDevice = 2, kExitCuda = 3, kExitCase = 4, kExitUsage = 64;

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
// the case: .npy files (little-endian, C order) from make_select_case.py

[[noreturn]] void bad_case(const std::string& file, const std::string& cause) {
  std::fprintf(stderr, "bench_select: case file %s: %s (write the case with bench/cuda/make_select_case.py)\n",
               file.c_str(), cause.c_str());
  std::exit(kExitCase);
}

template <typename T>
const char* npy_descr();
template <> const char* npy_descr<int16_t>() { return "<i2"; }
template <> const char* npy_descr<int32_t>() { return "<i4"; }
template <> const char* npy_descr<long long>() { return "<i8"; }
template <> const char* npy_descr<uint8_t>() { return "|u1"; }
template <> const char* npy_descr<float>() { return "<f4"; }

template <typename T>
struct HostArray {
  std::vector<int64_t> shape;
  std::vector<T> data;
};

// Reads DIR/NAME.npy, which must hold T elements in C order.
template <typename T>
HostArray<T> load_npy(const std::string& dir, const std::string& name) {
  const std::string file = dir + "/" + name + ".npy";
  std::ifstream in(file, std::ios::binary);
  if (!in) bad_case(file, "cannot be opened");
  char magic[8];
  if (!in.read(magic, 8) || std::memcmp(magic, "\x93NUMPY", 6) != 0) bad_case(file, "not a .npy file");
  uint32_t header_len = 0;
  if (magic[6] == 1) {
    uint8_t len[2];
    in.read(reinterpret_cast<char*>(len), 2);
    header_len = len[0] | (len[1] << 8);
  } else {
    uint8_t len[4];
    in.read(reinterpret_cast<char*>(len), 4);
    header_len = len[0] | (len[1] << 8) | (len[2] << 16) | (static_cast<uint32_t>(len[3]) << 24);
  }
  std::string header(header_len, '\0');
  if (!in || !in.read(&header[0], header_len)) bad_case(file, "truncated header");
  if (header.find(std::string("'descr': '") + npy_descr<T>() + "'") == std::string::npos) {
    bad_case(file, std::string("expected dtype ") + npy_descr<T>() + ", header " + header);
  }
  if (header.find("'fortran_order': False") == std::string::npos) bad_case(file, "not in C order");
  const size_t open = header.find("'shape': (");
  const size_t close = header.find(')', open);
  if (open == std::string::npos || close == std::string::npos) bad_case(file, "no shape in header");
  HostArray<T> array;
  int64_t count = 1;
  for (size_t pos = open + 10; pos < close;) {
    char* end = nullptr;
    const long long dim = std::strtoll(header.c_str() + pos, &end, 10);
    if (end == header.c_str() + pos) break;
    array.shape.push_back(dim);
    count *= dim;
    pos = static_cast<size_t>(end - header.c_str());
    while (pos < close && (header[pos] == ',' || header[pos] == ' ')) ++pos;
  }
  array.data.resize(static_cast<size_t>(count));
  if (!in.read(reinterpret_cast<char*>(array.data.data()), static_cast<std::streamsize>(count * sizeof(T)))) {
    bad_case(file, "shorter than its shape says");
  }
  return array;
}

struct Case {
  HostArray<int16_t> residual;          // (T, H, W) coded residual
  HostArray<int32_t> rows, cols;        // (Hg + 1), (Wg + 1) cell borders in pixels
  HostArray<long long> residual_sums;     // (T, Hg, Wg) expected
  HostArray<int32_t> rects;             // (M, 4) x0, y0, x1, y1 of every block, clipped to the frame
  HostArray<int32_t> offsets;           // (T + 1) frame t owns blocks [offsets[t], offsets[t+1])
  HostArray<float> length;              // (M,) camera-compensated motion length, model pixels
  HostArray<float> motion_sum_v;        // (T, Hg, Wg) expected
  HostArray<long long> motion_sum_a;      // (T, Hg, Wg) expected
  HostArray<float> motion_grid, residual_grid;  // (T, Hg, Wg) inputs of the combine kernel
  HostArray<uint8_t> is_iframe;         // (T,)
  HostArray<float> prior;               // (Hg, Wg)
  HostArray<int32_t> combine_ints;      // p, padded, lo, hi, has_noise, nlo, nhi, mode
  HostArray<float> combine_floats;      // frac, nfrac, motion_ref, residual_ref, wm, wr
  HostArray<float> saliency;            // (T, Hg, Wg) expected
  HostArray<long long> keys;              // (T * Hg * Wg,) selection keys
  HostArray<long long> budget;            // (1,) K
  HostArray<long long> selected;          // (K,) expected sorted flat indices
  HostArray<float> floor;               // (1,) select_patches' saliency floor
  int frames = 0, height = 0, width = 0, grid_h = 0, grid_w = 0;
};

Case load_case(const std::string& dir) {
  Case c;
  c.residual = load_npy<int16_t>(dir, "residual");
  c.rows = load_npy<int32_t>(dir, "rows");
  c.cols = load_npy<int32_t>(dir, "cols");
  c.residual_sums = load_npy<long long>(dir, "residual_sums");
  c.rects = load_npy<int32_t>(dir, "rects");
  c.offsets = load_npy<int32_t>(dir, "offsets");
  c.length = load_npy<float>(dir, "length");
  c.motion_sum_v = load_npy<float>(dir, "motion_sum_v");
  c.motion_sum_a = load_npy<long long>(dir, "motion_sum_a");
  c.motion_grid = load_npy<float>(dir, "motion_grid");
  c.residual_grid = load_npy<float>(dir, "residual_grid");
  c.is_iframe = load_npy<uint8_t>(dir, "is_iframe");
  c.prior = load_npy<float>(dir, "prior");
  c.combine_ints = load_npy<int32_t>(dir, "combine_ints");
  c.combine_floats = load_npy<float>(dir, "combine_floats");
  c.saliency = load_npy<float>(dir, "saliency");
  c.keys = load_npy<long long>(dir, "keys");
  c.budget = load_npy<long long>(dir, "budget");
  c.selected = load_npy<long long>(dir, "selected");
  c.floor = load_npy<float>(dir, "floor");
  const std::string where = dir + "/*.npy";
  if (c.residual.shape.size() != 3) bad_case(where, "residual must be (T, H, W)");
  c.frames = static_cast<int>(c.residual.shape[0]);
  c.height = static_cast<int>(c.residual.shape[1]);
  c.width = static_cast<int>(c.residual.shape[2]);
  c.grid_h = static_cast<int>(c.rows.data.size()) - 1;
  c.grid_w = static_cast<int>(c.cols.data.size()) - 1;
  const size_t cells = static_cast<size_t>(c.frames) * c.grid_h * c.grid_w;
  const size_t blocks = c.length.data.size();
  const bool consistent =
      c.grid_h > 0 && c.grid_w > 0 && c.residual_sums.data.size() == cells && c.motion_sum_v.data.size() == cells &&
      c.motion_sum_a.data.size() == cells && c.motion_grid.data.size() == cells &&
      c.residual_grid.data.size() == cells && c.saliency.data.size() == cells && c.keys.data.size() == cells &&
      c.prior.data.size() == cells / c.frames && c.is_iframe.data.size() == static_cast<size_t>(c.frames) &&
      c.rects.data.size() == 4 * blocks && c.offsets.data.size() == static_cast<size_t>(c.frames) + 1 &&
      c.offsets.data.back() == static_cast<int32_t>(blocks) && c.combine_ints.data.size() == 8 &&
      c.combine_floats.data.size() == 6 && c.budget.data.size() == 1 && c.floor.data.size() == 1 &&
      c.selected.data.size() == static_cast<size_t>(c.budget.data[0]) &&
      c.combine_ints.data[0] == static_cast<int32_t>(cells / c.frames);
  if (!consistent) bad_case(where, "the arrays' shapes do not fit one clip");
  return c;
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
  std::string case_dir;
  int batch = 64, repeats = 50;
  bool ok = true;
  for (int i = 1; i < argc && ok; ++i) {
    const std::string arg = argv[i];
    if (arg == "--batch" || arg == "--repeats") {
      ok = i + 1 < argc && parse_int(argv[i + 1], 1, arg == "--batch" ? 65535 : 100000,
                                     arg == "--batch" ? &batch : &repeats);
      ++i;
    } else if (case_dir.empty() && !arg.empty() && arg[0] != '-') {
      case_dir = arg;
    } else {
      ok = false;
    }
  }
  if (!ok || case_dir.empty()) {
    std::fprintf(stderr, "usage: %s CASE_DIR [--batch B] [--repeats N]   (CASE_DIR from "
                 "bench/cuda/make_select_case.py)\n", argv[0]);
    return kExitUsage;
  }

  const Case c = load_case(case_dir);
  const int cells_per_frame = c.grid_h * c.grid_w;
  const long long budget = c.budget.data[0];
  std::printf("case: %s: %d frames %dx%d, %dx%d grid, %zu blocks, %d I-frames, K = %lld\n", case_dir.c_str(),
              c.frames, c.width, c.height, c.grid_h, c.grid_w, c.length.data.size(),
              static_cast<int>(std::count(c.is_iframe.data.begin(), c.is_iframe.data.end(), 1)), budget);
  std::fflush(stdout);
  if (batch * c.frames > 65535) {  // B * T frames form gridDim.y of the saliency kernels
    std::fprintf(stderr, "bench_select: --batch %d x %d frames exceeds 65535 grid rows\n", batch, c.frames);
    return kExitUsage;
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

  // device: B copies of the clip, run as one clip of B*T frames (B segments for the top-K)
  const int frames = batch * c.frames;
  const int blocks_per_clip = c.offsets.data.back();
  const size_t cells = static_cast<size_t>(frames) * cells_per_frame;
  const long long length = static_cast<long long>(c.frames) * cells_per_frame;
  DeviceArray<short> d_residual(c.residual.data.size() * batch);
  DeviceArray<int> d_rows(c.rows.data.size()), d_cols(c.cols.data.size());
  DeviceArray<unsigned long long> d_sums(cells);
  DeviceArray<int> d_rects(c.rects.data.size() * batch), d_offsets(frames + 1), d_order(c.length.data.size() * batch);
  DeviceArray<float> d_length(c.length.data.size() * batch), d_sum_v(cells);
  DeviceArray<long long> d_sum_a(cells);
  DeviceArray<float> d_motion(cells), d_residual_grid(cells), d_prior(c.prior.data.size()), d_saliency(cells);
  DeviceArray<unsigned char> d_is_iframe(frames);
  DeviceArray<long long> d_keys(c.keys.data.size() * batch), d_k(batch), d_out_offsets(batch + 1),
      d_selected(static_cast<size_t>(batch) * budget);
  // select_patches_float32 on one clip: the case's saliency in, scratch, the Selection's fields out
  DeviceArray<float> d_clip_saliency(c.saliency.data.size());
  DeviceArray<int> d_dither(c.keys.data.size()), d_frame_rank(c.frames);
  DeviceArray<long long> d_clip_keys(c.keys.data.size()), d_frame_k(c.frames + 1), d_visible(budget),
      d_positions(3 * budget);
  DeviceArray<signed char> d_tier(budget);
  DeviceArray<unsigned char> d_anchor(c.frames);

  d_residual.upload_repeated(c.residual.data, batch);
  d_rows.upload(c.rows.data);
  d_cols.upload(c.cols.data);
  d_rects.upload_repeated(c.rects.data, batch);
  d_length.upload_repeated(c.length.data, batch);
  std::vector<int> offsets(frames + 1);
  for (int f = 0; f <= frames; ++f) offsets[f] = (f / c.frames) * blocks_per_clip + c.offsets.data[f % c.frames];
  d_offsets.upload(offsets);
  d_motion.upload_repeated(c.motion_grid.data, batch);
  d_residual_grid.upload_repeated(c.residual_grid.data, batch);
  d_is_iframe.upload_repeated(c.is_iframe.data, batch);
  d_prior.upload(c.prior.data);
  d_keys.upload_repeated(c.keys.data, batch);
  std::vector<long long> k(batch, budget), out_offsets(batch + 1);
  for (int b = 0; b <= batch; ++b) out_offsets[b] = static_cast<long long>(b) * budget;
  d_k.upload(k);
  d_out_offsets.upload(out_offsets);
  d_clip_saliency.upload(c.saliency.data);

  // the launches of ops/saliency.py (_residual_sums_cuda, _motion_sums_cuda, _combine_cuda) and
  // ops/select.py (_topk_cuda)
  const std::vector<int32_t>& ci = c.combine_ints.data;
  const std::vector<float>& cf = c.combine_floats.data;
  const int padded = ci[1];
  // the ops' choice (saliency.residual_kernel_name): the widest load rows allow (cudaMalloc aligns to 256 B)
  const int vec = c.width % 8 == 0 ? 8 : c.width % 4 == 0 ? 4 : 1;
  const dim3 residual_grid_dim(c.grid_h, frames);
  const dim3 motion_grid_dim(frames);
  const size_t motion_smem = cells_per_frame * sizeof(int);  // one bucket bound per cell
  const size_t residual_smem = c.grid_w * sizeof(unsigned long long);  // one accumulator per grid column
  int select_bits = 1;  // the dither square: 2**bits >= Hg, Wg (ops.select._select_cuda)
  while ((1 << select_bits) < std::max(c.grid_h, c.grid_w)) ++select_bits;
  constexpr int kSelectThreads = 1024;
  DeviceArray<int> d_still_rank(static_cast<size_t>(c.frames) << (2 * select_bits));
  const int combine_threads = std::min(1024, padded);
  const size_t combine_smem = padded * sizeof(float);
  const int topk_threads = length >= 4096 ? 1024 : 256;
  const char* residual_kernel =
      vec == 8 ? "residual_sums_int16x8" : vec == 4 ? "residual_sums_int16x4" : "residual_sums_int16";
  auto residual_sums = [&] {
    if (vec == 8) {
      residual_sums_int16x8<<<residual_grid_dim, kThreads, residual_smem>>>(d_residual.get(), d_rows.get(), c.height,
                                                                            c.width, c.grid_w, d_sums.get());
    } else if (vec == 4) {
      residual_sums_int16x4<<<residual_grid_dim, kThreads, residual_smem>>>(d_residual.get(), d_rows.get(), c.height,
                                                                            c.width, c.grid_w, d_sums.get());
    } else {
      residual_sums_int16<<<residual_grid_dim, kThreads, residual_smem>>>(d_residual.get(), d_rows.get(), c.height,
                                                                          c.width, c.grid_w, d_sums.get());
    }
    check(cudaGetLastError(), "residual_sums launch");
  };
  auto motion_sums = [&] {
    motion_sums_float32<<<motion_grid_dim, kThreads, motion_smem>>>(
        d_rects.get(), d_offsets.get(), d_length.get(), d_rows.get(), d_cols.get(), c.height, c.width, c.grid_h,
        c.grid_w, d_order.get(), d_sum_v.get(), d_sum_a.get());
    check(cudaGetLastError(), "motion_sums_float32 launch");
  };
  auto combine = [&] {
    combine_saliency_float32<<<frames, combine_threads, combine_smem>>>(
        d_motion.get(), d_residual_grid.get(), d_is_iframe.get(), d_prior.get(), ci[0], ci[1], ci[2], ci[3], cf[0],
        ci[4], ci[5], ci[6], cf[1], cf[2], cf[3], cf[4], cf[5], ci[7], d_saliency.get());
    check(cudaGetLastError(), "combine_saliency_float32 launch");
  };
  auto topk = [&] {
    topk_select_int64<<<batch, topk_threads>>>(d_keys.get(), length, d_k.get(), d_out_offsets.get(),
                                                d_selected.get());
    check(cudaGetLastError(), "topk_select_int64 launch");
  };
  auto select_clip = [&] {
    select_patches_float32<<<1, kSelectThreads>>>(
        d_clip_saliency.get(), d_is_iframe.get(), c.frames, cells_per_frame, c.grid_w, budget, 0, c.floor.data[0],
        select_bits, d_dither.get(), d_clip_keys.get(), d_frame_k.get(), d_frame_rank.get(), d_still_rank.get(),
        d_visible.get(), d_positions.get(), d_tier.get(), d_anchor.get());
    check(cudaGetLastError(), "select_patches_float32 launch");
  };

  // check every clip of the batch against the CPU twins
  residual_sums();
  motion_sums();
  combine();
  topk();
  select_clip();
  check(cudaDeviceSynchronize(), "kernels");
  const std::vector<unsigned long long> sums_expected(c.residual_sums.data.begin(), c.residual_sums.data.end());
  std::vector<long long> selection_expected(static_cast<size_t>(batch) * budget);
  for (size_t i = 0; i < selection_expected.size(); ++i) {
    selection_expected[i] = static_cast<long long>(i / budget) * length + c.selected.data[i % budget];
  }
  const size_t bad_sums = count_different(d_sums.download(), sums_expected);
  const size_t bad_areas = count_different(d_sum_a.download(), c.motion_sum_a.data);
  const double motion_diff = max_relative_diff(d_sum_v.download(), c.motion_sum_v.data);
  const double saliency_diff = max_relative_diff(d_saliency.download(), c.saliency.data);
  const size_t bad_selected = count_different(d_selected.download(), selection_expected);
  const size_t bad_fused = count_different(d_visible.download(), c.selected.data);
  std::printf("check: %d clips against the package's CPU twins (integers exact, floats within %.0e relative)\n",
              batch, kFloatTolerance);
  std::printf("  %-24s  %zu of %zu sums differ\n", residual_kernel, bad_sums, cells);
  std::printf("  motion_sums_float32       %zu of %zu areas differ; sums max rel diff %.2e\n", bad_areas, cells,
              motion_diff);
  std::printf("  combine_saliency_float32  max rel diff %.2e\n", saliency_diff);
  std::printf("  topk_select_int64         %zu of %zu indices differ (K = %lld per clip)\n", bad_selected,
              selection_expected.size(), budget);
  std::printf("  select_patches_float32    %zu of %lld indices differ (one clip)\n", bad_fused, budget);
  if (bad_sums || bad_areas || bad_selected || bad_fused || !(motion_diff <= kFloatTolerance) ||
      !(saliency_diff <= kFloatTolerance)) {
    std::fprintf(stderr, "bench_select: CUDA results differ from the CPU twins\n");
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
  const double select_bytes = d_clip_saliency.bytes() + c.frames + d_visible.bytes() + d_positions.bytes() +
                              d_tier.bytes() + d_anchor.bytes();
  const Row rows_out[] = {
      {residual_kernel, launch_text(residual_grid_dim, kThreads, residual_smem),
       static_cast<double>(d_residual.bytes() + d_rows.bytes() + d_sums.bytes()),
       time_launches(residual_sums, repeats, flush)},
      {"motion_sums_float32", launch_text(motion_grid_dim, kThreads, motion_smem), motion_bytes,
       time_launches(motion_sums, repeats, flush)},
      {"combine_saliency_float32", launch_text(dim3(frames), combine_threads, combine_smem), combine_bytes,
       time_launches(combine, repeats, flush)},
      {"topk_select_int64", launch_text(dim3(batch), topk_threads, 0), topk_bytes, time_launches(topk, repeats, flush)},
      {"select_patches_float32", launch_text(dim3(1), kSelectThreads, 0) + ", 1 clip", select_bytes,
       time_launches(select_clip, repeats, flush)},
  };

  std::printf("\n");
  for (int i = 0; i < argc; ++i) std::printf("%s%s", i ? " " : "command: ", argv[i]);
  std::printf("\ndevice: %s (sm_%d%d), ", prop.name, prop.major, prop.minor);
  if (peak > 0) {
    std::printf("peak %.0f GB/s = 2 x %.0f MHz x %d bit\n", peak / 1e9, clock_khz / 1e3, bus_bits);
  } else {
    std::printf("peak bandwidth not reported\n");
  }
  std::printf("%d clips x %d frames, %dx%d coded, %dx%d grid, K = %lld; %d timed launches each, "
              "L2 flushed before each;\n"
              "bytes moved: every input read once, every output written once\n\n",
              batch, c.frames, c.width, c.height, c.grid_h, c.grid_w, budget, repeats);
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

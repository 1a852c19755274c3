// The Python face of the core: the only file that knows pybind11. Buffers filled by the core are handed to
// numpy arrays that own them (freed by a capsule), so torch.from_numpy shares them without a copy.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "block_matching.h"
#include "camera_fit.h"
#include "errors.h"
#include "ffmpeg.h"
#include "ffmpeg_log.h"
#include "field_at_size.h"
#include "input_source.h"
#include "interpolation.h"
#include "motion_energy.h"
#include "patch_resize.h"
#include "residual_energy.h"
#include "simd_dispatch.h"
#include "transcoder.h"
#include "video_reader.h"

namespace py = pybind11;
using namespace codecprim;

namespace {

template <typename T>
py::object to_array(OwnedBuffer<T>& buffer, std::vector<py::ssize_t> shape) {
  if (buffer.empty()) return py::none();
  T* data = buffer.release();
  py::capsule owner(data, [](void* p) { buffer_pool::release(p); });
  return py::array_t<T>(shape, data, owner);
}

py::dict info_dict(const VideoInfoData& info) {
  py::dict d;
  d["path"] = info.path;
  d["codec"] = info.codec;
  d["container"] = info.container;
  d["pix_fmt"] = info.pix_fmt;
  d["width"] = info.width;
  d["height"] = info.height;
  d["rotation"] = info.rotation;
  d["fps"] = info.fps;
  d["num_frames"] = info.num_frames >= 0 ? py::object(py::int_(info.num_frames)) : py::object(py::none());
  d["duration_seconds"] = info.duration_seconds >= 0 ? py::object(py::float_(info.duration_seconds)) : py::object(py::none());
  d["bit_rate"] = info.bit_rate;
  d["time_base"] = info.time_base;
  d["motion_vectors"] = info.motion_vectors_exported ? "exported" : "none";
  d["residual_method"] = info.residual_method;
  d["b_frame_vectors_stale"] = info.b_frame_vectors_stale;
  return d;
}

py::dict frame_dict(FrameData& f) {
  py::dict d;
  d["index"] = f.index;
  d["decode_index"] = f.decode_index;
  d["pts"] = f.pts;
  d["pts_seconds"] = f.pts_seconds;
  d["pict_type"] = std::string(1, f.pict_type);
  d["key_frame"] = f.key_frame;
  d["gop_index"] = f.gop_index;
  d["packet_size"] = f.packet_size;
  d["corrupt"] = f.corrupt;
  d["without_export"] = f.without_export;
  d["rounding"] = f.rounding;
  d["inter_pixels"] = f.inter_pixels;
  // Addresses the core wrote to, so tests can prove the tensors alias them.
  py::dict addresses;
  addresses["motion_vectors"] = reinterpret_cast<uintptr_t>(f.motion_vectors.rows.data());
  addresses["luma"] = reinterpret_cast<uintptr_t>(f.luma.data());
  addresses["residual"] = reinterpret_cast<uintptr_t>(f.residual.data());
  d["buffer_addresses"] = addresses;
  OwnedBuffer<int32_t>& rows = f.motion_vectors.rows;
  if (rows.empty()) rows = OwnedBuffer<int32_t>(0);
  d["motion_vectors"] = to_array(rows, {static_cast<py::ssize_t>(f.motion_vectors.count), kMotionVectorColumns});
  d["luma"] = to_array(f.luma, {f.height, f.width});
  d["residual"] = to_array(f.residual, {f.height, f.width});
  d["chroma"] = to_array(f.chroma, {2, f.chroma_height, f.chroma_width});
  d["qp"] = to_array(f.qp, {f.qp_height, f.qp_width});
  d["residual_cell_sums"] = to_array(f.residual_cells, {f.cells_height, f.cells_width});
  return d;
}

// A binary Python file object as a ByteSource: reads take the GIL (the decoder runs without it), and a failing
// read() is reported with Python's own message.
class PyFileSource : public ByteSource {
 public:
  explicit PyFileSource(py::object file) : file_(std::move(file)) {
    try {
      file_.attr("seek")(0, 2);
      size_ = file_.attr("tell")().cast<int64_t>();
    } catch (const py::error_already_set&) {
      size_ = -1;  // a stream that cannot tell its end (seeking still works)
    }
  }
  ~PyFileSource() override {
    py::gil_scoped_acquire gil;
    file_ = py::object();
  }
  int64_t size() override { return size_; }
  std::string error() const override { return error_; }

  int read_at(int64_t pos, uint8_t* dst, int n) override {
    py::gil_scoped_acquire gil;
    try {
      file_.attr("seek")(pos);
      py::object got = file_.attr("read")(n);
      if (got.is_none()) return 0;
      if (!py::isinstance<py::bytes>(got)) got = py::bytes(got);  // bytearray, memoryview; str raises
      const std::string_view data = got.cast<py::bytes>().operator std::string_view();
      const size_t count = std::min(data.size(), static_cast<size_t>(n));
      std::memcpy(dst, data.data(), count);
      return static_cast<int>(count);
    } catch (py::error_already_set& e) {
      error_ = e.what();
      return -1;
    } catch (const std::exception& e) {  // nothing may unwind through FFmpeg's C frames
      error_ = e.what();
      return -1;
    }
  }

 private:
  py::object file_;
  int64_t size_ = -1;
  std::string error_;
};

// What codecprim.open was given: a path, bytes-like data (copied), or a seekable binary file object.
Input input_of(const py::object& source, const std::string& name, bool is_path) {
  Input input;
  input.name = name;
  if (is_path) return input;
  if (py::isinstance<py::bytes>(source) || py::isinstance<py::bytearray>(source) ||
      py::isinstance<py::memoryview>(source)) {
    py::buffer_info buffer = py::reinterpret_borrow<py::buffer>(source).request();
    const size_t size = static_cast<size_t>(buffer.size * buffer.itemsize);
    py::gil_scoped_release release;
    input.source = std::make_shared<MemorySource>(static_cast<const uint8_t*>(buffer.ptr), size);
    return input;
  }
  input.source = std::make_shared<PyFileSource>(source);
  return input;
}

class PyReader {
 public:
  PyReader(const py::object& source, const std::string& name, bool is_path, bool residuals, int threads, bool strict,
           bool chroma, double stall_seconds, bool pixels)
      : path_(name) {
    ReaderOptions options;
    options.residuals = residuals;
    options.pixels = pixels || residuals;
    options.threads = threads;
    options.strict = strict;
    options.chroma = chroma;
    options.stall_seconds = stall_seconds;
    Input input = input_of(source, name, is_path);
    py::gil_scoped_release release;  // a file object's reads take the GIL back
    reader_ = std::make_unique<VideoReader>(input, options);
  }

  VideoReader& reader() {
    if (!reader_) throw Error(ErrorKind::kInvalidData, path_, "the reader is closed");
    return *reader_;
  }

  py::object next() {
    FrameData frame;
    bool got;
    {
      py::gil_scoped_release release;  // other Python threads (data loader workers) run while this one decodes
      got = reader().next(frame);
    }
    if (!got) return py::none();
    return frame_dict(frame);
  }

  py::dict index() {
    const StreamIndex* idx;
    {
      py::gil_scoped_release release;
      idx = &reader().index();
    }
    const size_t n = idx->frames.size();
    py::array_t<int64_t> pts(n), presentation_pts(n), decode_index(n), packet_size(n);
    py::array_t<bool> key(n);
    std::string types(n, '?');
    for (size_t i = 0; i < n; ++i) {
      pts.mutable_at(i) = idx->frames[i].pts;
      presentation_pts.mutable_at(i) = idx->frames[i].presentation_pts;
      decode_index.mutable_at(i) = idx->frames[i].decode_index;
      packet_size.mutable_at(i) = idx->frames[i].packet_size;
      key.mutable_at(i) = idx->frames[i].key_packet;
      types[i] = idx->frames[i].pict_type;
    }
    py::list gops;
    for (const GopRecord& g : idx->gops) {
      gops.append(py::make_tuple(g.index, g.first_frame, g.num_frames, g.pts, g.starts_with_iframe));
    }
    py::dict d;
    d["pts"] = pts;
    d["presentation_pts"] = presentation_pts;
    d["decode_index"] = decode_index;
    d["packet_size"] = packet_size;
    d["key_packet"] = key;
    d["pict_types"] = types;
    d["gops"] = gops;
    d["pts_valid"] = idx->pts_valid;
    return d;
  }

  py::dict stats() {
    const ReaderStats& s = reader().stats();
    py::dict d;
    d["packets"] = s.packets;
    d["frames"] = s.frames;
    d["frames_decoded"] = s.frames_decoded;
    d["skipped_packets"] = s.skipped_packets;
    d["corrupt_frames"] = s.corrupt_frames;
    d["decode_errors"] = s.decode_errors;
    d["frames_reordered"] = s.frames_reordered;
    d["frames_retimed"] = s.frames_retimed;
    d["frames_pts_synthesized"] = s.frames_pts_synthesized;
    d["truncated"] = s.truncated;
    d["truncation"] = s.truncation;
    d["stream_info_probed"] = s.stream_info_probed;
    d["residual_seconds"] = s.residual_ns * 1e-9;
    d["copy_seconds"] = s.copy_ns * 1e-9;
    d["reference_searches"] = s.reference_searches;
    d["reference_search_exhausted"] = s.reference_search_exhausted;
    d["frames_predicted_by_decoder"] = s.frames_predicted_by_decoder;
    d["bframes_without_prediction"] = s.bframes_without_prediction;
    d["frames_without_export"] = s.frames_without_export;
    return d;
  }

  void close() { reader_.reset(); }

 private:
  std::string path_;
  std::unique_ptr<VideoReader> reader_;
};

}  // namespace

// One block of motion-compensated prediction, exposed so tests can hold the interpolation against a
// slow reference written from the standards.
py::array_t<uint8_t> predict(py::array_t<uint8_t, py::array::c_style | py::array::forcecast> ref, int x, int y,
                             int mv_x, int mv_y, int w, int h, const std::string& method) {
  if (ref.ndim() != 2) throw std::invalid_argument("ref must be 2-D");
  if (w < 1 || h < 1 || w > kMaxBlock || h > kMaxBlock) throw std::invalid_argument("block must be 1..16 wide and high");
  Plane plane{ref.data(), static_cast<int>(ref.shape(1)), static_cast<int>(ref.shape(1)), static_cast<int>(ref.shape(0))};
  py::array_t<uint8_t> out({h, w});
  uint8_t* dst = out.mutable_data();
  if (method == "h264") {
    predict_h264_qpel(plane, x, y, mv_x, mv_y, w, h, dst, w);
  } else if (method == "halfpel") {
    predict_halfpel(plane, x, y, mv_x, mv_y, w, h, false, dst, w);
  } else if (method == "halfpel_no_rounding") {
    predict_halfpel(plane, x, y, mv_x, mv_y, w, h, true, dst, w);
  } else if (method == "bilinear_qpel") {
    predict_bilinear_qpel(plane, x, y, mv_x, mv_y, w, h, dst, w);
  } else {
    throw std::invalid_argument("method must be one of h264, halfpel, halfpel_no_rounding, bilinear_qpel");
  }
  return out;
}

// Sum of absolute differences of the w x h blocks at the top-left of two planes, by the kernel in use (tests
// compare the instruction-set builds on every block size).
int block_sad(py::array_t<uint8_t, py::array::c_style | py::array::forcecast> a,
              py::array_t<uint8_t, py::array::c_style | py::array::forcecast> b, int w, int h) {
  if (a.ndim() != 2 || b.ndim() != 2) throw std::invalid_argument("a and b must be 2-D");
  if (w < 1 || h < 1 || w > a.shape(1) || h > a.shape(0) || w > b.shape(1) || h > b.shape(0)) {
    throw std::invalid_argument("the block must fit in both planes");
  }
  return pixel_kernels().sad(a.data(), static_cast<int>(a.shape(1)), b.data(), static_cast<int>(b.shape(1)), w, h);
}

// The residual of the w x h block at the top-left of cur against pred, and its SAD, from the fused kernel the
// reference search takes its first candidate's residual and cost from (tests compare it with numpy).
py::tuple block_subtract_sad(py::array_t<uint8_t, py::array::c_style | py::array::forcecast> cur,
                             py::array_t<uint8_t, py::array::c_style | py::array::forcecast> pred, int w, int h) {
  if (cur.ndim() != 2 || pred.ndim() != 2) throw std::invalid_argument("cur and pred must be 2-D");
  if (w < 1 || h < 1 || w > cur.shape(1) || h > cur.shape(0) || w > pred.shape(1) || h > pred.shape(0)) {
    throw std::invalid_argument("the block must fit in both planes");
  }
  py::array_t<int16_t> out({h, w});
  const int sad = pixel_kernels().subtract_sad(cur.data(), static_cast<int>(cur.shape(1)), pred.data(),
                                               static_cast<int>(pred.shape(1)), out.mutable_data(), w, w, h);
  return py::make_tuple(out, sad);
}

// cur minus the rounded-up average of a and b over the w x h block at their top-left: the residual of a
// bi-predicted block as the fused kernel computes it.
py::array_t<int16_t> block_average_subtract(py::array_t<uint8_t, py::array::c_style | py::array::forcecast> cur,
                                            py::array_t<uint8_t, py::array::c_style | py::array::forcecast> a,
                                            py::array_t<uint8_t, py::array::c_style | py::array::forcecast> b, int w,
                                            int h) {
  for (const auto* p : {&cur, &a, &b}) {
    if (p->ndim() != 2) throw std::invalid_argument("cur, a and b must be 2-D");
    if (w < 1 || h < 1 || w > p->shape(1) || h > p->shape(0)) throw std::invalid_argument("the block must fit in every plane");
  }
  if (w > kMaxBlock) throw std::invalid_argument("blocks are at most 16 wide");
  py::array_t<int16_t> out({h, w});
  pixel_kernels().average_subtract(cur.data(), static_cast<int>(cur.shape(1)), a.data(), static_cast<int>(a.shape(1)),
                                   b.data(), static_cast<int>(b.shape(1)), out.mutable_data(), w, w, h);
  return out;
}

// The block-matching stages of codecprim.ops.motion_estimation (block_matching.h): (T, H, W) uint8 stacks and
// int32 per-block arrays in, new int32 arrays out; the GIL is released while they run.
using LumaArray = py::array_t<uint8_t, py::array::c_style | py::array::forcecast>;
using IntArray = py::array_t<int32_t, py::array::c_style | py::array::forcecast>;

LumaStack luma_stack(const LumaArray& cur, const LumaArray& ref) {
  if (cur.ndim() != 3 || ref.ndim() != 3) throw std::invalid_argument("cur and ref must be (T, H, W)");
  for (int d = 0; d < 3; ++d) {
    if (cur.shape(d) != ref.shape(d)) throw std::invalid_argument("cur and ref must have one shape");
  }
  if (cur.shape(0) < 1 || cur.shape(1) < 1 || cur.shape(2) < 1) throw std::invalid_argument("frames must be non-empty");
  return {cur.data(), static_cast<int>(cur.shape(0)), static_cast<int>(cur.shape(1)), static_cast<int>(cur.shape(2))};
}

// A grid of blocks covering the frames (the outputs rely on it: every pixel belongs to one block).
BlockGrid block_grid(const LumaStack& frames, int rows, int cols, int size, int margin) {
  if (rows < 1 || cols < 1 || size < 1 || margin < 0) {
    throw std::invalid_argument("grid needs rows, cols and size >= 1 and margin >= 0");
  }
  if (static_cast<int64_t>(rows) * size < frames.height || static_cast<int64_t>(cols) * size < frames.width) {
    throw std::invalid_argument("the grid must cover the frame");
  }
  return {rows, cols, size, margin};
}

void check_blocks(const IntArray& a, py::ssize_t blocks, py::ssize_t per_block, const char* name) {
  if (a.size() != blocks * per_block) {
    throw std::invalid_argument(std::string(name) + " must hold " + std::to_string(per_block) + " int32 per block");
  }
}

py::tuple me_block_search(const LumaArray& cur, const LumaArray& ref, std::array<int, 4> grid_rcsm,
                          const IntArray& centres, int radius, const IntArray& extras, int num_extras,
                          const IntArray& pred_q, int level, int limit_q, int lam) {
  const LumaStack c = luma_stack(cur, ref);
  const BlockGrid grid = block_grid(c, grid_rcsm[0], grid_rcsm[1], grid_rcsm[2], grid_rcsm[3]);
  if (radius < 0 || num_extras < 0 || level < 0 || level > 15) {
    throw std::invalid_argument("radius and num_extras must be >= 0 and level in [0, 15]");
  }
  const py::ssize_t blocks = static_cast<py::ssize_t>(c.frames) * grid.rows * grid.cols;
  check_blocks(centres, blocks, 2, "centres");
  check_blocks(pred_q, blocks, 2, "pred_q");
  check_blocks(extras, blocks, 2 * num_extras, "extras");
  IntArray vec({blocks, py::ssize_t{2}}), cost(blocks);
  {
    py::gil_scoped_release release;
    block_search(c, {ref.data(), c.frames, c.height, c.width}, grid, centres.data(), radius, extras.data(),
                 num_extras, pred_q.data(), level, limit_q, lam, vec.mutable_data(), cost.mutable_data());
  }
  return py::make_tuple(vec, cost);
}

py::tuple me_subpel(const LumaArray& cur, const LumaArray& ref, std::array<int, 3> grid_rcs, const IntArray& vectors,
                    const IntArray& base_cost, const IntArray& pred_q, int limit_q, int lam) {
  const LumaStack c = luma_stack(cur, ref);
  const BlockGrid grid = block_grid(c, grid_rcs[0], grid_rcs[1], grid_rcs[2], 0);
  const py::ssize_t blocks = static_cast<py::ssize_t>(c.frames) * grid.rows * grid.cols;
  check_blocks(vectors, blocks, 2, "vectors");
  check_blocks(base_cost, blocks, 1, "base_cost");
  check_blocks(pred_q, blocks, 2, "pred_q");
  IntArray q({blocks, py::ssize_t{2}}), cost(blocks);
  {
    py::gil_scoped_release release;
    subpel_refine(c, {ref.data(), c.frames, c.height, c.width}, grid, vectors.data(), base_cost.data(),
                  pred_q.data(), limit_q, lam, q.mutable_data(), cost.mutable_data());
  }
  return py::make_tuple(q, cost);
}

py::array_t<int16_t> me_residual(const LumaArray& cur, const LumaArray& ref, std::array<int, 3> grid_rcs,
                                const IntArray& vectors_q, const LumaArray& zero) {
  const LumaStack c = luma_stack(cur, ref);
  const BlockGrid grid = block_grid(c, grid_rcs[0], grid_rcs[1], grid_rcs[2], 0);
  const py::ssize_t blocks = static_cast<py::ssize_t>(c.frames) * grid.rows * grid.cols;
  check_blocks(vectors_q, blocks, 2, "vectors_q");
  if (zero.size() != blocks) throw std::invalid_argument("zero must hold one flag per block");
  py::array_t<int16_t> out({cur.shape(0), cur.shape(1), cur.shape(2)});
  {
    py::gil_scoped_release release;
    block_residual(c, {ref.data(), c.frames, c.height, c.width}, grid, vectors_q.data(), zero.data(),
                   out.mutable_data());
  }
  return out;
}

LumaArray me_downsample(const LumaArray& src) {
  const LumaStack s = luma_stack(src, src);
  LumaArray out({src.shape(0), (src.shape(1) + 1) / 2, (src.shape(2) + 1) / 2});
  {
    py::gil_scoped_release release;
    downsample_2x2(s, out.mutable_data());
  }
  return out;
}

py::array_t<int64_t> me_structure(const LumaArray& cur, std::array<int, 3> grid_rcs) {
  const LumaStack c = luma_stack(cur, cur);
  const BlockGrid grid = block_grid(c, grid_rcs[0], grid_rcs[1], grid_rcs[2], 0);
  py::array_t<int64_t> out({static_cast<py::ssize_t>(c.frames) * grid.rows * grid.cols, py::ssize_t{3}});
  {
    py::gil_scoped_release release;
    block_structure(c, grid, out.mutable_data());
  }
  return out;
}

// The saliency ops' CPU implementations (camera_fit.h, motion_energy.h, residual_energy.h): numpy arrays in
// (Python has checked their shapes), new arrays out; the GIL is released while they run.
using F64Array = py::array_t<double, py::array::c_style | py::array::forcecast>;
using F32Array = py::array_t<float, py::array::c_style | py::array::forcecast>;
using I64Array = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;
using I16Array = py::array_t<int16_t, py::array::c_style | py::array::forcecast>;

CameraFitOptions camera_options(int model, int iterations, double trim_fraction, double cutoff,
                                double min_threshold, int min_vectors) {
  if (model < 0 || model > 3) throw std::invalid_argument("camera model code must be 0..3");
  return {static_cast<CameraModel>(model), iterations, trim_fraction, cutoff, min_threshold, min_vectors};
}

void check_size(const py::array& a, py::ssize_t size, const char* name) {
  if (a.size() != size) throw std::invalid_argument(std::string(name) + " has " + std::to_string(a.size()) +
                                                    " values, expected " + std::to_string(size));
}

py::tuple fit_camera_cpu(const F64Array& centres, const F64Array& motion, const LumaArray& valid,
                         const std::optional<F64Array>& weights, int model, int iterations, double trim_fraction,
                         double cutoff, double min_threshold, int min_vectors) {
  if (centres.ndim() != 3 || centres.shape(2) != 2) throw std::invalid_argument("centres must be (B, N, 2)");
  const py::ssize_t batch = centres.shape(0), n = centres.shape(1);
  check_size(motion, batch * n * 2, "motion");
  check_size(valid, batch * n, "valid");
  if (weights) check_size(*weights, batch * n, "weights");
  const CameraFitOptions options = camera_options(model, iterations, trim_fraction, cutoff, min_threshold, min_vectors);
  py::array_t<float> matrix({batch, py::ssize_t{2}, py::ssize_t{3}});
  py::array_t<uint8_t> fallback(batch), inliers({batch, n});
  {
    py::gil_scoped_release release;
    fit_camera_batch(centres.data(), motion.data(), valid.data(), weights ? weights->data() : nullptr, batch, n,
                     options, matrix.mutable_data(), fallback.mutable_data(), inliers.mutable_data());
  }
  return py::make_tuple(matrix, fallback, inliers);
}

py::tuple block_motion_cpu(const std::vector<IntArray>& frames, const std::vector<int64_t>& counts,
                           std::array<int, 4> sizes, int model, int iterations, double trim_fraction, double cutoff,
                           double min_threshold, int min_vectors) {
  if (frames.size() != counts.size()) throw std::invalid_argument("one count per frame of vectors");
  std::vector<const int32_t*> rows;
  int64_t total = 0;
  for (size_t t = 0; t < frames.size(); ++t) {
    check_size(frames[t], counts[t] * kMotionVectorColumns, "a frame's vector rows");
    rows.push_back(frames[t].data());
    total += counts[t];
  }
  const MotionGeometry geometry{sizes[0], sizes[1], sizes[2], sizes[3]};
  if (geometry.height < 1 || geometry.width < 1) throw std::invalid_argument("frame size must be positive");
  const CameraFitOptions options = camera_options(model, iterations, trim_fraction, cutoff, min_threshold, min_vectors);
  py::array_t<int32_t> rects({static_cast<py::ssize_t>(total), py::ssize_t{4}});
  py::array_t<float> length2(total);
  py::array_t<uint8_t> fallback(static_cast<py::ssize_t>(frames.size()));
  {
    py::gil_scoped_release release;
    block_motion(rows, counts, geometry, options, rects.mutable_data(), length2.mutable_data(),
                 fallback.mutable_data());
  }
  return py::make_tuple(rects, length2, fallback);
}

py::tuple pool_motion_cpu(const IntArray& rects, const F32Array& length, const std::vector<int64_t>& counts,
                          std::array<int, 2> frame_size, std::array<int, 2> grid) {
  const py::ssize_t frames = static_cast<py::ssize_t>(counts.size());
  int64_t total = 0;
  for (const int64_t c : counts) total += c;
  check_size(rects, total * 4, "rects");
  check_size(length, total, "length");
  if (grid[0] < 1 || grid[1] < 1 || frame_size[0] < grid[0] || frame_size[1] < grid[1]) {
    throw std::invalid_argument("the grid must have between 1 cell and one cell per pixel along each axis");
  }
  py::array_t<float> sum_v({frames, static_cast<py::ssize_t>(grid[0]), static_cast<py::ssize_t>(grid[1])});
  py::array_t<int64_t> sum_a({frames, static_cast<py::ssize_t>(grid[0]), static_cast<py::ssize_t>(grid[1])});
  {
    py::gil_scoped_release release;
    pool_motion(rects.data(), length.data(), counts, frame_size[0], frame_size[1], grid[0], grid[1],
                sum_v.mutable_data(), sum_a.mutable_data());
  }
  return py::make_tuple(sum_v, sum_a);
}

py::tuple field_at_size_cpu(const IntArray& rows, int height, int width, std::array<int, 2> size, bool with_mask) {
  if (rows.ndim() != 2 || rows.shape(1) != kMotionVectorColumns) {
    throw std::invalid_argument("rows must be (N, " + std::to_string(kMotionVectorColumns) + ") int32");
  }
  if (height < 1 || width < 1 || size[0] < 1 || size[1] < 1) {
    throw std::invalid_argument("the coded size and the output size must be positive");
  }
  py::array_t<float> field({static_cast<py::ssize_t>(size[0]), static_cast<py::ssize_t>(size[1]), py::ssize_t{2}});
  py::object mask = py::none();
  uint8_t* mask_data = nullptr;
  if (with_mask) {
    py::array_t<bool> m({static_cast<py::ssize_t>(size[0]), static_cast<py::ssize_t>(size[1])});
    mask_data = reinterpret_cast<uint8_t*>(m.mutable_data());
    mask = std::move(m);
  }
  {
    py::gil_scoped_release release;
    field_at_size(rows.data(), rows.shape(0), height, width, size[0], size[1], field.mutable_data(), mask_data);
  }
  return py::make_tuple(field, mask);
}

py::array_t<int64_t> residual_sums_cpu(const I16Array& residual, std::array<int, 2> grid) {
  if (residual.ndim() != 3) throw std::invalid_argument("residual must be (T, H, W)");
  const int height = static_cast<int>(residual.shape(1)), width = static_cast<int>(residual.shape(2));
  if (grid[0] < 1 || grid[1] < 1 || height < grid[0] || width < grid[1]) {
    throw std::invalid_argument("the grid must have between 1 cell and one cell per pixel along each axis");
  }
  py::array_t<int64_t> sums({residual.shape(0), static_cast<py::ssize_t>(grid[0]), static_cast<py::ssize_t>(grid[1])});
  {
    py::gil_scoped_release release;
    residual_cell_sums(residual.data(), residual.shape(0), height, width, grid[0], grid[1], sums.mutable_data());
  }
  return sums;
}

py::array_t<uint8_t> resize_patches_cpu(const std::vector<LumaArray>& frames, std::array<int, 2> size,
                                        const I64Array& cells, int patch) {
  if (frames.empty() || frames[0].ndim() < 2) throw std::invalid_argument("frames must be (..., H, W) planes");
  const py::ssize_t nd = frames[0].ndim();
  PatchResizeShape shape;
  shape.height = static_cast<int>(frames[0].shape(nd - 2));
  shape.width = static_cast<int>(frames[0].shape(nd - 1));
  shape.planes = static_cast<int>(frames[0].size() / (static_cast<py::ssize_t>(shape.height) * shape.width));
  shape.out_height = size[0];
  shape.out_width = size[1];
  shape.patch = patch;
  std::vector<const uint8_t*> planes;
  for (const LumaArray& f : frames) {
    if (f.size() != frames[0].size()) throw std::invalid_argument("frames must have one shape");
    planes.push_back(f.data());
  }
  if (cells.ndim() != 2 || cells.shape(1) != 3) throw std::invalid_argument("cells must be (K, 3)");
  if (patch < 1 || size[0] % patch || size[1] % patch) throw std::invalid_argument("patch must divide the size");
  const py::ssize_t count = cells.shape(0);
  const int64_t* c = cells.data();
  for (py::ssize_t k = 0; k < count; ++k) {
    if (c[3 * k] < 0 || c[3 * k] >= static_cast<int64_t>(frames.size()) || c[3 * k + 1] < 0 ||
        c[3 * k + 1] >= size[0] / patch || c[3 * k + 2] < 0 || c[3 * k + 2] >= size[1] / patch) {
      throw std::invalid_argument("cells must lie inside the frames and the patch grid");
    }
  }
  py::array_t<uint8_t> out({count, static_cast<py::ssize_t>(shape.planes), static_cast<py::ssize_t>(patch),
                            static_cast<py::ssize_t>(patch)});
  {
    py::gil_scoped_release release;
    resize_patches_u8(planes, shape, c, count, out.mutable_data());
  }
  return out;
}

PYBIND11_MODULE(_core, m) {
  m.doc() = "codecprim C++ core: motion vectors, residuals and GOP structure from libavcodec";

  // One gate for every core error: the package's exception types, which also subclass the builtins.
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const Error& e) {
      py::module_ errors = py::module_::import("codecprim.errors");
      const char* name = "VideoIOError";
      switch (e.kind()) {
        case ErrorKind::kNotFound: name = "VideoNotFoundError"; break;
        case ErrorKind::kInvalidData: name = "InvalidVideoError"; break;
        case ErrorKind::kUnsupported: name = "UnsupportedVideoError"; break;
        case ErrorKind::kIo: name = "VideoIOError"; break;
        case ErrorKind::kStalled: name = "VideoStallError"; break;
        case ErrorKind::kUnknownLength: name = "UnknownLengthError"; break;
      }
      py::object exc = errors.attr(name)(e.path(), e.cause());
      PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exc.ptr())), exc.ptr());
    }
  });

  m.def("predict", &predict, py::arg("ref"), py::arg("x"), py::arg("y"), py::arg("mv_x"), py::arg("mv_y"), py::arg("w"),
        py::arg("h"), py::arg("method"));
  m.def("block_sad", &block_sad, py::arg("a"), py::arg("b"), py::arg("w"), py::arg("h"));
  m.def("block_subtract_sad", &block_subtract_sad, py::arg("cur"), py::arg("pred"), py::arg("w"), py::arg("h"));
  m.def("block_average_subtract", &block_average_subtract, py::arg("cur"), py::arg("a"), py::arg("b"), py::arg("w"),
        py::arg("h"));
  // The instruction set the pixel kernels run with ("avx2", "sse2" or "baseline"; CODECPRIM_SIMD lowers it).
  m.def("me_block_search", &me_block_search, py::arg("cur"), py::arg("ref"), py::arg("grid"), py::arg("centres"),
        py::arg("radius"), py::arg("extras"), py::arg("num_extras"), py::arg("pred_q"), py::arg("level"),
        py::arg("limit_q"), py::arg("lam"));
  m.def("me_subpel", &me_subpel, py::arg("cur"), py::arg("ref"), py::arg("grid"), py::arg("vectors"),
        py::arg("base_cost"), py::arg("pred_q"), py::arg("limit_q"), py::arg("lam"));
  m.def("me_residual", &me_residual, py::arg("cur"), py::arg("ref"), py::arg("grid"), py::arg("vectors_q"),
        py::arg("zero"));
  m.def("me_downsample", &me_downsample, py::arg("src"));
  m.def("me_structure", &me_structure, py::arg("cur"), py::arg("grid"));
  m.def("fit_camera", &fit_camera_cpu, py::arg("centres"), py::arg("motion"), py::arg("valid"), py::arg("weights"),
        py::arg("model"), py::arg("iterations"), py::arg("trim_fraction"), py::arg("cutoff"), py::arg("min_threshold"),
        py::arg("min_vectors"));
  m.def("block_motion", &block_motion_cpu, py::arg("frames"), py::arg("counts"), py::arg("sizes"), py::arg("model"), py::arg("iterations"), py::arg("trim_fraction"), py::arg("cutoff"), py::arg("min_threshold"),
        py::arg("min_vectors"));
  m.def("pool_motion", &pool_motion_cpu, py::arg("rects"), py::arg("length"), py::arg("counts"), py::arg("frame_size"),
        py::arg("grid"));
  m.def("field_at_size", &field_at_size_cpu, py::arg("rows"), py::arg("height"), py::arg("width"), py::arg("size"),
        py::arg("with_mask") = false);
  m.def("residual_sums", &residual_sums_cpu, py::arg("residual"), py::arg("grid"));
  m.def("resize_patches", &resize_patches_cpu, py::arg("frames"), py::arg("size"), py::arg("cells"), py::arg("patch"));
  m.def("simd_level", [] { return std::string(simd_level_name(pixel_kernels().level)); });
  m.def("set_ffmpeg_log_level", &set_ffmpeg_log_level, py::arg("level"));
  m.def("ffmpeg_log_level", &ffmpeg_log_level);
  m.def("motion_vector_columns", []() {
    py::tuple names(kMotionVectorColumns);
    for (int i = 0; i < kMotionVectorColumns; ++i) names[i] = motion_vector_column_names()[i];
    return names;
  });
  m.def("ffmpeg_versions", []() {
    py::dict d;
    auto text = [](unsigned v) {
      return std::to_string(AV_VERSION_MAJOR(v)) + "." + std::to_string(AV_VERSION_MINOR(v)) + "." +
             std::to_string(AV_VERSION_MICRO(v));
    };
    d["libavcodec"] = text(avcodec_version());
    d["libavformat"] = text(avformat_version());
    d["libavutil"] = text(avutil_version());
    d["ffmpeg"] = av_version_info();
    return d;
  });

  // Recipe + overrides (name -> text) -> the encode; progress(done, expected) is called with the GIL held.
  m.def("transcode_options", [](const std::string& recipe, const std::map<std::string, std::string>& overrides) {
    return transcode_option_values(transcode_options(recipe, overrides));
  }, py::arg("recipe"), py::arg("overrides"));
  m.def("transcode", [](const std::string& src, const std::string& dst, const std::string& recipe,
                        const std::map<std::string, std::string>& overrides, py::object progress) {
    TranscodeOptions options = transcode_options(recipe, overrides);
    TranscodeProgress report;
    if (!progress.is_none()) report = [&progress](int64_t done, int64_t expected) {
      py::gil_scoped_acquire gil;
      progress(done, expected);
    };
    TranscodeResult r;
    {
      py::gil_scoped_release release;
      r = transcode(src, dst, options, report);
    }
    py::dict d;
    d["frames_decoded"] = r.frames_decoded;
    d["frames_encoded"] = r.frames_encoded;
    d["packets_skipped"] = r.packets_skipped;
    d["codec"] = r.codec;
    d["fps"] = r.fps;
    return d;
  }, py::arg("src"), py::arg("dst"), py::arg("recipe"), py::arg("overrides"), py::arg("progress"));

  py::class_<PyReader>(m, "Reader")
      .def(py::init<const py::object&, const std::string&, bool, bool, int, bool, bool, double, bool>(),
           py::arg("source"), py::arg("name"), py::arg("is_path"), py::arg("residuals") = true, py::arg("threads") = 1,
           py::arg("strict") = false, py::arg("chroma") = false, py::arg("stall_seconds") = 60.0,
           py::arg("pixels") = true)
      .def("info", [](PyReader& r) { return info_dict(r.reader().info()); })
      .def("next", &PyReader::next)
      .def("index", &PyReader::index)
      .def("stats", &PyReader::stats)
      .def("seek_to_frame", [](PyReader& r, int64_t i) {
        py::gil_scoped_release release;
        r.reader().seek_to_frame(i);
      })
      .def("resumable_from", [](PyReader& r) { return r.reader().resumable_from(); })
      .def("reads_as_iteration", [](PyReader& r) { return r.reader().reads_as_iteration(); })
      .def("seeks_by_keyframe", [](PyReader& r) {
        py::gil_scoped_release release;  // builds the index on first use
        return r.reader().seeks_by_keyframe();
      })
      .def("rewind", [](PyReader& r) {
        py::gil_scoped_release release;
        r.reader().rewind();
      })
      .def(
          "request",
          [](PyReader& r, std::vector<int64_t> indices, bool skip_nonref) {
            py::gil_scoped_release release;
            r.reader().request(std::move(indices), skip_nonref);
          },
          py::arg("indices"), py::arg("skip_nonref") = true)
      .def("sum_residual_cells", [](PyReader& r, int hg, int wg) { r.reader().sum_residual_cells(hg, wg); })
      .def("close", &PyReader::close);
}

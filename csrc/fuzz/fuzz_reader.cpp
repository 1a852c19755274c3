// libFuzzer harness over the core's entry points, as the Python reader drives them: open, the parser pass
// (index: frames and GOPs), a full decode with residuals and chroma, the motion-vector-only path, and
// seeks (read_gop of the last and first GOP, frames_at of a few frames). Built with CODECPRIM_FUZZ; run by
// scripts/fuzz.sh. The only allowed outcome besides frames is a codecprim::Error; anything else (a
// sanitizer report, another exception, a leak, a timeout) is a finding.
//
// The input reaches the reader as bytes in memory, through the same custom AVIO context that serves
// codecprim.open(bytes) and file objects (csrc/input_source.h), so that input path is fuzzed too.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

extern "C" {
#include <libavutil/log.h>
}

#include "errors.h"
#include "input_source.h"
#include "video_reader.h"

namespace {

// Each path is bounded so one input cannot run for long: a 5 s per-input timeout is a finding. Mutated
// headers often declare huge pictures; decoding those only costs time (as FFmpeg's own fuzzers cap
// max_pixels), so they are opened but not decoded. 256x256 still admits odd sizes such as 330x190.
constexpr int64_t kMaxFrames = 64;
constexpr int64_t kMaxPixels = 256 * 256;

// Touches every output byte, so reading past a buffer the core allocated short is seen by ASan.
uint64_t consume(const codecprim::FrameData& f) {
  uint64_t sum = static_cast<uint64_t>(f.index) + static_cast<uint64_t>(f.motion_vectors.count);
  const codecprim::OwnedBuffer<int32_t>& mv = f.motion_vectors.rows;
  for (size_t i = 0; i < mv.size(); ++i) sum += static_cast<uint64_t>(mv.data()[i]);
  for (size_t i = 0; i < f.luma.size(); ++i) sum += f.luma.data()[i];
  for (size_t i = 0; i < f.residual.size(); ++i) sum += static_cast<uint64_t>(f.residual.data()[i]);
  for (size_t i = 0; i < f.chroma.size(); ++i) sum += f.chroma.data()[i];
  for (size_t i = 0; i < f.qp.size(); ++i) sum += static_cast<uint64_t>(f.qp.data()[i]);
  return sum;
}

uint64_t read_all(codecprim::VideoReader& reader) {
  codecprim::FrameData frame;
  uint64_t sum = 0;
  for (int64_t n = 0; n < kMaxFrames && reader.next(frame); ++n) sum += consume(frame);
  return sum;
}

// reader.frames_at / read_gop: seek to a display index, then read forward to `stop` (exclusive).
uint64_t read_range(codecprim::VideoReader& reader, int64_t start, int64_t stop) {
  reader.seek_to_frame(start);
  codecprim::FrameData frame;
  uint64_t sum = 0;
  for (int64_t n = 0; n < kMaxFrames && reader.next(frame) && frame.index < stop; ++n) sum += consume(frame);
  return sum;
}

// The paths of the Python reader. One per input keeps an execution to one or two opens, which is what the
// time goes to; the last byte picks it and stays part of the file, so a finding replays byte for byte.
enum class Path { kDecode, kMotionVectorsOnly, kIndexAndSeeks };

uint64_t run(const uint8_t* data, size_t size, Path which) {
  codecprim::ReaderOptions options;
  options.residuals = which != Path::kMotionVectorsOnly;
  options.chroma = which == Path::kDecode;
  const codecprim::Input input{"<fuzz input>", std::make_shared<codecprim::MemorySource>(data, size)};
  codecprim::VideoReader reader(input, options);
  if (static_cast<int64_t>(reader.info().width) * reader.info().height > kMaxPixels) return 0;
  if (which != Path::kIndexAndSeeks) return read_all(reader);
  // reader.read_gop(-1), then frames_at([n // 2]): a seek backwards (a reopen where seeking is inexact).
  const codecprim::StreamIndex& index = reader.index();
  const int64_t total = static_cast<int64_t>(index.frames.size());
  if (total == 0 || index.gops.empty()) return 0;
  const codecprim::GopRecord last = index.gops.back();
  const uint64_t sum = read_range(reader, last.first_frame, last.first_frame + last.num_frames);
  return sum + read_range(reader, total / 2, total / 2 + 1);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  av_log_set_level(AV_LOG_QUIET);  // FFmpeg's complaints about damaged input are expected, and slow
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const Path which = static_cast<Path>(data[size - 1] % 3);
  volatile uint64_t sink = 0;
  try {
    sink = sink + run(data, size, which);
  } catch (const codecprim::Error&) {
    // a typed error naming the file: the intended outcome for damaged input
  }
  return 0;
}

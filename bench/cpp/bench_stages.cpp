// Per-stage cost of codecprim's core on one file, one thread, as a ratio to bare decoding:
//   demux              av_read_frame over the video stream
//   decode             demux + plain avcodec decoding: the baseline
//   + export_mvs       decoding with FFmpeg's motion-vector export (what any vector extractor pays)
//   + no deblock       the same with the loop filter skipped: the fastest route to the vectors libavcodec
//                      offers, so the bound for an MV-only path (H.264 ignores skip_idct)
//   reader mv-only     the reader's motion-vector-only path (loop filter / IDCT skipped)
//   reader full        the reader with luma, residuals and vectors
//   + outputs written  decode + export_mvs, and each frame's luma and a residual-sized int16 plane written into
//                      fresh (pooled) buffers the way the reader writes them (streaming stores), nothing
//                      computed: the floor of any full extraction that hands over those two planes
// plus, inside the full run, the time spent copying vectors/planes and computing residuals. Each stage is timed
// by wall clock and by this thread's CPU time (best of the repeats for each): on a shared machine the CPU-time
// ratio is the steadier one.
// Usage: bench_stages VIDEO [repeats [STAGE]]
// With STAGE (decode, export, export-no-deblock, outputs, mv-only or full) only that stage runs, once per repeat,
// and prints its time: the form to profile under perf or callgrind.
#include <chrono>
#include <cstdio>
#include <ctime>
#include <algorithm>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "errors.h"
#include "ffmpeg.h"
#include "owned_buffer.h"
#include "simd_dispatch.h"
#include "video_reader.h"

using namespace codecprim;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

enum class Libav { kDemux, kDecode, kExport, kExportNoDeblock, kExportOutputs };

// Returns the packets demuxed (kDemux) or frames decoded.
long run_libav(const std::string& path, Libav mode) {
  const bool decode = mode != Libav::kDemux;
  AVFormatContext* raw = nullptr;
  if (avformat_open_input(&raw, path.c_str(), nullptr, nullptr) < 0) throw Error(ErrorKind::kIo, path, "open failed");
  FormatContextPtr fmt(raw);
  if (avformat_find_stream_info(fmt.get(), nullptr) < 0) throw Error(ErrorKind::kIo, path, "no stream info");
  const int stream = av_find_best_stream(fmt.get(), AVMEDIA_TYPE_VIDEO, -1, -1, nullptr, 0);
  if (stream < 0) throw Error(ErrorKind::kInvalidData, path, "no video stream");
  const AVCodec* codec = avcodec_find_decoder(fmt->streams[stream]->codecpar->codec_id);
  CodecContextPtr ctx(avcodec_alloc_context3(codec));
  avcodec_parameters_to_context(ctx.get(), fmt->streams[stream]->codecpar);
  ctx->thread_count = 1;
  AVDictionary* raw_opts = nullptr;
  if (mode == Libav::kExport || mode == Libav::kExportNoDeblock || mode == Libav::kExportOutputs) {
    av_dict_set(&raw_opts, "flags2", "+export_mvs", 0);
  }
  if (mode == Libav::kExportNoDeblock) av_dict_set(&raw_opts, "skip_loop_filter", "all", 0);
  const int opened = avcodec_open2(ctx.get(), codec, &raw_opts);
  std::unique_ptr<AVDictionary, DictionaryFreer> opts(raw_opts);
  if (opened < 0) throw Error(ErrorKind::kIo, path, "decoder open failed");
  PacketPtr packet(av_packet_alloc());
  FramePtr frame(av_frame_alloc());
  long count = 0;
  const PixelKernels& kernels = pixel_kernels();
  std::vector<int16_t> strip;  // a row of tiles' residual, as the reader streams it out (here zeros)
  // The planes the reader hands over for a frame, written as it writes them: luma rows and residual strips of
  // 16 rows, each streamed out once.
  auto write_outputs = [&](const AVFrame* f) {
    const int w = f->width - static_cast<int>(f->crop_left + f->crop_right);
    const int h = f->height - static_cast<int>(f->crop_top + f->crop_bottom);
    OwnedBuffer<uint8_t> luma(static_cast<size_t>(w) * h);
    OwnedBuffer<int16_t> residual(static_cast<size_t>(w) * h);
    strip.resize(static_cast<size_t>(16) * w);
    const uint8_t* top = f->data[0] + static_cast<std::ptrdiff_t>(f->crop_top) * f->linesize[0] + f->crop_left;
    for (int y = 0; y < h; y += 16) {
      const int rows = std::min(16, h - y);
      kernels.stream_rows(reinterpret_cast<const uint8_t*>(strip.data()), 0,
                          reinterpret_cast<uint8_t*>(residual.data() + static_cast<size_t>(y) * w), 0,
                          static_cast<size_t>(rows) * w * sizeof(int16_t), 1);
      kernels.stream_rows(top + static_cast<std::ptrdiff_t>(y) * f->linesize[0], f->linesize[0],
                          luma.data() + static_cast<size_t>(y) * w, w, static_cast<size_t>(w), rows);
    }
  };
  auto drain = [&]() {
    while (avcodec_receive_frame(ctx.get(), frame.get()) == 0) {
      ++count;
      if (mode == Libav::kExportOutputs) write_outputs(frame.get());
      av_frame_unref(frame.get());
    }
  };
  while (av_read_frame(fmt.get(), packet.get()) >= 0) {
    PacketScope scope(packet.get());
    if (packet->stream_index != stream) continue;
    if (!decode) {
      ++count;
      continue;
    }
    avcodec_send_packet(ctx.get(), packet.get());
    drain();
  }
  if (decode) {
    avcodec_send_packet(ctx.get(), nullptr);
    drain();
  }
  return count;
}

struct ReaderRun {
  long frames = 0;
  ReaderStats stats;
};

ReaderRun run_reader(const std::string& path, bool residuals) {
  ReaderOptions options;
  options.residuals = residuals;
  options.pixels = residuals;  // without residuals: the MV-only path (pixels stay on by default since they became an option)
  VideoReader reader(path, options);
  FrameData frame;
  ReaderRun run;
  while (reader.next(frame)) ++run.frames;
  run.stats = reader.stats();
  return run;
}

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

struct Timing {
  double wall = 1e30;
  double cpu = 1e30;
};

template <typename F>
Timing best_of(int repeats, F&& body) {
  Timing best;
  for (int i = 0; i < repeats; ++i) {
    const auto start = Clock::now();
    const double cpu0 = thread_cpu_seconds();
    body();
    best.cpu = std::min(best.cpu, thread_cpu_seconds() - cpu0);
    best.wall = std::min(best.wall, seconds_since(start));
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s VIDEO [repeats [decode|export|export-no-deblock|outputs|mv-only|full]]\n", argv[0]);
    return 2;
  }
  const std::string path = argv[1];
  const int repeats = argc > 2 ? std::atoi(argv[2]) : 3;
  try {
    if (argc > 3) {
      const std::string stage = argv[3];
      Timing t;
      if (stage == "decode") {
        t = best_of(repeats, [&] { run_libav(path, Libav::kDecode); });
      } else if (stage == "export") {
        t = best_of(repeats, [&] { run_libav(path, Libav::kExport); });
      } else if (stage == "export-no-deblock") {  // MV-only's bound
        t = best_of(repeats, [&] { run_libav(path, Libav::kExportNoDeblock); });
      } else if (stage == "outputs") {  // full extraction's floor
        t = best_of(repeats, [&] { run_libav(path, Libav::kExportOutputs); });
      } else if (stage == "mv-only" || stage == "full") {
        double residual_ms = 1e30;  // the residual pass alone, per frame, best run
        t = best_of(repeats, [&] {
          const ReaderRun run = run_reader(path, stage == "full");
          if (run.frames > 0) residual_ms = std::min(residual_ms, 1e-6 * run.stats.residual_ns / run.frames);
        });
        if (stage == "full") std::printf("residual pass: %.4f ms/frame\n", residual_ms);
      } else {
        std::fprintf(stderr, "unknown stage %s (decode, export, export-no-deblock, outputs, mv-only, full)\n", stage.c_str());
        return 2;
      }
      std::printf("%s: %.3f s wall, %.3f s CPU\n", stage.c_str(), t.wall, t.cpu);
      return 0;
    }
    // Stages interleaved, repeat by repeat, so that load on a shared machine hits them alike.
    long frames = 0;
    ReaderRun full_run;
    Timing demux, decode, exported, no_deblock, outputs, mv_only, full;
    for (int r = 0; r < repeats; ++r) {
      auto keep_best = [](Timing& best, const Timing& t) {
        best.wall = std::min(best.wall, t.wall);
        best.cpu = std::min(best.cpu, t.cpu);
      };
      keep_best(demux, best_of(1, [&] { frames = run_libav(path, Libav::kDemux); }));
      keep_best(decode, best_of(1, [&] { run_libav(path, Libav::kDecode); }));
      keep_best(exported, best_of(1, [&] { run_libav(path, Libav::kExport); }));
      keep_best(no_deblock, best_of(1, [&] { run_libav(path, Libav::kExportNoDeblock); }));
      keep_best(outputs, best_of(1, [&] { run_libav(path, Libav::kExportOutputs); }));
      keep_best(mv_only, best_of(1, [&] { run_reader(path, false); }));
      keep_best(full, best_of(1, [&] { full_run = run_reader(path, true); }));
    }
    const double n = static_cast<double>(full_run.frames);
    std::printf("file: %s  frames: %ld  (best of %d, one thread)\n", path.c_str(), full_run.frames, repeats);
    std::printf("%-34s %10s %10s %8s %12s %14s\n", "stage", "ms/frame", "fps", "x decode", "CPU ms/frame",
                "x decode (CPU)");
    auto row = [&](const char* name, const Timing& t) {
      std::printf("%-34s %10.3f %10.1f %8.2f %12.3f %14.2f\n", name, 1e3 * t.wall / n, n / t.wall, decode.wall / t.wall,
                  1e3 * t.cpu / n, decode.cpu / t.cpu);
    };
    row("demux", demux);
    row("decode (bare libavcodec)", decode);
    row("decode + export_mvs", exported);
    row("decode + export_mvs, no deblock", no_deblock);
    row("decode + export_mvs + outputs", outputs);
    row("reader mv-only", mv_only);
    row("reader full", full);
    // The reader times these by thread CPU time: they belong to the CPU column.
    std::printf("%-34s %10s %10s %8s %12.3f\n", "  of which copies", "", "", "", 1e3 * full_run.stats.copy_ns * 1e-9 / n);
    std::printf("%-34s %10s %10s %8s %12.3f\n", "  of which residuals", "", "", "",
                1e3 * full_run.stats.residual_ns * 1e-9 / n);
    (void)frames;
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}

#include "transcoder.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <system_error>

#include "errors.h"
#include "ffmpeg.h"

extern "C" {
#include <libavutil/opt.h>
#include <libavutil/parseutils.h>
}

namespace codecprim {
namespace {

namespace fs = std::filesystem;

void check(int ret, const std::string& path, const std::string& what) {
  if (ret < 0) throw_av_error(ret, path, what);
}

TranscodeOptions recipe(const char* codec, const char* fps, int gop, int qscale) {
  TranscodeOptions o;
  o.codec = codec;
  o.fps = fps;
  o.gop = gop;
  o.qscale = qscale;
  return o;
}

int to_int(const std::string& name, const std::string& value, long long lo, long long hi) {
  size_t used = 0;
  long long v = 0;
  try {
    v = std::stoll(value, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != value.size() || v < lo || v > hi) {
    throw std::invalid_argument("transcode option " + name + " must be an integer in [" + std::to_string(lo) + ", " +
                                std::to_string(hi) + "]; got '" + value + "'");
  }
  return static_cast<int>(v);
}

AVRational parse_rate(const std::string& text) {
  AVRational rate{0, 1};
  if (av_parse_video_rate(&rate, text.c_str()) < 0 || rate.num <= 0 || rate.den <= 0) {
    throw std::invalid_argument("transcode option fps must be 'source' or a positive rate such as 30 or 30000/1001; got '" +
                                text + "'");
  }
  return rate;
}

// The destination's temporary twin: removed unless the finished file was renamed onto the destination.
class TempFile {
 public:
  explicit TempFile(const std::string& dst) {
    static std::atomic<int> counter{0};
    fs::path target(dst);
    path_ = (target.parent_path() / ("." + target.filename().string() + ".part-" + std::to_string(getpid()) + "-" +
                                     std::to_string(counter++)))
                .string();
  }
  ~TempFile() {
    if (!committed_) std::remove(path_.c_str());
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::string& path() const { return path_; }
  void commit(const std::string& dst) {
    std::error_code ec;
    fs::rename(path_, dst, ec);
    if (ec) throw Error(ErrorKind::kIo, dst, "renaming the finished file into place failed (" + ec.message() + ")");
    committed_ = true;
  }

 private:
  std::string path_;
  bool committed_ = false;
};

// Encoder settings a recipe fixes beyond AVCodecContext's fields: fixed GOPs (no scene-cut keyframes),
// B-frames and references through the x264/x265 parameter strings, as the OneVision and CoPE scripts pass them.
void encoder_dictionary(const TranscodeOptions& o, AVDictionary** dict) {
  const std::string gop = std::to_string(o.gop);
  const std::string structure = "keyint=" + gop + ":min-keyint=" + gop + ":scenecut=0:bframes=" +
                                std::to_string(o.bframes) + ":ref=" + std::to_string(o.refs);
  if (o.codec == "libx264") {
    av_dict_set(dict, "x264-params", structure.c_str(), 0);
  } else if (o.codec == "libx265") {
    // One worker pool of `threads` threads and one frame thread keep x265's output the same on every run.
    const std::string x265 = structure + ":open-gop=0:log-level=error:frame-threads=1:pools=" + std::to_string(o.threads);
    av_dict_set(dict, "x265-params", x265.c_str(), 0);
  } else {
    // libavcodec's own encoders (mpeg4, ...) start a new GOP on a scene change unless the threshold is out of reach.
    av_dict_set(dict, "sc_threshold", "1000000000", 0);
  }
  if (o.crf >= 0) av_dict_set(dict, "crf", std::to_string(o.crf).c_str(), 0);
  if (!o.preset.empty()) av_dict_set(dict, "preset", o.preset.c_str(), 0);
}

class Transcoder {
 public:
  Transcoder(std::string src, std::string dst, TranscodeOptions options, const TranscodeProgress& progress)
      : src_(std::move(src)), dst_(std::move(dst)), o_(std::move(options)), progress_(progress), temp_(dst_) {}

  TranscodeResult run() {
    open_input();
    open_output_format();
    packet_.reset(av_packet_alloc());
    frame_.reset(av_frame_alloc());
    filtered_.reset(av_frame_alloc());
    if (!packet_ || !frame_ || !filtered_) throw Error(ErrorKind::kIo, src_, "out of memory");
    while (true) {
      int ret = av_read_frame(input_.get(), packet_.get());
      if (ret == AVERROR_EOF) break;
      check(ret, src_, "reading a packet");
      PacketScope scope(packet_.get());
      if (packet_->stream_index != stream_) continue;
      ret = avcodec_send_packet(decoder_.get(), packet_.get());
      if (ret == AVERROR_INVALIDDATA) {
        ++result_.packets_skipped;
        continue;
      }
      check(ret, src_, "decoding a packet");
      receive_frames();
    }
    check(avcodec_send_packet(decoder_.get(), nullptr), src_, "flushing the decoder");
    receive_frames();
    if (!graph_) throw Error(ErrorKind::kInvalidData, src_, "no frame could be decoded");
    // The stream ends one frame duration after the last frame, so the rate conversion fills the last interval too.
    check(av_buffersrc_close(source_, last_pts_ + last_duration_, 0), dst_, "flushing the filter graph");
    drain_filters();
    encode(nullptr);
    check(av_write_trailer(output_.get()), dst_, "finishing the container");
    output_.reset();  // closes the temporary file before it is renamed
    temp_.commit(dst_);
    if (progress_) progress_(result_.frames_encoded, result_.frames_encoded);
    return result_;
  }

 private:
  void open_input() {
    AVFormatContext* raw = nullptr;
    check(avformat_open_input(&raw, src_.c_str(), nullptr, nullptr), src_, "opening the file");
    input_.reset(raw);
    check(avformat_find_stream_info(input_.get(), nullptr), src_, "reading the stream info");
    const AVCodec* codec = nullptr;
    stream_ = av_find_best_stream(input_.get(), AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
    check(stream_, src_, "finding a decodable video stream");
    AVStream* st = input_->streams[stream_];
    decoder_.reset(avcodec_alloc_context3(codec));
    if (!decoder_) throw Error(ErrorKind::kIo, src_, "out of memory");
    check(avcodec_parameters_to_context(decoder_.get(), st->codecpar), src_, "copying the stream parameters");
    decoder_->pkt_timebase = st->time_base;
    decoder_->thread_count = o_.threads;
    check(avcodec_open2(decoder_.get(), codec, nullptr), src_, "opening the decoder");
    rate_ = o_.fps == "source" ? av_guess_frame_rate(input_.get(), st, nullptr) : parse_rate(o_.fps);
    if (rate_.num <= 0 || rate_.den <= 0) {
      throw Error(ErrorKind::kInvalidData, src_, "the stream has no frame rate; pass fps= explicitly");
    }
    if (o_.fps == "source" && st->nb_frames > 0) {
      expected_ = st->nb_frames;
    } else if (input_->duration > 0) {
      expected_ = av_rescale_q(input_->duration, AV_TIME_BASE_Q, av_inv_q(rate_));
    }
  }

  void open_output_format() {
    const AVOutputFormat* format = av_guess_format(nullptr, dst_.c_str(), nullptr);
    if (!format) throw std::invalid_argument(dst_ + ": no container is known for this file name's extension");
    encoder_codec_ = avcodec_find_encoder_by_name(o_.codec.c_str());
    if (!encoder_codec_ || encoder_codec_->type != AVMEDIA_TYPE_VIDEO) {
      throw Error(ErrorKind::kUnsupported, dst_, "this FFmpeg build has no video encoder named '" + o_.codec + "'");
    }
    AVFormatContext* raw = nullptr;
    check(avformat_alloc_output_context2(&raw, format, nullptr, temp_.path().c_str()), dst_, "creating the container");
    output_.reset(raw);
  }

  // The graph is built from the first decoded frame, whose size and pixel format are then known.
  void build_filters(const AVFrame* frame) {
    AVStream* st = input_->streams[stream_];
    graph_.reset(avfilter_graph_alloc());
    if (!graph_) throw Error(ErrorKind::kIo, src_, "out of memory");
    graph_->nb_threads = o_.threads;
    AVRational sar = frame->sample_aspect_ratio.den ? frame->sample_aspect_ratio : AVRational{0, 1};
    const std::string args = "video_size=" + std::to_string(frame->width) + "x" + std::to_string(frame->height) +
                             ":pix_fmt=" + std::to_string(frame->format) + ":time_base=" +
                             std::to_string(st->time_base.num) + "/" + std::to_string(st->time_base.den) +
                             ":pixel_aspect=" + std::to_string(sar.num) + "/" + std::to_string(sar.den);
    check(avfilter_graph_create_filter(&source_, avfilter_get_by_name("buffer"), "in", args.c_str(), nullptr,
                                       graph_.get()),
          src_, "creating the filter graph's source");
    check(avfilter_graph_create_filter(&sink_, avfilter_get_by_name("buffersink"), "out", nullptr, nullptr,
                                       graph_.get()),
          src_, "creating the filter graph's sink");
    std::string chain = "fps=fps=" + std::to_string(rate_.num) + "/" + std::to_string(rate_.den);
    if (o_.width != 0 || o_.height != 0) {
      // An unset side keeps the aspect ratio, rounded to an even size (4:2:0 needs one).
      chain += ",scale=w=" + std::to_string(o_.width ? o_.width : -2) + ":h=" + std::to_string(o_.height ? o_.height : -2);
    }
    chain += ",format=pix_fmts=" + o_.pix_fmt;
    FilterInOutPtr outputs(avfilter_inout_alloc());
    FilterInOutPtr inputs(avfilter_inout_alloc());
    if (!outputs || !inputs) throw Error(ErrorKind::kIo, src_, "out of memory");
    outputs->name = av_strdup("in");
    outputs->filter_ctx = source_;
    inputs->name = av_strdup("out");
    inputs->filter_ctx = sink_;
    AVFilterInOut* out_raw = outputs.release();
    AVFilterInOut* in_raw = inputs.release();
    int ret = avfilter_graph_parse_ptr(graph_.get(), chain.c_str(), &in_raw, &out_raw, nullptr);
    outputs.reset(out_raw);
    inputs.reset(in_raw);
    check(ret, dst_, "parsing the filter graph '" + chain + "'");
    check(avfilter_graph_config(graph_.get(), nullptr), dst_, "configuring the filter graph '" + chain + "'");
    open_encoder();
  }

  void open_encoder() {
    encoder_.reset(avcodec_alloc_context3(encoder_codec_));
    if (!encoder_) throw Error(ErrorKind::kIo, dst_, "out of memory");
    AVCodecContext* e = encoder_.get();
    e->width = av_buffersink_get_w(sink_);
    e->height = av_buffersink_get_h(sink_);
    e->pix_fmt = static_cast<AVPixelFormat>(av_buffersink_get_format(sink_));
    e->sample_aspect_ratio = av_buffersink_get_sample_aspect_ratio(sink_);
    e->time_base = av_buffersink_get_time_base(sink_);
    e->framerate = rate_;
    e->gop_size = o_.gop;
    e->max_b_frames = o_.bframes;
    e->refs = o_.refs;
    e->thread_count = o_.threads;
    if (o_.qscale > 0) {
      e->flags |= AV_CODEC_FLAG_QSCALE;
      e->global_quality = FF_QP2LAMBDA * o_.qscale;
    }
    if (o_.bit_rate > 0) e->bit_rate = o_.bit_rate;
    if (output_->oformat->flags & AVFMT_GLOBALHEADER) e->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    AVDictionary* raw = nullptr;
    encoder_dictionary(o_, &raw);
    int ret = avcodec_open2(e, encoder_codec_, &raw);
    std::unique_ptr<AVDictionary, DictionaryFreer> unused(raw);
    check(ret, dst_, "opening the " + o_.codec + " encoder");
    for (const AVDictionaryEntry* t = nullptr; (t = av_dict_get(unused.get(), "", t, AV_DICT_IGNORE_SUFFIX));) {
      if (std::string(t->key) != "sc_threshold") {
        throw Error(ErrorKind::kUnsupported, dst_, "the " + o_.codec + " encoder has no option '" + t->key + "'");
      }
    }
    AVStream* out = avformat_new_stream(output_.get(), nullptr);
    if (!out) throw Error(ErrorKind::kIo, dst_, "out of memory");
    check(avcodec_parameters_from_context(out->codecpar, e), dst_, "copying the encoder parameters");
    out->time_base = e->time_base;
    out->avg_frame_rate = rate_;
    if (!(output_->oformat->flags & AVFMT_NOFILE)) {
      check(avio_open(&output_->pb, temp_.path().c_str(), AVIO_FLAG_WRITE), dst_, "creating the output file");
    }
    check(avformat_write_header(output_.get(), nullptr), dst_, "writing the container header");
    result_.codec = o_.codec;
    result_.fps = std::to_string(rate_.num) + "/" + std::to_string(rate_.den);
  }

  void receive_frames() {
    while (true) {
      int ret = avcodec_receive_frame(decoder_.get(), frame_.get());
      if (ret == AVERROR(EAGAIN) || ret == AVERROR_EOF) return;
      if (ret == AVERROR_INVALIDDATA) {
        ++result_.packets_skipped;
        continue;
      }
      check(ret, src_, "decoding a frame");
      ++result_.frames_decoded;
      frame_->pts = frame_->best_effort_timestamp;
      if (frame_->pts != AV_NOPTS_VALUE) {
        if (last_pts_ != AV_NOPTS_VALUE && frame_->pts > last_pts_) last_duration_ = frame_->pts - last_pts_;
        last_pts_ = frame_->pts;
      }
      if (!graph_) build_filters(frame_.get());
      // Moves the frame's buffers into the graph (frame_ is left empty).
      check(av_buffersrc_add_frame_flags(source_, frame_.get(), 0), src_, "filtering a frame");
      drain_filters();
    }
  }

  void drain_filters() {
    while (true) {
      int ret = av_buffersink_get_frame(sink_, filtered_.get());
      if (ret == AVERROR(EAGAIN) || ret == AVERROR_EOF) return;
      check(ret, dst_, "filtering a frame");
      filtered_->pict_type = AV_PICTURE_TYPE_NONE;  // the encoder, not the source, decides frame types
      encode(filtered_.get());
      av_frame_unref(filtered_.get());
      ++result_.frames_encoded;
      if (progress_ && result_.frames_encoded % 16 == 0) progress_(result_.frames_encoded, expected_);
    }
  }

  void encode(const AVFrame* frame) {
    check(avcodec_send_frame(encoder_.get(), frame), dst_, "encoding a frame");
    AVStream* out = output_->streams[0];
    while (true) {
      int ret = avcodec_receive_packet(encoder_.get(), packet_.get());
      if (ret == AVERROR(EAGAIN) || ret == AVERROR_EOF) return;
      check(ret, dst_, "encoding a frame");
      PacketScope scope(packet_.get());
      packet_->stream_index = 0;
      av_packet_rescale_ts(packet_.get(), encoder_->time_base, out->time_base);
      check(av_interleaved_write_frame(output_.get(), packet_.get()), dst_, "writing a packet");
    }
  }

  std::string src_, dst_;
  TranscodeOptions o_;
  const TranscodeProgress& progress_;
  TranscodeResult result_;
  AVRational rate_{0, 1};
  int64_t expected_ = -1;
  int64_t last_pts_ = AV_NOPTS_VALUE;  // input stream time base
  int64_t last_duration_ = 0;
  int stream_ = -1;
  const AVCodec* encoder_codec_ = nullptr;
  // Declared before the output so that the output file is closed before the temporary file is removed.
  TempFile temp_;
  FormatContextPtr input_;
  CodecContextPtr decoder_;
  OutputContextPtr output_;
  CodecContextPtr encoder_;
  FilterGraphPtr graph_;
  AVFilterContext* source_ = nullptr;  // owned by graph_
  AVFilterContext* sink_ = nullptr;
  PacketPtr packet_;
  FramePtr frame_, filtered_;
};

}  // namespace

std::vector<std::string> transcode_recipe_names() { return {"cope", "onevision", "onevision-h264"}; }

TranscodeOptions transcode_recipe(const std::string& name) {
  // CoPE-VideoLM: MPEG-4 Part 2 at 30 fps, GOP 240, P-frames only.
  if (name == "cope") return recipe("mpeg4", "30", 240, 4);
  // OneVision-Encoder: HEVC, keyint 16, no B-frames, one reference; the same GOP in H.264 for exported vectors.
  if (name == "onevision") return recipe("libx265", "source", 16, 0);
  if (name == "onevision-h264") return recipe("libx264", "source", 16, 0);
  std::string names;
  for (const std::string& n : transcode_recipe_names()) names += (names.empty() ? "" : ", ") + n;
  throw std::invalid_argument("unknown transcode recipe '" + name + "'; choose one of " + names);
}

void set_transcode_option(TranscodeOptions& o, const std::string& name, const std::string& value) {
  const int kMax = 1 << 20;
  if (name == "codec") {
    if (value.empty()) throw std::invalid_argument("transcode option codec must name an encoder");
    o.codec = value;
  } else if (name == "fps") {
    if (value != "source") parse_rate(value);
    o.fps = value;
  } else if (name == "gop") {
    o.gop = to_int(name, value, 1, kMax);
  } else if (name == "bframes") {
    o.bframes = to_int(name, value, 0, 16);
  } else if (name == "refs") {
    o.refs = to_int(name, value, 1, 16);
  } else if (name == "qscale") {
    o.qscale = to_int(name, value, 0, 31);
  } else if (name == "crf") {
    o.crf = to_int(name, value, -1, 63);
  } else if (name == "bit_rate") {
    o.bit_rate = to_int(name, value, 0, 2000000000);
  } else if (name == "width" || name == "height") {
    int v = to_int(name, value, -2, 16384);
    if (v == -1 || (v > 0 && v % 2)) throw std::invalid_argument("transcode option " + name + " must be 0, -2 or an even size; got " + value);
    (name == "width" ? o.width : o.height) = v;
  } else if (name == "pix_fmt") {
    if (av_get_pix_fmt(value.c_str()) == AV_PIX_FMT_NONE) {
      throw std::invalid_argument("transcode option pix_fmt: unknown pixel format '" + value + "'");
    }
    o.pix_fmt = value;
  } else if (name == "preset") {
    o.preset = value;
  } else if (name == "threads") {
    o.threads = to_int(name, value, 1, 256);
  } else {
    std::string names;
    for (const auto& kv : transcode_option_values(o)) names += (names.empty() ? "" : ", ") + kv.first;
    throw std::invalid_argument("unknown transcode option '" + name + "'; options are " + names);
  }
}

TranscodeOptions transcode_options(const std::string& recipe, const std::map<std::string, std::string>& overrides) {
  TranscodeOptions options = transcode_recipe(recipe);
  for (const auto& [name, value] : overrides) set_transcode_option(options, name, value);
  return options;
}

std::map<std::string, std::string> transcode_option_values(const TranscodeOptions& o) {
  return {{"codec", o.codec},
          {"fps", o.fps},
          {"gop", std::to_string(o.gop)},
          {"bframes", std::to_string(o.bframes)},
          {"refs", std::to_string(o.refs)},
          {"qscale", std::to_string(o.qscale)},
          {"crf", std::to_string(o.crf)},
          {"bit_rate", std::to_string(o.bit_rate)},
          {"width", std::to_string(o.width)},
          {"height", std::to_string(o.height)},
          {"pix_fmt", o.pix_fmt},
          {"preset", o.preset},
          {"threads", std::to_string(o.threads)}};
}

TranscodeResult transcode(const std::string& src, const std::string& dst, const TranscodeOptions& options,
                          const TranscodeProgress& progress) {
  if (src.empty() || dst.empty()) throw std::invalid_argument("transcode needs a source and a destination path");
  Transcoder transcoder(src, dst, options, progress);
  return transcoder.run();
}

}  // namespace codecprim

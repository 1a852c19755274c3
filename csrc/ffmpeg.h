// The one place FFmpeg's C headers are included, with an RAII alias for every FFmpeg type the core owns.
// Nothing else calls av_*_free: ownership lives in these unique_ptrs.
#pragma once

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavfilter/avfilter.h>
#include <libavfilter/buffersink.h>
#include <libavfilter/buffersrc.h>
#include <libavformat/avformat.h>
#include <libavutil/avutil.h>
#include <libavutil/display.h>
#include <libavutil/imgutils.h>
#include <libavutil/motion_vector.h>
#include <libavutil/pixdesc.h>
#include <libavutil/video_enc_params.h>
}

#include <memory>

namespace codecprim {

struct FormatContextCloser {
  void operator()(AVFormatContext* ctx) const { avformat_close_input(&ctx); }
};
struct CodecContextFreer {
  void operator()(AVCodecContext* ctx) const { avcodec_free_context(&ctx); }
};
struct FrameFreer {
  void operator()(AVFrame* frame) const { av_frame_free(&frame); }
};
struct PacketFreer {
  void operator()(AVPacket* packet) const { av_packet_free(&packet); }
};
struct ParserCloser {
  void operator()(AVCodecParserContext* parser) const { av_parser_close(parser); }
};
struct AvioContextFreer {
  // A custom AVIO context owns the buffer it was given (FFmpeg may have replaced it while probing).
  void operator()(AVIOContext* io) const {
    av_freep(&io->buffer);
    avio_context_free(&io);
  }
};
struct DictionaryFreer {
  void operator()(AVDictionary* dict) const { av_dict_free(&dict); }
};

// An output container: closes its file (if the muxer opened one) and frees the context.
struct OutputContextCloser {
  void operator()(AVFormatContext* ctx) const {
    if (ctx->oformat && !(ctx->oformat->flags & AVFMT_NOFILE)) avio_closep(&ctx->pb);
    avformat_free_context(ctx);
  }
};
struct FilterGraphFreer {
  void operator()(AVFilterGraph* graph) const { avfilter_graph_free(&graph); }
};
struct FilterInOutFreer {
  void operator()(AVFilterInOut* io) const { avfilter_inout_free(&io); }
};

using FormatContextPtr = std::unique_ptr<AVFormatContext, FormatContextCloser>;
using OutputContextPtr = std::unique_ptr<AVFormatContext, OutputContextCloser>;
using FilterGraphPtr = std::unique_ptr<AVFilterGraph, FilterGraphFreer>;
using FilterInOutPtr = std::unique_ptr<AVFilterInOut, FilterInOutFreer>;
using CodecContextPtr = std::unique_ptr<AVCodecContext, CodecContextFreer>;
using FramePtr = std::unique_ptr<AVFrame, FrameFreer>;
using PacketPtr = std::unique_ptr<AVPacket, PacketFreer>;
using ParserPtr = std::unique_ptr<AVCodecParserContext, ParserCloser>;
using AvioContextPtr = std::unique_ptr<AVIOContext, AvioContextFreer>;

// Unrefs a packet when the scope that filled it ends, so every early return releases the payload.
class PacketScope {
 public:
  explicit PacketScope(AVPacket* packet) : packet_(packet) {}
  ~PacketScope() { av_packet_unref(packet_); }
  PacketScope(const PacketScope&) = delete;
  PacketScope& operator=(const PacketScope&) = delete;

 private:
  AVPacket* packet_;
};

}  // namespace codecprim

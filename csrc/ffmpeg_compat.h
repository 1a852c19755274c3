// Every FFmpeg version difference (4.4 ... 7.x) the core depends on, behind small named helpers,
// so the rest of the code reads as if there were one FFmpeg.
#pragma once

#include <cstdint>

#include "ffmpeg.h"

namespace codecprim::compat {

// Key-frame flag: AVFrame.key_frame was replaced by AV_FRAME_FLAG_KEY in libavutil 58.29 (FFmpeg 6.1).
inline bool frame_is_key(const AVFrame* frame) {
#if LIBAVUTIL_VERSION_INT >= AV_VERSION_INT(58, 29, 100)
  return (frame->flags & AV_FRAME_FLAG_KEY) != 0;
#else
  return frame->key_frame != 0;
#endif
}

// The stream's display matrix (rotation/flip metadata), or null. FFmpeg 6.1 moved stream side data into
// AVCodecParameters.coded_side_data and deprecated av_stream_get_side_data.
inline const int32_t* display_matrix(const AVStream* stream) {
#if LIBAVCODEC_VERSION_INT >= AV_VERSION_INT(60, 31, 102)
  const AVPacketSideData* sd = av_packet_side_data_get(stream->codecpar->coded_side_data,
                                                       stream->codecpar->nb_coded_side_data, AV_PKT_DATA_DISPLAYMATRIX);
  return sd != nullptr && sd->size >= 9 * sizeof(int32_t) ? reinterpret_cast<const int32_t*>(sd->data) : nullptr;
#else
  size_t size = 0;
  const uint8_t* data = av_stream_get_side_data(stream, AV_PKT_DATA_DISPLAYMATRIX, &size);
  return data != nullptr && size >= 9 * sizeof(int32_t) ? reinterpret_cast<const int32_t*>(data) : nullptr;
#endif
}

// Damage flag set by the decoder on frames it concealed.
inline bool frame_is_corrupt(const AVFrame* frame) {
  return (frame->flags & AV_FRAME_FLAG_CORRUPT) != 0 || frame->decode_error_flags != 0;
}

// A tag carried from a packet to the frame it produces (the packet's decode-order index). FFmpeg 6.0 added
// AV_CODEC_FLAG_COPY_OPAQUE (packet->opaque travels to frame->opaque); before, reordered_opaque did the same job.
inline void enable_packet_tags(AVCodecContext* ctx) {
#if LIBAVCODEC_VERSION_MAJOR >= 60
  ctx->flags |= AV_CODEC_FLAG_COPY_OPAQUE;
#else
  (void)ctx;
#endif
}

inline void tag_packet(AVCodecContext* ctx, AVPacket* packet, int64_t tag) {
#if LIBAVCODEC_VERSION_MAJOR >= 60
  (void)ctx;
  packet->opaque = reinterpret_cast<void*>(static_cast<intptr_t>(tag + 1));
#else
  (void)packet;
  ctx->reordered_opaque = tag + 1;
#endif
}

// Returns -1 when the frame carries no tag (e.g. a frame the decoder invented while concealing errors).
inline int64_t frame_tag(const AVFrame* frame) {
#if LIBAVCODEC_VERSION_MAJOR >= 60
  return static_cast<int64_t>(reinterpret_cast<intptr_t>(frame->opaque)) - 1;
#else
  return frame->reordered_opaque - 1;
#endif
}

// Makes dst a picture-less stand-in for src: what the reader reads from a frame it holds on the MV-only path
// (size, crop, timing, type, flags, packet tag) and src's side data by reference (av_frame_copy_props would
// deep-copy it). Returns 0 or a negative AVERROR.
inline int ref_frame_metadata(AVFrame* dst, const AVFrame* src) {
  dst->format = src->format;
  dst->width = src->width;
  dst->height = src->height;
  dst->crop_top = src->crop_top;
  dst->crop_bottom = src->crop_bottom;
  dst->crop_left = src->crop_left;
  dst->crop_right = src->crop_right;
  dst->pts = src->pts;
  dst->pkt_dts = src->pkt_dts;
  dst->best_effort_timestamp = src->best_effort_timestamp;
  dst->pict_type = src->pict_type;
  dst->flags = src->flags;
  dst->decode_error_flags = src->decode_error_flags;
#if LIBAVUTIL_VERSION_INT < AV_VERSION_INT(58, 29, 100)
  dst->key_frame = src->key_frame;
#endif
#if LIBAVCODEC_VERSION_MAJOR >= 60
  dst->opaque = src->opaque;
#else
  dst->reordered_opaque = src->reordered_opaque;
#endif
  for (int i = 0; i < src->nb_side_data; ++i) {
    const AVFrameSideData* side = src->side_data[i];
    AVBufferRef* ref = av_buffer_ref(side->buf);
    if (ref == nullptr) return AVERROR(ENOMEM);
    if (av_frame_new_side_data_from_buf(dst, side->type, ref) == nullptr) {
      av_buffer_unref(&ref);
      return AVERROR(ENOMEM);
    }
  }
  return 0;
}

// avcodec_find_decoder returns const since FFmpeg 5.0; the core always holds it as const.
inline const AVCodec* find_decoder(AVCodecID id) { return avcodec_find_decoder(id); }

// Packet flag for packets that the demuxer marks as discardable/corrupt.
inline bool packet_is_corrupt(const AVPacket* packet) { return (packet->flags & AV_PKT_FLAG_CORRUPT) != 0; }

}  // namespace codecprim::compat

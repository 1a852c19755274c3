#include "stream_index.h"

#include <algorithm>

#include "bitstream_headers.h"
#include "errors.h"
#include "ffmpeg.h"
#include "ffmpeg_compat.h"

namespace codecprim {

int64_t StreamIndex::display_index_of(int64_t pts) const {
  if (!pts_valid) return -1;
  auto it = std::lower_bound(frames.begin(), frames.end(), pts,
                             [](const IndexedFrame& f, int64_t value) { return f.pts < value; });
  if (it == frames.end() || it->pts != pts) return -1;
  return it - frames.begin();
}

int64_t StreamIndex::display_index_of_container_pts(int64_t container_pts) const {
  if (!pts_synthesized) return display_index_of(container_pts);
  auto it = std::lower_bound(by_container_pts.begin(), by_container_pts.end(), std::make_pair(container_pts, int64_t{0}));
  if (it == by_container_pts.end() || it->first != container_pts) return -1;
  return it->second;
}

int64_t StreamIndex::gop_of(int64_t display_index) const {
  auto it = std::upper_bound(gops.begin(), gops.end(), display_index,
                             [](int64_t value, const GopRecord& g) { return value < g.first_frame; });
  return it == gops.begin() ? 0 : (it - 1)->index;
}

std::vector<GopRecord> gops_from_types(const std::vector<IndexedFrame>& frames) {
  std::vector<GopRecord> gops;
  for (size_t i = 0; i < frames.size(); ++i) {
    const bool is_i = frames[i].pict_type == 'I';
    if (gops.empty() || is_i) {
      GopRecord g;
      g.index = static_cast<int64_t>(gops.size());
      g.first_frame = static_cast<int64_t>(i);
      g.pts = frames[i].pts;
      g.starts_with_iframe = is_i;
      gops.push_back(g);
    }
    ++gops.back().num_frames;
  }
  return gops;
}

std::vector<IndexedFrame> display_order_from_anchors(std::vector<IndexedFrame> decode_order) {
  std::vector<IndexedFrame> display;
  display.reserve(decode_order.size());
  bool holding = false;
  IndexedFrame held;
  for (IndexedFrame& f : decode_order) {
    if (f.pict_type == 'B') {
      display.push_back(f);
      continue;
    }
    if (holding) display.push_back(held);
    held = f;
    holding = true;
  }
  if (holding) display.push_back(held);
  return display;
}

std::vector<IndexedFrame> display_order_from_poc(std::vector<IndexedFrame> decode_order) {
  int64_t period = -1;
  std::vector<std::pair<int64_t, size_t>> keys;  // (IDR period, position in decode order)
  for (size_t i = 0; i < decode_order.size(); ++i) {
    if (decode_order[i].idr || period < 0) ++period;
    keys.emplace_back(period, i);
  }
  std::stable_sort(keys.begin(), keys.end(), [&](const auto& a, const auto& b) {
    if (a.first != b.first) return a.first < b.first;
    return decode_order[a.second].poc < decode_order[b.second].poc;
  });
  std::vector<IndexedFrame> display;
  display.reserve(decode_order.size());
  for (const auto& key : keys) display.push_back(decode_order[key.second]);
  return display;
}

char picture_type_char(int type, bool key) {
  switch (type) {
    case AV_PICTURE_TYPE_I:
    case AV_PICTURE_TYPE_SI: return 'I';
    case AV_PICTURE_TYPE_P:
    case AV_PICTURE_TYPE_SP:
    case AV_PICTURE_TYPE_S: return 'P';
    case AV_PICTURE_TYPE_B:
    case AV_PICTURE_TYPE_BI: return 'B';
    default: return key ? 'I' : 'P';
  }
}

namespace {

int reorder_depth_of(const std::vector<IndexedFrame>& frames) {
  int depth = 0;
  for (size_t d = 0; d < frames.size(); ++d) {
    int later_shown_earlier_decoded = 0;
    for (size_t k = d + 1; k < frames.size() && k <= d + 32; ++k) {
      if (frames[k].decode_index < frames[d].decode_index) ++later_shown_earlier_decoded;
    }
    depth = std::max(depth, later_shown_earlier_decoded);
  }
  return std::min(depth, 16);
}

// Display order from the bitstream alone, for streams without usable pts.
std::vector<IndexedFrame> display_order_from_bitstream(AVCodecID id, std::vector<IndexedFrame> decode_order) {
  if (id == AV_CODEC_ID_H264 || id == AV_CODEC_ID_HEVC) return display_order_from_poc(std::move(decode_order));
  return display_order_from_anchors(std::move(decode_order));
}

bool in_decode_order(const std::vector<IndexedFrame>& frames) {
  for (size_t i = 0; i < frames.size(); ++i) {
    if (frames[i].decode_index != static_cast<int64_t>(i)) return false;
  }
  return true;
}

// pts present and strictly increasing in decode order, while the bitstream shows pictures are reordered:
// the container stores decode times (see StreamIndex::pts_synthesized). On success `frames` is in display order.
bool pts_are_decode_times(AVCodecID id, std::vector<IndexedFrame>& frames) {
  if (frames.size() < 2) return false;
  for (size_t i = 0; i < frames.size(); ++i) {
    if (frames[i].pts == AV_NOPTS_VALUE || (i > 0 && frames[i].pts <= frames[i - 1].pts)) return false;
  }
  std::vector<IndexedFrame> display = display_order_from_bitstream(id, frames);
  if (display.size() != frames.size() || in_decode_order(display)) return false;
  frames = std::move(display);
  return true;
}

}  // namespace

void fill_presentation_times(StreamIndex& index, int64_t frame_duration) {
  std::vector<IndexedFrame>& frames = index.frames;
  const int64_t n = static_cast<int64_t>(frames.size());
  int64_t first_known = -1;
  for (int64_t i = 0; i < n && first_known < 0; ++i) {
    if (frames[static_cast<size_t>(i)].pts != AV_NOPTS_VALUE) first_known = i;
  }
  index.untimed = first_known < 0;
  int64_t last_known = -1;
  for (int64_t i = 0; i < n; ++i) {
    IndexedFrame& f = frames[static_cast<size_t>(i)];
    if (f.pts != AV_NOPTS_VALUE) {
      f.presentation_pts = f.pts;
      last_known = i;
    } else if (last_known >= 0) {
      f.presentation_pts = frames[static_cast<size_t>(last_known)].pts + (i - last_known) * frame_duration;
    } else if (first_known >= 0) {
      f.presentation_pts = frames[static_cast<size_t>(first_known)].pts - (first_known - i) * frame_duration;
    } else {
      f.presentation_pts = i * frame_duration;
    }
  }
}

StreamIndex build_stream_index(const Input& input, int stream_index, StallGuard* guard) {
  const std::string& path = input.name;
  OpenedInput opened;
  auto check_stall = [&]() {
    if (guard != nullptr && guard->tripped()) {
      throw Error(ErrorKind::kStalled, path, "indexing made no progress for " + std::to_string(guard->seconds()) +
                                                 " s (stall_seconds)");
    }
    if (!opened.source_error().empty()) throw Error(ErrorKind::kIo, path, "reading the source failed: " + opened.source_error());
  };
  int ret = opened.open(input, guard);
  check_stall();
  if (ret < 0) throw_av_error(ret, path, "cannot reopen the input to index it");
  AVFormatContext* fmt = opened.format();
  // Where the header declares the streams, it holds all the index reads; probing would decode frames (seven of
  // H.264 to guess its reorder delay: 12 ms of a 720p clip's 14 ms index pass) that the index never uses.
  if (!declares_streams_in_header(fmt) || stream_index < 0 || stream_index >= static_cast<int>(fmt->nb_streams) ||
      fmt->streams[stream_index]->codecpar->codec_type != AVMEDIA_TYPE_VIDEO) {
    ret = avformat_find_stream_info(fmt, nullptr);
    check_stall();
    if (ret < 0) throw_av_error(ret, path, "cannot read stream information to index it");
  }
  if (stream_index < 0 || stream_index >= static_cast<int>(fmt->nb_streams)) {
    throw Error(ErrorKind::kInvalidData, path, "video stream vanished while indexing");
  }
  const AVStream* stream = fmt->streams[stream_index];
  for (unsigned i = 0; i < fmt->nb_streams; ++i) {
    fmt->streams[i]->discard = static_cast<int>(i) == stream_index ? AVDISCARD_DEFAULT : AVDISCARD_ALL;
  }

  // The parser reads parameter sets from the extradata through a codec context that never decodes.
  CodecContextPtr ctx(avcodec_alloc_context3(nullptr));
  if (!ctx) throw Error(ErrorKind::kIo, path, "out of memory allocating a parser context");
  ret = avcodec_parameters_to_context(ctx.get(), stream->codecpar);
  if (ret < 0) throw_av_error(ret, path, "cannot copy codec parameters");
  ParserPtr parser(av_parser_init(stream->codecpar->codec_id));
  if (parser) parser->flags |= PARSER_FLAG_COMPLETE_FRAMES;

  const AVCodecID id = stream->codecpar->codec_id;
  Mpeg4Vol vol;
  if (id == AV_CODEC_ID_MPEG4 && stream->codecpar->extradata != nullptr) {
    mpeg4_vop_rounding(stream->codecpar->extradata, static_cast<size_t>(stream->codecpar->extradata_size), vol);
  }
  const size_t extradata_size = static_cast<size_t>(std::max(0, stream->codecpar->extradata_size));
  const int nal_length_size = id == AV_CODEC_ID_HEVC ? hevc_nal_length_size(stream->codecpar->extradata, extradata_size)
                                                     : h264_nal_length_size(stream->codecpar->extradata, extradata_size);

  StreamIndex index;
  PacketPtr packet(av_packet_alloc());
  int64_t decode_index = 0;
  std::vector<int64_t> discarded;  // decode indices of packets the demuxer marks for the decoder to drop
  size_t vops_waiting = 0;  // MPEG-4 VOPs read but not yet decoded: libavcodec decodes one per packet
  std::vector<int64_t> slot_pts;  // MPEG-4: every packet's pts in decode order, N-VOP placeholders included
  bool packed = false;            // MPEG-4: some packet carries two VOPs (packed B-frames)
  while (true) {
    ret = av_read_frame(fmt, packet.get());
    check_stall();
    if (ret < 0) break;  // end of file or a damaged tail: the index covers what can be read
    PacketScope scope(packet.get());
    if (packet->stream_index != stream_index) continue;
    if (guard != nullptr) guard->progress();
    IndexedFrame f;
    f.pts = packet->pts;
    f.container_pts = packet->pts;
    // Before an edit list's start (MP4): libavcodec decodes the picture and returns nothing.
    if (packet->flags & AV_PKT_FLAG_DISCARD) discarded.push_back(decode_index);
    f.decode_index = decode_index++;
    f.packet_size = packet->size;
    f.key_packet = (packet->flags & AV_PKT_FLAG_KEY) != 0;
    int type = AV_PICTURE_TYPE_NONE;
    if (id == AV_CODEC_ID_MPEG4) {
      // One row per coded VOP, as the decoder outputs them: a packed packet (P-VOP + B-VOP) gives two, and the
      // N-VOP packet that follows it none, so the count and the types match the decoder's.
      const std::vector<Mpeg4Vop> vops = mpeg4_coded_vops(packet->data, static_cast<size_t>(packet->size), vol);
      for (size_t v = 0; v < vops.size(); ++v) {
        IndexedFrame vop = f;
        vop.pict_type = vops[v].type;
        vop.packet_size = static_cast<int64_t>(vops[v].size);
        vop.key_packet = f.key_packet && vops[v].type == 'I';
        if (v > 0) vop.pts = vop.container_pts = AV_NOPTS_VALUE;  // the container timed the packet, not this VOP
        index.frames.push_back(vop);
      }
      vops_waiting += vops.size();
      if (vops_waiting > 0) --vops_waiting;
      slot_pts.push_back(packet->pts);
      packed |= vops.size() > 1;
      continue;
    }
    if (id == AV_CODEC_ID_H263 || id == AV_CODEC_ID_H263P) {
      // FFmpeg's H.263 parser only splits frames; the picture type is read from the header.
      const char t = parse_h263_picture(packet->data, static_cast<size_t>(packet->size)).type;
      type = t == 'I' ? AV_PICTURE_TYPE_I : t == 'B' ? AV_PICTURE_TYPE_B : t == 'P' ? AV_PICTURE_TYPE_P : type;
    } else if (parser) {
      uint8_t* out = nullptr;
      int out_size = 0;
      av_parser_parse2(parser.get(), ctx.get(), &out, &out_size, packet->data, packet->size, packet->pts, packet->dts,
                       packet->pos);
      type = parser->pict_type;
      f.poc = parser->output_picture_number;
    }
    f.pict_type = picture_type_char(type, f.key_packet);
    if (id == AV_CODEC_ID_H264 && h264_has_idr(packet->data, static_cast<size_t>(packet->size), nal_length_size)) {
      // The parser reads the first slice header only; a damaged one ("a non-intra slice in an IDR NAL unit")
      // would make an IDR picture that decodes from its other slices look like a P-frame.
      f.idr = true;
      f.pict_type = 'I';
    }
    if (id == AV_CODEC_ID_HEVC) f.idr = hevc_resets_poc(packet->data, static_cast<size_t>(packet->size), nal_length_size);
    index.frames.push_back(f);
  }

  // libavcodec decodes one VOP per packet and keeps a packed one for the next packet; VOPs still waiting after
  // the last packet are never output (FFmpeg's and PyAV's frame counts are short by as many).
  index.frames.resize(index.frames.size() - std::min(vops_waiting, index.frames.size()));
  if (packed) {
    // Packing moves a B-VOP into the packet before its own, and leaves an N-VOP in its place: the container's
    // times belong to the packets' slots, which the VOPs fill in decode order (as mpeg4_unpack_bframes puts them
    // back). The decoder returns every VOP one packet later, so its frames carry these times too; timing the VOPs
    // by the packet that carried them ran the whole table one frame early.
    // (container_pts stays the carrying packet's: seeks aim at packets.)
    for (size_t k = 0; k < index.frames.size(); ++k) {
      index.frames[k].pts = k < slot_pts.size() ? slot_pts[k] : AV_NOPTS_VALUE;
    }
  }

  if (pts_are_decode_times(id, index.frames)) {
    index.pts_synthesized = true;
  } else {
    // Display order is pts order; without distinct pts (raw elementary streams) the bitstream's order.
    index.pts_valid = !index.frames.empty();
    for (const IndexedFrame& f : index.frames) {
      if (f.pts == AV_NOPTS_VALUE) index.pts_valid = false;
    }
    if (index.pts_valid) {
      std::stable_sort(index.frames.begin(), index.frames.end(),
                       [](const IndexedFrame& a, const IndexedFrame& b) { return a.pts < b.pts; });
      for (size_t i = 1; i < index.frames.size(); ++i) {
        if (index.frames[i].pts == index.frames[i - 1].pts) index.pts_valid = false;
      }
    }
    if (!index.pts_valid) {
      std::vector<IndexedFrame> display = display_order_from_bitstream(id, index.frames);
      if (!display.empty()) index.frames = std::move(display);
    }
  }
  index.reorder_depth = reorder_depth_of(index.frames);
  if (!discarded.empty()) {
    index.frames.erase(std::remove_if(index.frames.begin(), index.frames.end(),
                                      [&](const IndexedFrame& f) {
                                        return std::binary_search(discarded.begin(), discarded.end(), f.decode_index);
                                      }),
                       index.frames.end());
  }
  if (index.pts_synthesized) {
    std::vector<int64_t> times;
    for (const IndexedFrame& f : index.frames) times.push_back(f.container_pts);
    std::sort(times.begin(), times.end());
    for (size_t i = 0; i < index.frames.size(); ++i) {
      index.frames[i].pts = times[i];
      index.by_container_pts.emplace_back(index.frames[i].container_pts, static_cast<int64_t>(i));
    }
    std::sort(index.by_container_pts.begin(), index.by_container_pts.end());
  }
  index.gops = gops_from_types(index.frames);
  return index;
}

}  // namespace codecprim

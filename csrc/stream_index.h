// The frame table of a video stream without decoding it: one demux pass with FFmpeg's bitstream parser
// (slice/VOP/picture headers only) gives each frame's type, pts and packet size; sorting by pts gives
// display order, and GOPs follow (a GOP starts at every I-frame; frames before the first I-frame form GOP 0).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "input_source.h"

namespace codecprim {

struct IndexedFrame {
  int64_t pts = 0;           // stream time base; AV_NOPTS_VALUE when the container has none
  // The pts the container stores for its packet (the decoder gives it to the frame); equal to pts except
  // where the index synthesised pts (StreamIndex::pts_synthesized).
  int64_t container_pts = 0;
  int64_t decode_index = 0;  // position of its packet in the stream
  int64_t packet_size = 0;   // bytes
  char pict_type = '?';      // 'I', 'P', 'B' ('I' for key packets of codecs without a parser)
  bool key_packet = false;   // the demuxer marks it seekable
  int64_t poc = 0;           // H.264/HEVC picture order count (display order within an IDR period), from the parser
  bool idr = false;          // H.264/HEVC: the access unit holds an IDR (or BLA) picture: POC restarts
  // The time the frame is shown at: pts, or where the container stores none, one filled in by
  // fill_presentation_times (AV_NOPTS_VALUE until then).
  int64_t presentation_pts = 0;
};

struct GopRecord {
  int64_t index = 0;
  int64_t first_frame = 0;   // display index
  int64_t num_frames = 0;
  int64_t pts = 0;           // of its first frame (its I-frame, except a GOP 0 made of leading non-I frames)
  bool starts_with_iframe = false;
};

struct StreamIndex {
  std::vector<IndexedFrame> frames;  // display order
  std::vector<GopRecord> gops;
  bool pts_valid = true;             // every frame has a distinct pts, so display order and seeking are exact
  // The container's pts follow decode order on a stream whose pictures are reordered: they are decode times
  // written as presentation times (a raw stream remuxed into MP4 as `ffmpeg -i raw.h264 -c copy out.mp4`
  // makes: the raw demuxer has no pts, so the muxer writes pts = dts). Display order then comes from the
  // bitstream (H.264 POC, the anchor rule of MPEG-1/2/4 and H.263), and frame i of it gets the i-th smallest
  // container pts: the same times, given to the pictures in the order they are shown.
  bool pts_synthesized = false;
  // No frame has a pts (raw elementary streams, H.264 in AVI): every time is filled in (fill_presentation_times).
  bool untimed = false;
  // Frames a decoder must hold back to output in display order: the most frames decoded before one frame
  // that are displayed after it (looking at most 32 frames ahead, capped at 16, H.264's largest DPB).
  int reorder_depth = 0;

  // Display index of the frame with this pts, or -1.
  int64_t display_index_of(int64_t pts) const;
  // Display index of the frame whose packet the container stamped with this pts, or -1.
  int64_t display_index_of_container_pts(int64_t container_pts) const;

  // (container pts, display index), sorted, where they differ from pts.
  std::vector<std::pair<int64_t, int64_t>> by_container_pts;
  // GOP that holds a display index.
  int64_t gop_of(int64_t display_index) const;

};

// Builds the index of stream `stream_index` of the input (opened separately, so a reader's position is untouched).
// A read that makes no progress for the guard's time throws ErrorKind::kStalled.
StreamIndex build_stream_index(const Input& input, int stream_index, StallGuard* guard);

// Display order of an H.264/HEVC stream without usable pts: pictures sorted by POC within each IDR period.
std::vector<IndexedFrame> display_order_from_poc(std::vector<IndexedFrame> decode_order);

// Display order of a stream whose B-pictures are never references (MPEG-1/2/4 Part 2, H.263): each I/P
// picture is shown once the next one arrives, B-pictures at once. Used when the container gives no usable pts.
std::vector<IndexedFrame> display_order_from_anchors(std::vector<IndexedFrame> decode_order);

// 'I', 'P' or 'B' for an AVPictureType (S/SP count as P, SI as I, BI as B); unknown types by the key flag.
char picture_type_char(int av_picture_type, bool key);

// Gives every frame a presentation time: its pts where it has one; otherwise the nearest earlier frame's with
// one frame duration per frame between them (the nearest later frame's, counted back, before the first), and
// display index x frame duration on a stream that stores no pts at all (raw elementary streams, H.264 in AVI),
// where the decoded frames take these times too.
void fill_presentation_times(StreamIndex& index, int64_t frame_duration);

// GOP table from per-frame types in display order (the rule stated above).
std::vector<GopRecord> gops_from_types(const std::vector<IndexedFrame>& frames);

}  // namespace codecprim

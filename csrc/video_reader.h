// Streams a video's frames in display order with their codec primitives: exported motion vectors,
// the decoded luma, its residual against the motion-compensated prediction, GOP structure and per-frame
// metadata. Only the reference pictures are kept, so memory is flat in video length.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "bitstream_headers.h"
#include "errors.h"
#include "ffmpeg.h"
#include "input_source.h"
#include "motion_vectors.h"
#include "owned_buffer.h"
#include "bframe_prediction.h"
#include "residual.h"
#include "residual_energy.h"
#include "stream_index.h"

namespace codecprim {

struct ReaderOptions {
  bool residuals = true;  // rebuild each inter frame's prediction and return luma minus it (needs pixels)
  bool pixels = true;     // decode fully and return the pictures; false only with residuals: the MV-only fast path
  int threads = 1;        // slice threads (deterministic, unlike frame threading); 0: one per core
  bool strict = false;    // raise on damaged packets/frames instead of skipping and counting them
  bool chroma = false;    // also return Cb/Cr planes (4:2:0)
  double stall_seconds = 60.0;  // a read making no progress this long ends with ErrorKind::kStalled (0: never)
};

struct VideoInfoData {
  std::string path;
  std::string codec;           // FFmpeg's codec name: "h264", "mpeg4", "hevc", ...
  std::string container;       // demuxer name
  std::string pix_fmt;
  int width = 0;               // display size
  int height = 0;
  int rotation = 0;            // degrees clockwise (0, 90, 180, 270) to turn the pictures to display them upright
  double fps = 0.0;
  int64_t num_frames = -1;     // from the container, -1 when it does not say (len(reader) is exact)
  double duration_seconds = -1.0;
  int64_t bit_rate = 0;
  double time_base = 0.0;      // seconds per pts tick
  bool motion_vectors_exported = false;
  std::string residual_method;  // how residuals are predicted for this codec, or "none"
  // libavcodec exports B-frame vectors it never decoded (MPEG-4 Part 2 streams that declare B-frames: the
  // H.263-family decoder does not store B-VOP vectors, so the table holds an earlier picture's).
  bool b_frame_vectors_stale = false;
};

struct ReaderStats {
  int64_t packets = 0;
  int64_t frames = 0;            // frames returned to the caller
  int64_t frames_decoded = 0;    // pictures the decoder produced, including ones decoded only as references
  int64_t skipped_packets = 0;   // packets the decoder rejected as invalid
  int64_t corrupt_frames = 0;    // frames the decoder flagged as damaged/concealed
  int64_t decode_errors = 0;     // other decoder errors that were skipped
  int64_t frames_reordered = 0;  // frames the decoder output ahead of an earlier-presented one, put back in pts order
  int64_t frames_retimed = 0;    // frames whose pts was missing or not after the previous frame's, set to previous + 1 frame
  // Frames whose pts the reader made up: the container stores none (raw streams: display position / frame rate)
  // or stores decode times as presentation times (StreamIndex::pts_synthesized: its pts, sorted, in display order).
  int64_t frames_pts_synthesized = 0;
  bool truncated = false;        // the file holds less than its container promises (or reading broke off early)
  std::string truncation;        // how that was seen, empty when not truncated
  // Whether opening ran avformat_find_stream_info, which decodes pictures in a decoder of its own; false where the
  // MP4/Matroska header and the H.264 SPS said all it would have (describe_from_header).
  bool stream_info_probed = true;
  // Where the time goes (nanoseconds of the reading thread's CPU time), for the per-stage benchmark.
  int64_t residual_ns = 0;       // motion compensation and subtraction
  int64_t copy_ns = 0;           // luma/chroma/vector/QP copies into the output buffers
  int64_t reference_searches = 0;          // blocks predicted from one of several candidate references
  int64_t reference_search_exhausted = 0;  // of those, blocks where the search tried every candidate
  // MPEG-4 B-pictures whose residual subtracts the decoder's own prediction (bframe_prediction.h), not one
  // rebuilt from exported vectors.
  int64_t frames_predicted_by_decoder = 0;
  // MPEG-4 B-pictures the second decoder gave no prediction for (it refused a packet the main decoder took):
  // returned without a residual rather than with one rebuilt from the stale vectors.
  int64_t bframes_without_prediction = 0;
  // Inter pictures an MPEG-family decoder exported neither vectors nor quantisers for: decoding with output delay
  // (MPEG-1/2 without the low-delay flag, MPEG-4 with B-frames) it returns a stream's last picture at the end
  // without them. Returned without a residual (nothing to rebuild it from; with no vectors it would be a plain
  // frame difference passed off as one) and marked FrameData::without_export.
  int64_t frames_without_export = 0;
};

struct FrameData {
  int64_t index = 0;          // display order
  int64_t decode_index = -1;  // packet order
  int64_t pts = 0;
  double pts_seconds = 0.0;
  char pict_type = '?';
  bool key_frame = false;
  int64_t gop_index = 0;
  int64_t packet_size = -1;
  bool corrupt = false;
  bool without_export = false;  // an inter picture the decoder exported no vectors or quantisers for
  int rounding = -1;          // MPEG-4/H.263+ no_rounding flag read from the bitstream, -1 when not applicable
  int64_t inter_pixels = 0;   // pixels predicted by a motion vector
  int width = 0, height = 0;
  int chroma_width = 0, chroma_height = 0;
  int qp_width = 0, qp_height = 0;
  MotionVectorRows motion_vectors;
  OwnedBuffer<uint8_t> luma;        // (height, width), empty on the MV-only path
  OwnedBuffer<int16_t> residual;    // (height, width), empty for I-frames / MV-only / codecs without vectors
  OwnedBuffer<uint8_t> chroma;      // (2, chroma_height, chroma_width) when requested
  OwnedBuffer<int8_t> qp;           // (qp_height, qp_width) per 16x16 macroblock, when the decoder exports it
  // (cells_height, cells_width) sums of squared residual per cell, in place of `residual` once
  // VideoReader::sum_residual_cells was called
  OwnedBuffer<int64_t> residual_cells;
  int cells_height = 0, cells_width = 0;
};

class VideoReader {
 public:
  VideoReader(const Input& input, const ReaderOptions& options);
  VideoReader(const std::string& path, const ReaderOptions& options) : VideoReader(Input{path, nullptr}, options) {}
  ~VideoReader();
  VideoReader(const VideoReader&) = delete;
  VideoReader& operator=(const VideoReader&) = delete;

  const VideoInfoData& info() const { return info_; }
  const ReaderStats& stats() const { return stats_; }

  // Decodes up to the next displayed frame. Returns false at the end of the stream.
  bool next(FrameData& out);

  // The frame table (built on first use by a parser-only pass).
  const StreamIndex& index();

  // Repositions so that next() returns the frame with this display index, reached by seeking to the
  // keyframe at or before its GOP (not by decoding everything before it).
  void seek_to_frame(int64_t display_index);
  // Whether seek_to_frame jumps to a keyframe; otherwise (program/transport and raw streams, or no usable
  // timestamps) it decodes forward from the start, and reading on from an earlier position costs less.
  bool seeks_by_keyframe();
  // The display index of the next frame the decoder will hand the reader, when reading on from here is possible
  // (a frame returned since the decoder started, no seek waiting for its first frame, frames left to hand out);
  // -1 otherwise. Frames from there on can be requested without repositioning.
  int64_t resumable_from() const;
  // Whether the decoder has seen what iteration feeds it since it last started from the beginning: no jump to a
  // keyframe, no non-reference picture skipped. libavcodec conceals damage with state carried over from earlier
  // pictures, so only then are concealed pictures (and those predicted from them) the ones iteration returns.
  bool reads_as_iteration() const { return !jumped_ && !skipped_nonref_; }

  // Back to the first frame, without building the index.
  void rewind();

  // Until called again with an empty list, next() returns only frames with these display indices: the others
  // are decoded only as far as references need them (no pixel copy, no residual), and when no requested frame
  // is a B-frame, non-reference pictures between the requested ones are not decoded at all where positions
  // come from the index (unless skip_nonref_pictures is false: on a damaged stream their decoding changes how
  // later pictures are concealed).
  void request(std::vector<int64_t> display_indices, bool skip_nonref_pictures = true);

  // From the next frame on, inter frames carry the sums of their squared residual over an hg x wg grid of the
  // display picture (residual_energy.h's cells) instead of the residual: computed inside the residual pass, so
  // the residual is never written out. (0, 0) returns to whole residuals.
  void sum_residual_cells(int hg, int wg);

 private:
  struct PacketInfo {
    int64_t decode_index = 0;
    int64_t size = 0;
    int rounding = -1;
    int nal_ref_idc = -1;
    bool discard = false;  // the container hides the picture (before an MP4 edit list's start)
    int64_t pts = AV_NOPTS_VALUE;  // as the container stores it
    bool received = false;         // the decoder returned its frame (which may wait in the reorder window)
  };
  struct Reference {
    FramePtr frame;
    // Its place in the decoder's output since it started, which is display order: pictures the container hides
    // (before an MP4 edit list's start) have no display index but are references all the same.
    int64_t rank = 0;
    int64_t decode_index = -1;
  };
  // A decoded frame waiting for its references: the decoder returns a B-picture before the later
  // reference it is predicted from, so its residual is computed once that reference has arrived.
  struct Pending {
    FramePtr frame;
    PacketInfo packet;
    int64_t display_index = 0;
    int64_t rank = 0;  // see Reference::rank
    int64_t gop_index = 0;
    int64_t pts = 0;
    bool untimed = false;  // the decoder gave no pts: the container stores none for its packet
    char pict_type = '?';
    bool key = false;
    bool corrupt = false;
  };

  void open_input();
  void open_decoder();
  bool seeks_exactly() const;
  void restart_at(int64_t display_index);
  void feed_packet();
  void reset_decoding_state();
  bool is_invented_reference() const;
  void admit(AVFrame* frame);
  // A reference to a decoded frame, held until its turn: the whole frame, or on the MV-only path its metadata.
  FramePtr hold(const AVFrame* frame) const;
  void release_earliest();
  void process(AVFrame* frame);
  bool pop_ready(FrameData& out);
  void emit(Pending& pending, FrameData& out);
  void keep_reference(AVFrame* frame, int64_t rank, const PacketInfo& packet, char pict_type);
  // with_luma false: the luma buffer is allocated and left to fill_residual, which writes it in its own pass.
  void fill_pixels(const AVFrame* frame, FrameData& out, bool with_luma) const;
  void fill_qp(const AVFrame* frame, FrameData& out) const;
  void fill_residual(const AVFrame* frame, const PacketInfo& packet, int64_t rank, FrameData& out);
  // The residual as the decoded frame minus a prediction picture of the same geometry, and the luma with it.
  void subtract_prediction(const AVFrame* frame, const AVFrame* prediction, FrameData& out);
  // The display rectangle of the decoded luma into out.luma (when pixels are returned).
  static void copy_luma(const AVFrame* frame, FrameData& out);
  // The cell sums a frame gets instead of its residual (sum_residual_cells), or null when it keeps the residual.
  CellSquareSums* start_cell_sums(FrameData& out);
  bool has_future_reference(int64_t rank) const;
  [[noreturn]] void fail(ErrorKind kind, const std::string& cause) const;
  // Throws the stall error when the guard ended the last read, and the source's own error when it failed.
  void check_input() const;
  void mark_truncated(const std::string& cause);

  ReaderOptions options_;
  VideoInfoData info_;
  ReaderStats stats_;
  Input input_;
  std::unique_ptr<StallGuard> guard_;  // outlives every demuxer that polls it
  OpenedInput opened_;
  bool rereadable_ = false;  // a second pass (the index) can read the input again: not a FIFO or device
  CodecContextPtr codec_;
  BPicturePredictor bframe_prediction_;  // MPEG-4 streams with B-frames only (see bframe_prediction.h)
  int cells_height_ = 0, cells_width_ = 0;  // sum_residual_cells
  CellSquareSums cell_sums_;
  std::vector<int16_t> residual_scratch_;   // a decoder-predicted residual, when only its cell sums are kept
  FramePtr frame_;
  PacketPtr packet_;
  const AVStream* stream_ = nullptr;
  int stream_index_ = -1;
  CodecFamily family_ = CodecFamily::kOther;
  bool residual_supported_ = false;
  int nal_length_size_ = 0;
  Mpeg4Vol mpeg4_vol_;

  std::unordered_map<int64_t, PacketInfo> packets_in_flight_;
  int64_t next_decode_index_ = 0;
  int64_t next_display_index_ = 0;
  int64_t current_gop_ = -1;
  bool flushing_ = false;
  bool finished_ = false;
  // libavcodec's MPEG-1/2/4 and H.263 decoders invent a grey reference when a stream opens on a predicted
  // picture, and with one frame of output delay they return it as the first frame: a picture the stream
  // does not contain. It is recognisable as a frame returned before a second packet was sent.
  bool invents_missing_reference_ = false;
  bool quantisers_exported_ = false;  // the decoder has exported a quantiser table (see frames_without_export)
  // No bitstream parser (FFV1, ...): the index can only tell key packets from the others, so frame types follow
  // the same rule here. FFV1's decoder calls every frame I, yet a non-key one needs the previous frames' state.
  bool types_from_keys_ = false;
  int64_t frames_received_ = 0;  // since the decoder last started
  int64_t output_rank_ = 0;      // frames processed since the decoder last started (Reference::rank)
  // An H.264 decoder trusts the reorder depth the SPS declares; when it is too small the decoder outputs
  // pictures early and silently drops the ones it then finds out of order. A frame arriving with a pts below
  // one already received shows it: decoding restarts with the depth the index measures.
  int64_t max_pts_received_ = AV_NOPTS_VALUE;  // since the decoder last started
  int min_output_delay_ = 0;
  int64_t returned_until_ = 0;  // display index after the last frame returned since the decoder last started
  bool returned_any_ = false;
  bool restart_if_early_output(const AVFrame* frame);
  // Every packet so far had pts == dts: on a stream with B-frames the container may store decode times as pts.
  bool pts_may_be_decode_times_ = true;
  bool output_delay_checked_ = false;  // use_measured_output_delay ran on this reader's first packet
  void use_measured_output_delay();
  // Gives the frame its presentation time where the container stores decode times (StreamIndex::pts_synthesized).
  void use_presentation_time(AVFrame* frame);
  // The decoder returned a frame with a later pts than a packet it has not returned yet: in display order
  // that cannot be, so the container's pts are not display times.
  bool shown_before_an_earlier_pts(const AVFrame* frame) const;

  // After a seek: frames before skip_until_ are decoded (they may be references) but not returned,
  // and display indices come from the index (by pts) instead of the running counter.
  int64_t skip_until_ = 0;
  bool indexed_positions_ = false;
  std::vector<int64_t> wanted_;  // sorted; empty: every frame
  bool skip_nonref_ = false;
  bool check_seek_landing_ = false;
  // Since the decoder last started from the stream's beginning: whether it jumped to a keyframe, or was told
  // to skip non-reference pictures (see reads_as_iteration).
  bool jumped_ = false;
  bool skipped_nonref_ = false;
  int64_t damage_before_read_ = 0;  // skipped packets + decode errors when the decoder last started from the beginning
  // Sets the decoder's skip_frame for the packet about to be sent (see request).
  void feed_skip_decision();

  // Decoded frames not yet in presentation order: an H.264/HEVC decoder that underestimates the reorder depth
  // (e.g. after a damaged IDR) outputs pictures early; holding `reorder_window_` frames and releasing the
  // earliest pts first undoes that. MPEG-1/2/4 and H.263 decoders output in display order (window 0).
  std::vector<FramePtr> reorder_;
  size_t reorder_window_ = 0;
  int64_t last_pts_ = AV_NOPTS_VALUE;  // of the last frame released, to keep pts strictly increasing
  int64_t pts_step_ = 1;               // one frame in stream ticks

  std::deque<Reference> references_;
  std::deque<Pending> pending_;
  ResidualBuilder residual_builder_;
  std::optional<StreamIndex> index_;
};

}  // namespace codecprim

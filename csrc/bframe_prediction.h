// The motion-compensated prediction of MPEG-4 Part 2 B-pictures, from the decoder itself.
//
// libavcodec's H.263-family decoder never stores B-VOP motion vectors (decode_slice skips
// ff_h263_update_motion_val for B-pictures), so the vectors it exports for MPEG-4 B-frames are whatever an
// earlier picture left in the reused table: on real footage a residual rebuilt from them was as large as the
// frame difference (mean |residual| 2.85 against 0.18 for the true one, bikes re-encoded with -bf 2). A second
// decoder fed the same packets with the inverse transform skipped for B-pictures (skip_idct = bidir) outputs
// exactly their prediction, while its I- and P-pictures, the references, stay intact: decoded minus that is
// the residual, by definition. It costs a second decode of the stream, so the reader opens one only for
// MPEG-4 streams that declare B-frames.
#pragma once

#include <cstdint>
#include <map>

#include "ffmpeg.h"

namespace codecprim {

class BPicturePredictor {
 public:
  // Opens a decoder like `like` (same codec, parameters, threads and output delay) with B-pictures' inverse
  // transform skipped. Returns false when the decoder cannot be opened.
  bool open(const AVCodecParameters* par, const AVCodecContext* like);

  // Sends the packet the main decoder was just given (same tag, same skip_frame), or nullptr to drain. A packet
  // this decoder refuses would leave its references behind the main decoder's: it then closes, and gives no
  // prediction until reopened.
  void send(AVPacket* packet, int64_t tag, AVDiscard skip_frame);

  // The prediction of the B-picture decoded from the packet with this tag, or null when there is none (the
  // decoder gave none, or is closed). Earlier predictions are dropped.
  FramePtr take(int64_t tag);

  // After a seek or restart: nothing decoded before stays.
  void flush();
  void close();

 private:
  void pump();

  CodecContextPtr codec_;
  FramePtr frame_;
  std::map<int64_t, FramePtr> predictions_;  // B-pictures by packet tag, until taken
};

}  // namespace codecprim

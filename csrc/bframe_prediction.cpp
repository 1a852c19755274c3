#include "bframe_prediction.h"

#include "ffmpeg_compat.h"

namespace codecprim {
namespace {

// B-pictures waiting to be taken: MPEG-4 returns each within a frame of its packet, so more than this many
// means the reader passed over them (frames not requested): the oldest go.
constexpr size_t kMaxWaiting = 16;

}  // namespace

bool BPicturePredictor::open(const AVCodecParameters* par, const AVCodecContext* like) {
  close();
  const AVCodec* codec = compat::find_decoder(par->codec_id);
  if (codec == nullptr) return false;
  CodecContextPtr ctx(avcodec_alloc_context3(codec));
  if (!ctx || avcodec_parameters_to_context(ctx.get(), par) < 0) return false;
  ctx->pkt_timebase = like->pkt_timebase;
  ctx->thread_count = like->thread_count;
  ctx->thread_type = like->thread_type;
  ctx->apply_cropping = like->apply_cropping;
  ctx->has_b_frames = like->has_b_frames;
  ctx->skip_idct = AVDISCARD_BIDIR;
  compat::enable_packet_tags(ctx.get());
  if (avcodec_open2(ctx.get(), codec, nullptr) < 0) return false;
  FramePtr frame(av_frame_alloc());
  if (!frame) return false;
  codec_ = std::move(ctx);
  frame_ = std::move(frame);
  return true;
}

void BPicturePredictor::send(AVPacket* packet, int64_t tag, AVDiscard skip_frame) {
  if (!codec_) return;
  if (packet != nullptr) compat::tag_packet(codec_.get(), packet, tag);
  codec_->skip_frame = skip_frame;
  // Both decoders return a frame for the same packets, so one waiting here is collected first.
  int sent = avcodec_send_packet(codec_.get(), packet);
  if (sent == AVERROR(EAGAIN)) {
    pump();
    sent = avcodec_send_packet(codec_.get(), packet);
  }
  if (sent < 0 && sent != AVERROR_EOF) {
    close();
    return;
  }
  pump();
}

void BPicturePredictor::pump() {
  while (avcodec_receive_frame(codec_.get(), frame_.get()) == 0) {
    const int64_t tag = compat::frame_tag(frame_.get());
    if (frame_->pict_type == AV_PICTURE_TYPE_B && tag >= 0) {
      FramePtr kept(av_frame_clone(frame_.get()));
      if (kept) predictions_[tag] = std::move(kept);
      while (predictions_.size() > kMaxWaiting) predictions_.erase(predictions_.begin());
    }
    av_frame_unref(frame_.get());
  }
}

FramePtr BPicturePredictor::take(int64_t tag) {
  if (!codec_) return nullptr;
  auto found = predictions_.find(tag);
  FramePtr out;
  if (found != predictions_.end()) out = std::move(found->second);
  // B-pictures leave the decoder in decode order: ones before this were passed over.
  predictions_.erase(predictions_.begin(), predictions_.upper_bound(tag));
  return out;
}

void BPicturePredictor::flush() {
  if (codec_) avcodec_flush_buffers(codec_.get());
  predictions_.clear();
}

void BPicturePredictor::close() {
  predictions_.clear();
  frame_.reset();
  codec_.reset();
}

}  // namespace codecprim

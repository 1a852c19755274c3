// Re-encodes a video in process (decode -> frame rate / size / pixel format through libavfilter -> encode ->
// mux) with the GOP structures the VideoLM recipes train on. The output appears atomically: it is written to a
// temporary file beside the destination and renamed only when the muxer has finished.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace codecprim {

// Every knob a recipe sets; each can be overridden by name (set_transcode_option).
struct TranscodeOptions {
  std::string codec;          // libavcodec encoder name: "mpeg4", "libx265", "libx264"
  std::string fps = "source";  // output frame rate ("30", "30000/1001") or "source" (the input's average rate)
  int gop = 16;               // frames from one I-frame to the next, fixed (scene cuts do not start a GOP)
  int bframes = 0;            // B-frames between references
  int refs = 1;               // reference frames a P-frame may use (x264/x265)
  int qscale = 0;             // fixed quantiser (mpeg4: 1..31); 0 = rate control by crf / bit_rate
  int crf = -1;               // constant rate factor (x264/x265); -1 = the encoder's default
  int64_t bit_rate = 0;       // bits per second; 0 = unset
  int width = 0;              // output size; 0 = the input's, -2 = keep aspect with an even side
  int height = 0;
  std::string pix_fmt = "yuv420p";
  std::string preset;         // x264/x265 preset; empty = the encoder's default
  int threads = 1;            // encoder and decoder threads
};

// The recipes by name: "cope", "onevision", "onevision-h264". Unknown names throw std::invalid_argument.
std::vector<std::string> transcode_recipe_names();
TranscodeOptions transcode_recipe(const std::string& name);

// Sets one option from its text form; an unknown name or a bad value throws std::invalid_argument.
void set_transcode_option(TranscodeOptions& options, const std::string& name, const std::string& value);
// A recipe with overrides (name -> text) applied.
TranscodeOptions transcode_options(const std::string& recipe, const std::map<std::string, std::string>& overrides);
// The options as name -> text, the same names set_transcode_option accepts.
std::map<std::string, std::string> transcode_option_values(const TranscodeOptions& options);

struct TranscodeResult {
  int64_t frames_decoded = 0;
  int64_t frames_encoded = 0;
  int64_t packets_skipped = 0;  // damaged input packets the decoder rejected (the output skips them)
  std::string codec;            // encoder used
  std::string fps;              // output frame rate as num/den
};

// Called with (frames encoded, frames expected or -1) every few frames and once at the end.
using TranscodeProgress = std::function<void(int64_t, int64_t)>;

// Throws codecprim::Error naming src or dst on any FFmpeg failure; nothing is left at dst then.
TranscodeResult transcode(const std::string& src, const std::string& dst, const TranscodeOptions& options,
                          const TranscodeProgress& progress);

}  // namespace codecprim

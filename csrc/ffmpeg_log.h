// FFmpeg's own log output (stderr by default), by level name. The level is process-wide state of libavutil:
// it also applies to other FFmpeg users in the process (PyAV, torchvision), which is why codecprim never
// changes it on its own.
#pragma once

#include <string>

namespace codecprim {

// Sets the level ("quiet", "panic", "fatal", "error", "warning", "info", "verbose", "debug", "trace") and
// returns the previous one. Throws std::invalid_argument for any other name.
std::string set_ffmpeg_log_level(const std::string& name);
std::string ffmpeg_log_level();

}  // namespace codecprim

#include "ffmpeg_log.h"

#include <stdexcept>
#include <utility>

extern "C" {
#include <libavutil/log.h>
}

namespace codecprim {
namespace {

constexpr std::pair<const char*, int> kLevels[] = {
    {"quiet", AV_LOG_QUIET}, {"panic", AV_LOG_PANIC},     {"fatal", AV_LOG_FATAL}, {"error", AV_LOG_ERROR},
    {"warning", AV_LOG_WARNING}, {"info", AV_LOG_INFO}, {"verbose", AV_LOG_VERBOSE}, {"debug", AV_LOG_DEBUG},
    {"trace", AV_LOG_TRACE},
};

std::string level_name(int level) {
  // Levels between the named ones (FFmpeg allows any integer) read as the nearest named level below.
  std::string name = "quiet";
  for (const auto& [candidate, value] : kLevels) {
    if (value <= level) name = candidate;
  }
  return name;
}

}  // namespace

std::string set_ffmpeg_log_level(const std::string& name) {
  for (const auto& [candidate, value] : kLevels) {
    if (name == candidate) {
      std::string previous = level_name(av_log_get_level());
      av_log_set_level(value);
      return previous;
    }
  }
  std::string names;
  for (const auto& level : kLevels) names += std::string(names.empty() ? "" : ", ") + level.first;
  throw std::invalid_argument("unknown FFmpeg log level '" + name + "' (expected one of: " + names + ")");
}

std::string ffmpeg_log_level() { return level_name(av_log_get_level()); }

}  // namespace codecprim

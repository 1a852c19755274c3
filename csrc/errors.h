// Typed errors of the core. Every FFmpeg failure becomes one of these, naming what failed, the file,
// and FFmpeg's own text for the code. The bindings translate each kind to the matching Python exception.
#pragma once

#include <stdexcept>
#include <string>

namespace codecprim {

enum class ErrorKind {
  kNotFound,     // the path does not exist -> FileNotFoundError
  kInvalidData,  // not a readable video: no video stream, an image, garbage, damage in strict mode -> ValueError
  kUnsupported,  // a video the core cannot decode (no decoder in this FFmpeg build) -> ValueError
  kIo,           // the OS or FFmpeg failed to read -> OSError
  kStalled,      // reading made no progress for the reader's stall_seconds -> TimeoutError
  kUnknownLength,  // a read-once input (FIFO, device) has no frame table -> UnknownLengthError (ValueError, TypeError)
};

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, std::string path, std::string cause);
  ErrorKind kind() const { return kind_; }
  const std::string& path() const { return path_; }
  const std::string& cause() const { return cause_; }

 private:
  ErrorKind kind_;
  std::string path_;
  std::string cause_;
};

// The decoder has returned every frame: not an error, its own type so it is never mistaken for one.
struct EndOfStream {};

// FFmpeg's text for an AVERROR code.
std::string av_error_text(int code);

// Throws an Error of the kind that fits `code` (ENOENT -> kNotFound, AVERROR_INVALIDDATA -> kInvalidData, ...).
[[noreturn]] void throw_av_error(int code, const std::string& path, const std::string& what_failed);

}  // namespace codecprim

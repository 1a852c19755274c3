// Where a video's bytes come from, and the demuxer opened over them. A path is read by FFmpeg's own file
// protocol; anything else (bytes in memory, a Python file object) is a ByteSource read through a custom AVIO
// context, so videos inside tar shards or object stores need no temporary file. Either way every read passes
// a StallGuard, which ends a read that makes no progress with a typed error instead of hanging.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ffmpeg.h"

namespace codecprim {

class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // Total size in bytes, or -1 when unknown.
  virtual int64_t size() = 0;
  // Up to `n` bytes at `pos` into `dst`: the count read (0 at the end), or -1 after an error (see error()).
  virtual int read_at(int64_t pos, uint8_t* dst, int n) = 0;
  // False for a stream that can only be read forward once.
  virtual bool seekable() const { return true; }
  // What the last failed read said.
  virtual std::string error() const { return {}; }
};

// Bytes held in memory (a copy: the caller's buffer may change or go away).
class MemorySource : public ByteSource {
 public:
  MemorySource(const uint8_t* data, size_t size) : bytes_(data, data + size) {}
  int64_t size() override { return static_cast<int64_t>(bytes_.size()); }
  int read_at(int64_t pos, uint8_t* dst, int n) override;

 private:
  std::vector<uint8_t> bytes_;
};

// A file read with pread, for checks made beside FFmpeg's own reading of a path.
class FileSource : public ByteSource {
 public:
  explicit FileSource(const std::string& path);
  ~FileSource() override;
  FileSource(const FileSource&) = delete;
  FileSource& operator=(const FileSource&) = delete;
  bool is_open() const { return fd_ >= 0; }
  int64_t size() override;
  int read_at(int64_t pos, uint8_t* dst, int n) override;

 private:
  int fd_ = -1;
};

// Ends reads that make no progress. progress() is called whenever a packet or frame comes through and when a
// caller starts an operation; stalled() turns true (and stays so until the next progress()) once more than
// `seconds` pass without one. FFmpeg polls it through AVIOInterruptCB before each read of a path; the custom
// AVIO context of a ByteSource polls it before each read too.
class StallGuard {
 public:
  explicit StallGuard(double seconds) : limit_ns_(seconds > 0 ? static_cast<int64_t>(seconds * 1e9) : 0) { progress(); }
  void progress() { last_ns_.store(now_ns()); tripped_.store(false); }
  bool stalled();
  bool tripped() const { return tripped_.load(); }
  double seconds() const { return static_cast<double>(limit_ns_) * 1e-9; }
  AVIOInterruptCB callback() { return AVIOInterruptCB{&StallGuard::interrupt, this}; }

 private:
  static int interrupt(void* self) { return static_cast<StallGuard*>(self)->stalled() ? 1 : 0; }
  static int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
  }
  int64_t limit_ns_;  // 0: never stalls
  std::atomic<int64_t> last_ns_{0};
  std::atomic<bool> tripped_{false};
};

// What to open: a path (`source` null) or a ByteSource, with the name errors use for it.
struct Input {
  std::string name;
  std::shared_ptr<ByteSource> source;
};

// Whether the demuxer's header declares every stream with its parameter sets and frame rate (MP4/MOV, Matroska),
// so that reading packets needs no avformat_find_stream_info; containers such as MPEG-PS create streams only while
// probing.
bool declares_streams_in_header(const AVFormatContext* format);

// A demuxer opened over an Input. The AVIO context of a ByteSource outlives the demuxer that reads through it.
class OpenedInput {
 public:
  OpenedInput() = default;
  // avformat_open_input over `input`, polling `guard`; returns FFmpeg's code (0 on success).
  int open(const Input& input, StallGuard* guard);
  AVFormatContext* format() const { return format_.get(); }
  // The ByteSource's last read error, empty when it had none (or the input is a path).
  std::string source_error() const;
  void close();

 private:
  struct Cursor {
    std::shared_ptr<ByteSource> source;
    StallGuard* guard = nullptr;
    int64_t pos = 0;
    std::string error;
  };
  static int read(void* opaque, uint8_t* buf, int size);
  static int64_t seek(void* opaque, int64_t offset, int whence);

  std::unique_ptr<Cursor> cursor_;
  AvioContextPtr io_;
  FormatContextPtr format_;  // declared last, so closed first
};

}  // namespace codecprim

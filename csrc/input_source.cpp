#include "input_source.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace codecprim {
namespace {

constexpr int kAvioBufferSize = 64 * 1024;

}  // namespace

int MemorySource::read_at(int64_t pos, uint8_t* dst, int n) {
  if (pos < 0 || pos >= static_cast<int64_t>(bytes_.size())) return 0;
  const size_t count = std::min(static_cast<size_t>(n), bytes_.size() - static_cast<size_t>(pos));
  std::memcpy(dst, bytes_.data() + pos, count);
  return static_cast<int>(count);
}

FileSource::FileSource(const std::string& path) : fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {}

FileSource::~FileSource() {
  if (fd_ >= 0) ::close(fd_);
}

int64_t FileSource::size() {
  struct stat st {};
  if (fd_ < 0 || ::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) return -1;
  return static_cast<int64_t>(st.st_size);
}

int FileSource::read_at(int64_t pos, uint8_t* dst, int n) {
  if (fd_ < 0) return -1;
  const ssize_t got = ::pread(fd_, dst, static_cast<size_t>(n), static_cast<off_t>(pos));
  return got < 0 ? -1 : static_cast<int>(got);
}

bool StallGuard::stalled() {
  if (limit_ns_ > 0 && now_ns() - last_ns_.load() > limit_ns_) tripped_.store(true);
  return tripped_.load();
}

bool declares_streams_in_header(const AVFormatContext* format) {
  const std::string name = format->iformat->name;
  return name.rfind("mov,", 0) == 0 || name.rfind("matroska", 0) == 0;
}

int OpenedInput::read(void* opaque, uint8_t* buf, int size) {
  auto* cursor = static_cast<Cursor*>(opaque);
  // FFmpeg checks the interrupt callback only around its own protocols' reads, not a custom context's.
  if (cursor->guard != nullptr && cursor->guard->stalled()) return AVERROR_EXIT;
  const int got = cursor->source->read_at(cursor->pos, buf, size);
  if (got < 0) {
    cursor->error = cursor->source->error();
    return AVERROR(EIO);
  }
  if (got == 0) return AVERROR_EOF;
  cursor->pos += got;
  return got;
}

int64_t OpenedInput::seek(void* opaque, int64_t offset, int whence) {
  auto* cursor = static_cast<Cursor*>(opaque);
  const int64_t size = cursor->source->size();
  if (whence & AVSEEK_SIZE) return size >= 0 ? size : AVERROR(ENOSYS);
  if (!cursor->source->seekable()) return AVERROR(ESPIPE);
  int64_t target = -1;
  switch (whence & ~AVSEEK_FORCE) {
    case SEEK_SET: target = offset; break;
    case SEEK_CUR: target = cursor->pos + offset; break;
    case SEEK_END: target = size >= 0 ? size + offset : -1; break;
    default: break;
  }
  if (target < 0) return AVERROR(EINVAL);
  cursor->pos = target;
  return target;
}

int OpenedInput::open(const Input& input, StallGuard* guard) {
  close();
  AVFormatContext* raw = avformat_alloc_context();
  if (raw == nullptr) return AVERROR(ENOMEM);
  if (guard != nullptr) raw->interrupt_callback = guard->callback();
  if (input.source) {
    cursor_ = std::make_unique<Cursor>();
    cursor_->source = input.source;
    cursor_->guard = guard;
    auto* buffer = static_cast<uint8_t*>(av_malloc(kAvioBufferSize));
    if (buffer == nullptr) {
      avformat_free_context(raw);
      return AVERROR(ENOMEM);
    }
    io_.reset(avio_alloc_context(buffer, kAvioBufferSize, 0, cursor_.get(), &OpenedInput::read, nullptr,
                                 input.source->seekable() ? &OpenedInput::seek : nullptr));
    if (!io_) {
      av_free(buffer);
      avformat_free_context(raw);
      return AVERROR(ENOMEM);
    }
    io_->seekable = input.source->seekable() ? AVIO_SEEKABLE_NORMAL : 0;
    raw->pb = io_.get();
    raw->flags |= AVFMT_FLAG_CUSTOM_IO;
  }
  // On failure avformat_open_input frees the context it was given (not a custom pb).
  const int ret = avformat_open_input(&raw, input.source ? "" : input.name.c_str(), nullptr, nullptr);
  if (ret < 0) return ret;
  format_.reset(raw);
  return 0;
}

std::string OpenedInput::source_error() const { return cursor_ ? cursor_->error : std::string(); }

void OpenedInput::close() {
  format_.reset();
  io_.reset();
  cursor_.reset();
}

}  // namespace codecprim

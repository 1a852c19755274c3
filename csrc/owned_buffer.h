// A heap buffer the core fills and then hands over whole to its consumer (the Python bindings wrap it
// without copying; the tensor then owns it). Allocated 64-byte aligned so vectorised loops start aligned.
//
// Frame-sized buffers (128 KiB and up) are recycled through a small pool. glibc serves them from the heap top
// and, once a frame's buffers are freed, often trims the top back to the system, so the next frame's buffers
// were fresh pages, each faulted in and zeroed by the kernel: 25 page faults a frame on 480p MPEG-4 in a
// second reader of one process, ~12 % of a full extraction's time in perf. The pool keeps the most recently
// freed blocks (at most kMaxPooledBlocks and kMaxPooledBytes) and hands one back for a request of about its
// size.
//
// The bound is a sampled clip's working set, not a few frames': codec_patches holds its 64 frames' residual, luma
// and chroma until selection (205 MB at 720p), then frees them all, and glibc gave the heap top back each time, so
// the next clip faulted 12k-60k pages in again (bigbuckbunny: 30-60 ms of kernel time in a ~300 ms call, the
// median call 350-390 ms against 300 ms with nothing faulted). What the pool keeps, the process held at its peak
// anyway; a DataLoader worker asks for it again with its next clip.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <new>
#include <vector>

namespace codecprim {
namespace buffer_pool {

constexpr size_t kHeader = 64;                // before the data: the block's capacity; keeps the alignment
constexpr size_t kPooledFrom = 128 * 1024;    // smaller blocks are cheap to malloc (glibc's mmap threshold)
constexpr size_t kMaxPooledBlocks = 256;
constexpr size_t kMaxPooledBytes = 256u << 20;

struct Pool {
  std::mutex mutex;
  std::vector<std::pair<size_t, void*>> blocks;  // (capacity, block), oldest first
  size_t bytes = 0;
};

// Never destroyed: Python may free the last arrays after this library's static destructors ran.
inline Pool& pool() {
  static Pool* const instance = new Pool;
  return *instance;
}

// `bytes` of 64-byte aligned storage, to be given back with release().
inline void* acquire(size_t bytes) {
  bytes = (bytes + 63) / 64 * 64;
  if (bytes >= kPooledFrom) {
    Pool& p = pool();
    std::lock_guard<std::mutex> lock(p.mutex);
    size_t best = p.blocks.size();
    // The smallest block that fits without wasting a quarter; of equal ones the most recently freed (still in
    // cache, and a streaming reader keeps cycling through the same few).
    for (size_t i = 0; i < p.blocks.size(); ++i) {
      const size_t capacity = p.blocks[i].first;
      if (capacity >= bytes && capacity <= bytes + bytes / 4 &&
          (best == p.blocks.size() || capacity <= p.blocks[best].first)) {
        best = i;
      }
    }
    if (best < p.blocks.size()) {
      void* block = p.blocks[best].second;
      p.bytes -= p.blocks[best].first;
      p.blocks.erase(p.blocks.begin() + static_cast<std::ptrdiff_t>(best));
      return static_cast<uint8_t*>(block) + kHeader;
    }
  }
  void* block = std::aligned_alloc(64, kHeader + (bytes > 0 ? bytes : 64));
  if (block == nullptr) throw std::bad_alloc();
  *static_cast<size_t*>(block) = bytes;
  return static_cast<uint8_t*>(block) + kHeader;
}

inline void release(void* data) {
  if (data == nullptr) return;
  void* block = static_cast<uint8_t*>(data) - kHeader;
  const size_t capacity = *static_cast<size_t*>(block);
  if (capacity < kPooledFrom || capacity > kMaxPooledBytes) {
    std::free(block);
    return;
  }
  std::vector<void*> evicted;
  {
    Pool& p = pool();
    std::lock_guard<std::mutex> lock(p.mutex);
    while (!p.blocks.empty() && (p.blocks.size() >= kMaxPooledBlocks || p.bytes + capacity > kMaxPooledBytes)) {
      evicted.push_back(p.blocks.front().second);
      p.bytes -= p.blocks.front().first;
      p.blocks.erase(p.blocks.begin());
    }
    p.blocks.emplace_back(capacity, block);
    p.bytes += capacity;
  }
  for (void* old : evicted) std::free(old);
}

}  // namespace buffer_pool

struct PooledFree {
  void operator()(void* p) const { buffer_pool::release(p); }
};

template <typename T>
class OwnedBuffer {
 public:
  OwnedBuffer() = default;
  explicit OwnedBuffer(size_t count)
      : data_(static_cast<T*>(buffer_pool::acquire(count * sizeof(T)))), count_(count) {}

  T* data() const { return data_.get(); }
  size_t size() const { return count_; }
  bool empty() const { return data_ == nullptr; }
  // Gives up ownership: the caller must give it back with buffer_pool::release.
  T* release() { return data_.release(); }

 private:
  std::unique_ptr<T, PooledFree> data_;
  size_t count_ = 0;
};

}  // namespace codecprim

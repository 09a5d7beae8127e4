// Output memory in MLX's CPU-only build (src/ops/buffers.h): a cache of
// host blocks of flashsnn's own, so that a layer's large outputs reuse
// pages the process already has instead of fresh ones from the kernel.
//
// Measured on a 2-core EPYC (T=100 B=32 N=1024 float32, the gradient of a
// plain .sum() of the spikes, 15 calls in one process): with MLX's
// allocator 15-18 ms and 6,400 page faults per call, because glibc returns
// freed 13 MB blocks to the kernel (mmap, or a trimmed heap top) once MLX's
// 32 MB cache is full; with these blocks 2.5-3.5 ms and no faults
// (benchmarks/results, docs/design.md "Output memory").
//
// A block is laid out as MLX's CPU allocator lays out its own buffers (a
// size_t holding the capacity, then the data), so MLX reads its size and
// data as usual; the data starts on a 64-byte line, which the kernels'
// line-aligned chunks (src/cpu/rows.h) then find on every row when N is
// a multiple of 16. Small outputs (< kMinBytes) stay with MLX's allocator:
// its cache keeps them, and they never faulted.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include "mlx/allocator.h"

#include "../ops/buffers.h"
#include "../ops/common.h"

namespace flashsnn {

namespace {

constexpr size_t kMinBytes = size_t(128) << 10;  // glibc's initial mmap threshold
constexpr size_t kPage = 4096;
constexpr size_t kHeader = 64;  // the size_t sits at the end of one line

size_t default_limit() {
  const long pages = sysconf(_SC_PHYS_PAGES);
  return initial_cache_limit(pages > 0 ? size_t(pages) * kPage : size_t(8) << 30);
}

class HostCache {
 public:
  static HostCache& get() {
    // Never destroyed: arrays freed during interpreter shutdown still
    // return their blocks here.
    static auto* cache = new HostCache();
    return *cache;
  }

  // MLX's view of a block: the size_t just before the data.
  mx::allocator::Buffer take(size_t nbytes) {
    const size_t cap = (nbytes + kPage - 1) / kPage * kPage;
    void* base = nullptr;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (size_t i = free_.size(); i-- > 0;) {  // newest first: warmest pages
        if (free_[i].cap == cap) {
          base = free_[i].base;
          free_.erase(free_.begin() + i);
          cached_ -= cap;
          break;
        }
      }
      active_ += cap;
      peak_ = std::max(peak_, active_);
    }
    if (base == nullptr && posix_memalign(&base, 64, kHeader + cap) != 0) {
      std::lock_guard<std::mutex> lock(mutex_);
      active_ -= cap;
      throw std::bad_alloc();
    }
    auto* size = reinterpret_cast<size_t*>(static_cast<char*>(base) + kHeader) - 1;
    *size = cap;
    return mx::allocator::Buffer(size);
  }

  void give_back(mx::allocator::Buffer buffer) {
    auto* size = static_cast<size_t*>(buffer.ptr());
    const size_t cap = *size;
    void* base = reinterpret_cast<char*>(size + 1) - kHeader;
    std::vector<void*> drop;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      active_ -= cap;
      if (cap <= limit_) {
        // Oldest blocks go first to make room.
        size_t k = 0;
        while (cached_ + cap > limit_ && k < free_.size()) {
          cached_ -= free_[k].cap;
          drop.push_back(free_[k++].base);
        }
        free_.erase(free_.begin(), free_.begin() + k);
        free_.push_back({base, cap});
        cached_ += cap;
      } else {
        drop.push_back(base);
      }
    }
    for (void* p : drop) std::free(p);
  }

  MemoryStats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return {active_, peak_, cached_, limit_};
  }
  void reset_peak() {
    std::lock_guard<std::mutex> lock(mutex_);
    peak_ = active_;
  }
  size_t set_limit(size_t bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    std::swap(limit_, bytes);
    trim_locked(limit_);
    return bytes;
  }
  void clear() {
    std::lock_guard<std::mutex> lock(mutex_);
    trim_locked(0);
  }

 private:
  struct Block {
    void* base;
    size_t cap;
  };

  HostCache() : limit_(default_limit()) {}

  void trim_locked(size_t to) {
    size_t k = 0;
    while (cached_ > to && k < free_.size()) {
      cached_ -= free_[k].cap;
      std::free(free_[k++].base);
    }
    free_.erase(free_.begin(), free_.begin() + k);
  }

  std::mutex mutex_;
  std::vector<Block> free_;  // oldest first
  size_t active_ = 0, peak_ = 0, cached_ = 0, limit_;
};

void check_cpu(const mx::Device& device) {
  if (device.type != mx::Device::cpu)
    fail("memory", "this flashsnn has no GPU backend: only the 'cpu' device has a buffer cache");
}

}  // namespace

void alloc_output(mx::array& out, const mx::Stream& s) {
  if (s.device.type != mx::Device::cpu)
    fail("fused", "internal: a GPU stream in a build without a GPU backend");
  if (out.nbytes() < kMinBytes) {
    out.set_data(mx::allocator::malloc(out.nbytes()));
    return;
  }
  auto buffer = HostCache::get().take(out.nbytes());
  out.set_data(mx::allocator::Data(
      buffer, [](mx::allocator::Buffer b) { HostCache::get().give_back(b); }));
}

MemoryStats memory_stats(const mx::Device& device) {
  check_cpu(device);
  return HostCache::get().stats();
}

void reset_peak_memory(const mx::Device& device) {
  check_cpu(device);
  HostCache::get().reset_peak();
}

size_t set_cache_limit(const mx::Device& device, size_t bytes) {
  check_cpu(device);
  return HostCache::get().set_limit(bytes);
}

void clear_cache(const mx::Device& device) {
  check_cpu(device);
  HostCache::get().clear();
}

}  // namespace flashsnn

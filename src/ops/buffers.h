// Memory for the kernels' outputs, from a cache of flashsnn's own.
//
// Why not mx::allocator::malloc, as MLX's examples do:
//  - CUDA: libmlx.so exports only that entry, and in MLX 0.32 it hands out
//    managed memory (cudaMallocManaged), or first copies a cached device
//    buffer into new managed memory. MLX's own ops allocate from the device's
//    stream-ordered pool (cu::malloc_async, not exported). Measured on an
//    H200 (T=100 B=64 N=4096 float32): forward+backward 0.59 ms per call with
//    MLX's cache warm, 30 ms with mx.set_cache_limit(0), 20 ms in a process
//    that had first done other MLX work: the outputs' pages faulted onto the
//    GPU on first touch.
//  - CPU (MLX's CPU-only build): MLX caches 32 MB of freed buffers; a layer
//    at T=100 B=32 N=1024 frees three 13 MB arrays per call, so once anything
//    else has used the cache every call got fresh pages from the kernel:
//    6,400-9,600 page faults and 16-18 ms per forward+backward against 2.3 ms
//    with the pages reused.
// So each backend (src/no_gpu, csrc, metal) implements these functions with
// a cache of its own, kept apart from MLX's: device memory from a stream-
// ordered pool on CUDA, whole-line-aligned host blocks on the CPU. MLX sees
// ordinary arrays (each buffer has a deleter that returns it to the cache),
// so MLX ops, donation, np.array() and other streams work as on its own.
// MLX's mx.get_active_memory() / get_peak_memory() do not count these
// buffers: memory_stats() does (flashsnn.memory in Python).
#pragma once

#include <cstddef>

#include "mlx/array.h"
#include "mlx/stream.h"

namespace flashsnn {

namespace mx = mlx::core;

// Gives `out` memory of out.nbytes() for a kernel that runs on stream s.
void alloc_output(mx::array& out, const mx::Stream& s);

// A cache's starting limit: FLASHSNN_CACHE_LIMIT_MB where set, else an
// eighth of `device_bytes` (the machine's or the GPU's memory: 3 GB on a
// 24 GB machine, far more than one training step's layers hold, far less
// than MLX may use). Every backend's cache starts from this.
size_t initial_cache_limit(size_t device_bytes);

struct MemoryStats {
  size_t active;  // bytes in arrays alive now
  size_t peak;    // most active bytes since the last reset_peak_memory()
  size_t cached;  // bytes kept for reuse, not in any array
  size_t limit;   // most bytes the cache keeps
};

// The cache of the backend that serves `device` ("cpu" or "gpu").
MemoryStats memory_stats(const mx::Device& device);
void reset_peak_memory(const mx::Device& device);
// Returns the previous limit; frees what the cache holds beyond the new one.
size_t set_cache_limit(const mx::Device& device, size_t bytes);
void clear_cache(const mx::Device& device);

}  // namespace flashsnn

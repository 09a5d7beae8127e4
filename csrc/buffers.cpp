// Output memory in MLX's CUDA build (src/ops/buffers.h): device memory from
// a stream-ordered pool of flashsnn's own, one per GPU.
//
// MLX's stream-ordered allocator (cu::malloc_async) is not exported from
// libmlx.so, and the exported mx::allocator::malloc gives managed memory,
// whose pages fault onto the GPU at first touch (30 ms per forward+backward
// on an H200 at T=100 B=64 N=4096 with MLX's cache off, against 0.59 ms
// warm). So outputs come from cudaMallocFromPoolAsync on MLX's own stream,
// ordered before the graph MLX launches on it, and are handed to MLX as
// cu::CudaBuffer {data, size, device} (MLX's layout for device buffers), with
// a deleter that frees them back to the pool. What MLX does with its own
// device buffers works on these too: its kernels read them, it donates them,
// and a host read (np.array) copies one into managed memory and frees the
// device copy itself (CudaAllocator::move_to_unified_memory), after which
// the deleter frees the managed copy.
//
// The pool keeps up to its release threshold of freed memory across
// synchronizations, as MLX's buffer cache keeps its own; the threshold is
// flashsnn's cache limit (an eighth of the GPU's memory unless
// FLASHSNN_CACHE_LIMIT_MB or flashsnn.memory.set_cache_limit says).
#include <cuda_runtime.h>

#include <map>
#include <mutex>
#include <string>

#include "mlx/allocator.h"
#include "mlx/backend/cuda/allocator.h"
#include "mlx/backend/cuda/device.h"

#include "../src/ops/buffers.h"
#include "../src/ops/common.h"

namespace flashsnn {

namespace {

void check(const char* what, cudaError_t e) {
  if (e != cudaSuccess)
    fail("memory", std::string("CUDA error in ") + what + ": " + cudaGetErrorName(e) + " (" +
                       cudaGetErrorString(e) + ")");
}

// MLX's device-buffer record, plus what the deleter needs once MLX may have
// moved the data to managed memory (device then reads -1).
struct PoolBuffer : mx::cu::CudaBuffer {
  int gpu;       // the pool it came from
  size_t bytes;  // as counted in that pool's active bytes
};

struct Pool {
  cudaMemPool_t pool = nullptr;
  cudaStream_t free_stream = nullptr;  // frees need a stream; never MLX's
  size_t active = 0, peak = 0, limit = 0;
};

class Pools {
 public:
  static Pools& get() {
    // Never destroyed: buffers released at exit still find their pool.
    static auto* pools = new Pools();
    return *pools;
  }

  Pool& at(int gpu) {
    std::lock_guard<std::mutex> lock(mutex_);
    return at_locked(gpu);
  }

  void* take(int gpu, size_t bytes, cudaStream_t stream) {
    Pool& p = at(gpu);
    void* data = nullptr;
    check("cudaSetDevice", cudaSetDevice(gpu));
    cudaError_t e = cudaMallocFromPoolAsync(&data, bytes, p.pool, stream);
    if (e == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      fail("memory", "out of GPU memory for a " + std::to_string(bytes) +
                         "-byte output; mx.clear_cache() and flashsnn.memory.clear_cache() "
                         "give back what MLX's and flashsnn's caches hold");
    }
    check("cudaMallocFromPoolAsync", e);
    std::lock_guard<std::mutex> lock(mutex_);
    p.active += bytes;
    p.peak = std::max(p.peak, p.active);
    return data;
  }

  // Runs where MLX drops the last reference (its completion thread, or the
  // caller's): never throws. Errors are ignored only where there is no one
  // to report them to (at exit, CUDA may already be shut down).
  void give_back(PoolBuffer* b) {
    if (b->device >= 0) {
      cudaSetDevice(b->gpu);
      cudaFreeAsync(b->data, at(b->gpu).free_stream);
    } else if (b->data != nullptr) {
      cudaPointerAttributes a{};
      if (cudaPointerGetAttributes(&a, b->data) == cudaSuccess && a.type == cudaMemoryTypeHost) {
        cudaFreeHost(b->data);
      } else {
        cudaFree(b->data);
      }
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      at_locked(b->gpu).active -= b->bytes;
    }
    delete b;
  }

  MemoryStats stats(int gpu) {
    Pool& p = at(gpu);
    uint64_t reserved = 0, used = 0;
    check("cudaMemPoolGetAttribute",
          cudaMemPoolGetAttribute(p.pool, cudaMemPoolAttrReservedMemCurrent, &reserved));
    check("cudaMemPoolGetAttribute",
          cudaMemPoolGetAttribute(p.pool, cudaMemPoolAttrUsedMemCurrent, &used));
    std::lock_guard<std::mutex> lock(mutex_);
    return {p.active, p.peak, size_t(reserved - used), p.limit};
  }

  void reset_peak(int gpu) {
    Pool& p = at(gpu);
    std::lock_guard<std::mutex> lock(mutex_);
    p.peak = p.active;
  }

  size_t set_limit(int gpu, size_t bytes) {
    Pool& p = at(gpu);
    // Frees are stream-ordered (on free_stream, or MLX's own for a buffer it
    // moved to managed memory): until they have run, the pool counts that
    // memory as used and cannot give it back.
    check("cudaSetDevice", cudaSetDevice(gpu));
    check("cudaDeviceSynchronize", cudaDeviceSynchronize());
    uint64_t v = bytes;
    check("cudaMemPoolSetAttribute",
          cudaMemPoolSetAttribute(p.pool, cudaMemPoolAttrReleaseThreshold, &v));
    check("cudaMemPoolTrimTo", cudaMemPoolTrimTo(p.pool, bytes));
    std::lock_guard<std::mutex> lock(mutex_);
    std::swap(p.limit, bytes);
    return bytes;
  }

  void clear(int gpu) {
    Pool& p = at(gpu);
    check("cudaSetDevice", cudaSetDevice(gpu));
    check("cudaDeviceSynchronize", cudaDeviceSynchronize());  // as in set_limit
    check("cudaMemPoolTrimTo", cudaMemPoolTrimTo(p.pool, 0));
  }

 private:
  Pool& at_locked(int gpu) {
    Pool& p = pools_[gpu];
    if (p.pool != nullptr) return p;
    check("cudaSetDevice", cudaSetDevice(gpu));
    cudaMemPoolProps props{};
    props.allocType = cudaMemAllocationTypePinned;
    props.location.type = cudaMemLocationTypeDevice;
    props.location.id = gpu;
    check("cudaMemPoolCreate", cudaMemPoolCreate(&p.pool, &props));
    check("cudaStreamCreateWithFlags",
          cudaStreamCreateWithFlags(&p.free_stream, cudaStreamNonBlocking));
    size_t free = 0, total = 0;
    check("cudaMemGetInfo", cudaMemGetInfo(&free, &total));
    p.limit = initial_cache_limit(total);
    uint64_t threshold = p.limit;
    check("cudaMemPoolSetAttribute",
          cudaMemPoolSetAttribute(p.pool, cudaMemPoolAttrReleaseThreshold, &threshold));
    return p;
  }

  std::mutex mutex_;
  std::map<int, Pool> pools_;
};

int gpu_index(const mx::Device& device) {
  return mx::cu::device(device).cuda_device();
}

}  // namespace

void alloc_output(mx::array& out, const mx::Stream& s) {
  // CPU kernels in a CUDA build: MLX's own memory (managed, as MLX's CPU ops
  // use here).
  if (s.device.type == mx::Device::cpu || out.nbytes() == 0) {
    out.set_data(mx::allocator::malloc(out.nbytes()));
    return;
  }
  auto& enc = mx::cu::get_command_encoder(s);
  const int gpu = enc.device().cuda_device();
  const size_t bytes = out.nbytes();
  void* data = Pools::get().take(gpu, bytes, enc.stream());
  auto* b = new PoolBuffer{{data, bytes, gpu}, gpu, bytes};
  out.set_data(mx::allocator::Data(mx::allocator::Buffer(b), [](mx::allocator::Buffer buf) {
    Pools::get().give_back(static_cast<PoolBuffer*>(buf.ptr()));
  }));
}

// The CPU's outputs use MLX's allocator in this build: an empty cache.
MemoryStats memory_stats(const mx::Device& device) {
  if (device.type == mx::Device::cpu) return {0, 0, 0, 0};
  return Pools::get().stats(gpu_index(device));
}

void reset_peak_memory(const mx::Device& device) {
  if (device.type == mx::Device::cpu) return;
  Pools::get().reset_peak(gpu_index(device));
}

size_t set_cache_limit(const mx::Device& device, size_t bytes) {
  if (device.type == mx::Device::cpu) return 0;
  return Pools::get().set_limit(gpu_index(device), bytes);
}

void clear_cache(const mx::Device& device) {
  if (device.type == mx::Device::cpu) return;
  Pools::get().clear(gpu_index(device));
}

}  // namespace flashsnn

// Output memory in MLX's Metal build (src/ops/buffers.h): MLX's own
// allocator. On Apple silicon it hands out shared-storage Metal buffers from
// MLX's own cache, which the GPU and the CPU both address; the managed-memory
// and page-fault costs that made the CUDA and Linux CPU builds keep a cache of
// their own (csrc/buffers.cpp, src/no_gpu/buffers.cpp) have not been measured
// here (no Apple hardware has run flashsnn yet), so this build keeps none and
// reports an empty one.
#include "mlx/allocator.h"

#include "../src/ops/buffers.h"

namespace flashsnn {

void alloc_output(mx::array& out, const mx::Stream&) {
  out.set_data(mx::allocator::malloc(out.nbytes()));
}

MemoryStats memory_stats(const mx::Device&) {
  return {0, 0, 0, 0};
}

void reset_peak_memory(const mx::Device&) {}

size_t set_cache_limit(const mx::Device&, size_t) {
  return 0;
}

void clear_cache(const mx::Device&) {}

}  // namespace flashsnn

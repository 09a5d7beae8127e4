// The kernels: one per (family, dtype, reset, mode, neurons per thread),
// each one line around the per-thread code of family.cuh, and the table
// that maps runtime values to a kernel's host stub. Included once per dtype
// and direction (forward_<dtype>.cu, backward_<dtype>.cu) so that the build
// compiles them in parallel, as the CPU's forward_/backward_<dtype>.cpp.
// Kernels exist only for the resets and modes a family has (fs::has_reset /
// fs::has_mode): with the four families of 02d8872, 21 (family, reset, mode)
// per dtype and V, 252 kernels in all (forward and backward), where every
// reset and mode of every family would be 432 (docs/cuda.md).
#pragma once

#include <cuda_runtime.h>

#include "../src/ops/dispatch.h"
#include "family.cuh"

namespace flashsnn::cuda {

namespace {

__device__ __forceinline__ int64_t global_thread() {
  return int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
}

// The surrogate id and detach are uniform runtime values (one switch per
// step), not template arguments: 9 times fewer kernels.
template <class F, typename T, int RESET, int MODE, int V>
__global__ void __launch_bounds__(kMaxBlock, min_blocks(false, V))
    family_forward_kernel(const __grid_constant__ FwdParams p) {
  forward_thread<F, T, RESET, MODE, V>(p, global_thread());
}

template <class F, typename T, int RESET, int MODE, int V>
__global__ void __launch_bounds__(kMaxBlock, min_blocks(true, V))
    family_backward_kernel(const __grid_constant__ BwdParams p) {
  // The compensated gradient sums (family.cuh, fold): 2 x kConsts x V floats
  // a thread, at most 24 KB a block (6 constants, V = 4).
  __shared__ float sums[fold_slots<F, V>() * kMaxBlock];
  backward_thread<F, T, RESET, MODE, V>(p, global_thread(),
                                        FoldSlots<kMaxBlock>{sums + threadIdx.x});
}

}  // namespace

// The host stub of the kernel for these runtime values, or null when the
// family has no such reset or mode (or the id is unknown). Instantiated one
// dtype and direction per file (forward_<dtype>.cu, backward_<dtype>.cu):
// six similar-sized nvcc jobs pack a 2-core build better than three.
template <typename T, bool BACKWARD>
const void* kernel_symbol(int family, int reset, int mode, int vec) {
  const void* sym = nullptr;
  dispatch_family(family, [&](auto f) {
    using F = decltype(f);
    dispatch_family_options<F>(reset, mode, [&](auto r, auto m) {
      constexpr int R = decltype(r)::value, M = decltype(m)::value;
      if constexpr (BACKWARD) {
        sym = vec == 4 ? reinterpret_cast<const void*>(&family_backward_kernel<F, T, R, M, 4>)
                       : reinterpret_cast<const void*>(&family_backward_kernel<F, T, R, M, 1>);
      } else {
        sym = vec == 4 ? reinterpret_cast<const void*>(&family_forward_kernel<F, T, R, M, 4>)
                       : reinterpret_cast<const void*>(&family_forward_kernel<F, T, R, M, 1>);
      }
    });
  });
  return sym;
}

}  // namespace flashsnn::cuda

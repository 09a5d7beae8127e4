// The selective scan's kernels, each one call into scan.cuh, and the table
// from (direction, states per lane) to a kernel's host stub. Included once
// per dtype (scan_<dtype>.cu) so that builds compile the three in parallel,
// as the families' forward_/backward_<dtype>.cu.
#pragma once

#include <cuda_runtime.h>

#include "scan.cuh"

namespace flashsnn::cuda {

namespace {

// The block's barrier and the warp's shuffles (xor, and from a lane) (every lane of the warp
// takes part: scan.cuh keeps its control flow uniform).
struct BlockSync {
  __device__ __forceinline__ void barrier() { __syncthreads(); }
  __device__ __forceinline__ float shfl_xor(float v, int off) {
    return __shfl_xor_sync(0xffffffffu, v, off);
  }
  __device__ __forceinline__ float shfl(float v, int lane) {
    return __shfl_sync(0xffffffffu, v, lane);
  }
};

template <typename T, int SPL>
__global__ void __launch_bounds__(kScanForwardBlock)
    scan_forward_kernel(const __grid_constant__ ScanParams p) {
  BlockSync sync;
  scan_forward_thread<T, SPL>(p, int64_t(blockIdx.x) * blockDim.x + threadIdx.x, sync);
}

// Four blocks per SM: at most 128 registers. At 166 (8 positions loaded
// ahead) three fit, and batch 32 x 32 channel groups ran in 2.6 waves at
// 17% occupancy on an H200 (455 us of a 0.97 ms forward+backward, Nsight
// Compute); the build refuses the spills that 8 positions ahead cost at
// 128 (scripts/gpu/build_cuda.sh), so the backward loads 4 (scan.cuh).
template <typename T, int SPL>
__global__ void __launch_bounds__(kScanBlock, 4)
    scan_backward_kernel(const __grid_constant__ ScanParams p) {
  extern __shared__ float red[];
  BlockSync sync;
  scan_backward_block<T, SPL>(p, blockIdx.x, int(threadIdx.x), red, sync);
}

}  // namespace

// The kernel for u's dtype T, a direction and scan_spl(N) (1 or 2); null
// for any other.
template <typename T>
const void* scan_symbol(bool backward, int spl) {
  if (spl == 1)
    return backward ? reinterpret_cast<const void*>(&scan_backward_kernel<T, 1>)
                    : reinterpret_cast<const void*>(&scan_forward_kernel<T, 1>);
  if (spl == 2)
    return backward ? reinterpret_cast<const void*>(&scan_backward_kernel<T, 2>)
                    : reinterpret_cast<const void*>(&scan_forward_kernel<T, 2>);
  return nullptr;
}

}  // namespace flashsnn::cuda

// The selective scan's kernels, each one call into scan.cuh, and the table
// from (direction, state count) to a kernel's host stub. Included once per
// dtype (scan_<dtype>.cu) so that builds compile the three in parallel, as
// the families' forward_/backward_<dtype>.cu.
#pragma once

#include <cuda_runtime.h>

#include "scan.cuh"

namespace flashsnn::cuda {

namespace {

template <typename T, int NMAX>
__global__ void __launch_bounds__(kScanForwardBlock)
    scan_forward_kernel(const __grid_constant__ ScanParams p) {
  scan_forward_thread<T, NMAX>(p, int64_t(blockIdx.x) * blockDim.x + threadIdx.x);
}

struct BlockSync {
  __device__ __forceinline__ void barrier() { __syncthreads(); }
};

template <typename T, int NMAX>
__global__ void __launch_bounds__(kScanChannels)
    scan_backward_kernel(const __grid_constant__ ScanParams p) {
  extern __shared__ float red[];
  BlockSync sync;
  scan_backward_block<T, NMAX>(p, blockIdx.x, int(threadIdx.x), red, sync);
}

}  // namespace

// The kernel for u's dtype T, a direction and scan_nmax(N); null for any
// other NMAX.
template <typename T>
const void* scan_symbol(bool backward, int nmax) {
  if (nmax == 16)
    return backward ? reinterpret_cast<const void*>(&scan_backward_kernel<T, 16>)
                    : reinterpret_cast<const void*>(&scan_forward_kernel<T, 16>);
  if (nmax == 64)
    return backward ? reinterpret_cast<const void*>(&scan_backward_kernel<T, 64>)
                    : reinterpret_cast<const void*>(&scan_forward_kernel<T, 64>);
  return nullptr;
}

}  // namespace flashsnn::cuda

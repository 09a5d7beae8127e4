// The selective scan's kernels, each one call into scan.cuh, and the table
// from (direction, N) to a kernel's host stub. Included once per dtype
// (scan_<dtype>.cu) so that builds compile the three in parallel, as the
// families' forward_/backward_<dtype>.cu.
#pragma once

#include <cuda_runtime.h>

#include "scan.cuh"

namespace flashsnn::cuda {

namespace {

// The block's barrier and the warp's shuffles (xor, and from a lane of a
// width-lane segment) (every lane of the warp takes part: scan.cuh keeps its
// control flow uniform).
struct BlockSync {
  __device__ __forceinline__ void barrier() { __syncthreads(); }
  __device__ __forceinline__ float shfl_xor(float v, int off) {
    return __shfl_xor_sync(0xffffffffu, v, off);
  }
  __device__ __forceinline__ float shfl(float v, int lane, int width) {
    return __shfl_sync(0xffffffffu, v, lane, width);
  }
};

// Host stubs of the kernels of P lanes per channel (specialized below).
template <int P>
struct ScanKernels;

// The forward: blocks of 64 threads, at least 12 per SM (at most 85
// registers) with 8 or more lanes per channel, 8 (128) with fewer. Without a
// minimum ptxas took 48-63 registers, but spilled a predicate around the
// calls of sigmoid's division slow path in some builds (8 bytes at 48
// registers: float16, P = 32, two states per lane), and a minimum of 16 (64
// registers) spilled at 4 states per lane (bfloat16, lane caps 4-16); with
// these, 72-80 and 78-96, and no spill in any dtype or lane cap (sm_90).
// The backward: four blocks per SM, at most 128 registers. At 166 (8
// positions loaded ahead) three fit, and batch 32 x 32 channel groups ran
// in 2.6 waves at 17% occupancy on an H200 (455 us of a 0.97 ms
// forward+backward, Nsight Compute); the build refuses the spills that 8
// positions ahead cost at 128 (scripts/gpu/build_cuda.sh), so the backward
// loads 4 (scan.cuh).
// Each lane count's kernels live in a namespace of their own (a profile
// shows lanes16::scan_forward_kernel<float, 1>): the names keep the form
// <dtype, states per lane> that tests/cuda/test_cuda_compile.py looks for.
#define FLASHSNN_SCAN_KERNELS(P_, FWD_BOUNDS)                                              \
  namespace lanes##P_ {                                                                   \
  template <typename T, int SPL>                                                          \
  __global__ void __launch_bounds__ FWD_BOUNDS                                            \
      scan_forward_kernel(const __grid_constant__ ScanParams p) {                         \
    BlockSync sync;                                                                       \
    scan_forward_thread<T, P_, SPL>(p, blockIdx.x, int(threadIdx.x), sync);                \
  }                                                                                       \
  template <typename T, int SPL>                                                          \
  __global__ void __launch_bounds__(kScanBlock, 4)                                        \
      scan_backward_kernel(const __grid_constant__ ScanParams p) {                        \
    extern __shared__ float red[];                                                        \
    BlockSync sync;                                                                       \
    scan_backward_block<T, P_, SPL>(p, blockIdx.x, int(threadIdx.x), red, sync);          \
  }                                                                                       \
  }                                                                                       \
  template <>                                                                             \
  struct ScanKernels<P_> {                                                                \
    template <typename T, int SPL>                                                        \
    static const void* get(bool backward) {                                               \
      return backward ? reinterpret_cast<const void*>(&lanes##P_::scan_backward_kernel<T, SPL>) \
                      : reinterpret_cast<const void*>(&lanes##P_::scan_forward_kernel<T, SPL>); \
    }                                                                                     \
  };

FLASHSNN_SCAN_KERNELS(1, (kScanForwardBlock, 8))
FLASHSNN_SCAN_KERNELS(2, (kScanForwardBlock, 8))
FLASHSNN_SCAN_KERNELS(4, (kScanForwardBlock, 8))
FLASHSNN_SCAN_KERNELS(8, (kScanForwardBlock, 12))
FLASHSNN_SCAN_KERNELS(16, (kScanForwardBlock, 12))
FLASHSNN_SCAN_KERNELS(32, (kScanForwardBlock, 12))
#undef FLASHSNN_SCAN_KERNELS

}  // namespace

// The kernel for u's dtype T, a direction and N states (scan_lanes(N)
// lanes, scan_spl(N) states each); null for an N none takes. (int N: the
// explicit instantiations in scan_<dtype>.cu name this signature.)
template <typename T>
const void* scan_symbol(bool backward, int N) {
  const void* sym = nullptr;
  scan_with_config(N, [&](auto cfg) {
    using C = decltype(cfg);
    sym = ScanKernels<C::P>::template get<T, C::SPL>(backward);
  });
  return sym;
}

}  // namespace flashsnn::cuda

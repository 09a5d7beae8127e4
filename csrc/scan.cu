// The selective scan's launch API (scan.h) and its sum kernel; the scan
// kernels are in scan_<dtype>.cu (scan_kernels.cuh), for the lane and state
// counts of scan_lanes and scan_spl. Symbols become CUfunctions through
// this extension's cudart, as the families' (family.cu, resolve_kernel).
#include <cuda_runtime.h>

#include "family.h"
#include "scan.cuh"

// The kernels' lane cap, for the host compiler's check (scan.h).
extern "C" const int FLASHSNN_SCAN_CAP_NAME(FLASHSNN_SCAN_LANES_CAP) = FLASHSNN_SCAN_LANES_CAP;

namespace flashsnn::cuda {

// scan_kernels.cuh, instantiated in scan_<dtype>.cu.
template <typename T>
const void* scan_symbol(bool backward, int N);

namespace {

__global__ void __launch_bounds__(kScanSumBlock)
    scan_sum_kernel(const __grid_constant__ ScanSumParams p) {
  scan_sum_thread(p, int(blockIdx.y), int64_t(blockIdx.x) * blockDim.x + threadIdx.x);
}

const void* symbol_of(bool backward, int dtype, int64_t N) {
  if (N < 1 || N > kScanMaxN) return nullptr;
  switch (dtype) {
    case kFloat32: return scan_symbol<float>(backward, int(N));
    case kFloat16: return scan_symbol<__half>(backward, int(N));
    case kBFloat16: return scan_symbol<__nv_bfloat16>(backward, int(N));
    default: return nullptr;
  }
}

constexpr const char* kNoKernel =
    "the CUDA kernels take 1 to 64 states per channel (A's N) in float32, float16 or "
    "bfloat16; backend='auto' runs the reference for others";

const char* grid_of(int64_t blocks, unsigned* grid) {
  if (blocks < 1 || blocks > 0x7fffffff) return "layer too large for one launch (2^31 blocks)";
  *grid = unsigned(blocks);
  return nullptr;
}

}  // namespace

const char* scan_launch(const ScanParams& p, bool backward, int dtype, int device,
                        ScanLaunch* out) {
  const void* sym = symbol_of(backward, dtype, p.N);
  if (!sym) return kNoKernel;
  int sms = 0;
  if (const char* err = resolve_kernel(sym, device, &out->fn, &sms)) return err;
  out->block = scan_block_threads(backward);
  out->shared = backward ? scan_shared_bytes(p.N) : 0;
  return grid_of(scan_blocks(p.Bt, p.D, p.N, backward), &out->grid);
}

const char* scan_sum_launch(const ScanSumParams& p, int device, ScanLaunch* out) {
  int sms = 0;
  if (const char* err =
          resolve_kernel(reinterpret_cast<const void*>(&scan_sum_kernel), device, &out->fn, &sms))
    return err;
  out->block = kScanSumBlock;
  out->shared = 0;
  return grid_of(scan_sum_blocks(p), &out->grid);
}

}  // namespace flashsnn::cuda

// Leaky on CUDA: the kernels, and the C-style API that hands them to the
// eval_gpu glue (leaky.cpp). No MLX header is included here.
//
// libmlx.so links cudart statically, and so does this extension: the two
// cudart copies know nothing of each other's registered kernels. Passing a
// kernel's host stub to MLX would make MLX's cudart look it up and fail, so
// this file resolves each kernel to a driver-level CUfunction with its own
// cudart (cudaGetFuncBySymbol) and MLX launches that (add_kernel_node_raw).
// Checked on an H100 with MLX 0.32.4 (docs/cuda.md).
#include <cuda_runtime.h>

#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "../src/ops/dispatch.h"
#include "leaky.cuh"

namespace flashsnn::cuda {

namespace {

__device__ __forceinline__ int64_t global_thread() {
  return int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
}

// One kernel per (dtype, reset, mode, neurons per thread); the surrogate id
// and detach are uniform runtime values (one switch per step).
template <typename T, int RESET, int MODE, int V>
__global__ void __launch_bounds__(kMaxBlock, min_blocks(false, V))
    leaky_forward_kernel(const __grid_constant__ LeakyFwdParams p) {
  leaky_forward_thread<T, RESET, MODE, V>(p, global_thread());
}

template <typename T, int RESET, int MODE, int V>
__global__ void __launch_bounds__(kMaxBlock, min_blocks(true, V))
    leaky_backward_kernel(const __grid_constant__ LeakyBwdParams p) {
  leaky_backward_thread<T, RESET, MODE, V>(p, global_thread());
}

// The host stub of the kernel for these runtime values.
template <bool BACKWARD, typename T, int V>
const void* symbol(int reset, int mode) {
  const void* sym = nullptr;
  dispatch_reset_mode(reset, mode, [&](auto r, auto m) {
    constexpr int R = decltype(r)::value, M = decltype(m)::value;
    if constexpr (BACKWARD) {
      sym = reinterpret_cast<const void*>(&leaky_backward_kernel<T, R, M, V>);
    } else {
      sym = reinterpret_cast<const void*>(&leaky_forward_kernel<T, R, M, V>);
    }
  });
  return sym;
}

template <bool BACKWARD, int V>
const void* symbol(int dtype, int reset, int mode) {
  switch (dtype) {
    case kFloat32: return symbol<BACKWARD, float, V>(reset, mode);
    case kFloat16: return symbol<BACKWARD, __half, V>(reset, mode);
    default: return symbol<BACKWARD, __nv_bfloat16, V>(reset, mode);
  }
}

thread_local std::string last_error;

const char* cuda_error(const char* what, cudaError_t e) {
  last_error = std::string("CUDA error in ") + what + ": " + cudaGetErrorName(e) + " (" +
               cudaGetErrorString(e) + ")";
  return last_error.c_str();
}

// CUfunctions and SM counts, per device; resolved once.
std::mutex cache_mutex;
std::map<std::pair<int, const void*>, CUfunction> functions;
std::map<int, int> sm_counts;

const char* resolve(const void* sym, int device, CUfunction* fn, int* sms) {
  std::lock_guard<std::mutex> lock(cache_mutex);
  auto f = functions.find({device, sym});
  auto s = sm_counts.find(device);
  if (f != functions.end() && s != sm_counts.end()) {
    *fn = f->second;
    *sms = s->second;
    return nullptr;
  }
  // MLX made `device` current through its own cudart; make it current in
  // ours too (same primary context), so the function belongs to it.
  if (cudaError_t e = cudaSetDevice(device)) return cuda_error("cudaSetDevice", e);
  if (s == sm_counts.end()) {
    int n = 0;
    if (cudaError_t e = cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device))
      return cuda_error("cudaDeviceGetAttribute", e);
    s = sm_counts.emplace(device, n).first;
  }
  if (f == functions.end()) {
    cudaFunction_t cf = nullptr;
    if (cudaError_t e = cudaGetFuncBySymbol(&cf, sym))
      return cuda_error("cudaGetFuncBySymbol (was this flashsnn built for this GPU's "
                        "architecture? see docs/cuda.md)", e);
    f = functions.emplace(std::make_pair(device, sym), reinterpret_cast<CUfunction>(cf)).first;
  }
  *fn = f->second;
  *sms = s->second;
  return nullptr;
}

// Measurement knobs for tuning runs (benchmarks/gpu_diag.py):
// FLASHSNN_CUDA_VEC=1|4 and FLASHSNN_CUDA_BLOCK=32..128 replace leaky_shape's
// choice (a vector width the alignment does not allow is ignored).
void tuning_override(int64_t N, bool ok, LeakyShape* s) {
  static const int vec = [] {
    const char* v = std::getenv("FLASHSNN_CUDA_VEC");
    return v ? std::atoi(v) : 0;
  }();
  static const int block = [] {
    const char* v = std::getenv("FLASHSNN_CUDA_BLOCK");
    return v ? std::atoi(v) : 0;
  }();
  if (vec == 1 || (vec == 4 && ok && N % 4 == 0)) s->vec = vec;
  if (block >= 32 && block <= int(kMaxBlock) && block % 32 == 0) s->block = unsigned(block);
  if (vec || block) {
    const int64_t threads = (N + s->vec - 1) / s->vec;
    s->grid = unsigned((threads + s->block - 1) / s->block);
  }
}

template <bool BACKWARD, typename P>
const char* launch(const P& p, int dtype, int reset, int mode, int device, Launch* out) {
  if (dtype < kFloat32 || dtype > kBFloat16) return "internal: unknown dtype";
  // Resolve with the V = 1 kernel first: the SM count decides V.
  CUfunction fn = nullptr;
  int sms = 0;
  if (const char* err = resolve(symbol<BACKWARD, 1>(dtype, reset, mode), device, &fn, &sms))
    return err;
  LeakyShape s = leaky_shape(p.N, BACKWARD, vec_ok(p, dtype), sms);
  tuning_override(p.N, vec_ok(p, dtype), &s);
  if (s.vec == 4) {
    if (const char* err = resolve(symbol<BACKWARD, 4>(dtype, reset, mode), device, &fn, &sms))
      return err;
  }
  if (int64_t(s.grid) * s.block * s.vec < p.N || s.grid > 0x7fffffffu)
    return "layer too large for one launch (more than 2^31 blocks)";
  *out = Launch{fn, s.grid, s.block, s.vec};
  return nullptr;
}

}  // namespace

const char* leaky_forward_launch(const LeakyFwdParams& p, int dtype, int reset, int mode,
                                 int device, Launch* out) {
  return launch<false>(p, dtype, reset, mode, device, out);
}

const char* leaky_backward_launch(const LeakyBwdParams& p, int dtype, int reset, int mode,
                                  int device, Launch* out) {
  return launch<true>(p, dtype, reset, mode, device, out);
}

const char* leaky_check_device(int device) {
  // Every kernel is built for the same architectures, so one resolves for
  // all: cudaGetFuncBySymbol fails the same way for each when this GPU's is
  // missing. resolve() caches it, so later calls only take the lock.
  int prev = 0;
  const bool had = cudaGetDevice(&prev) == cudaSuccess;
  CUfunction fn = nullptr;
  int sms = 0;
  const char* err =
      resolve(symbol<false, 1>(kFloat32, fs::kSubtract, fs::kDelayed), device, &fn, &sms);
  if (had && prev != device) cudaSetDevice(prev);
  return err;
}

}  // namespace flashsnn::cuda

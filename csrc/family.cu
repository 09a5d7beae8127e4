// Every fused family on CUDA: the C-style API that hands the kernels
// (kernels.cuh, instantiated per dtype and direction in
// forward_/backward_*.cu) to the eval_gpu glue (family.cpp): kernel
// choice, launch shape, symbol resolution. No MLX header is included here.
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

#include "family.cuh"

namespace flashsnn::cuda {

// kernels.cuh, explicitly instantiated in forward_/backward_<dtype>.cu.
template <typename T, bool BACKWARD>
const void* kernel_symbol(int family, int reset, int mode, int vec);

namespace {

template <bool BACKWARD>
const void* symbol_of(int family, int dtype, int reset, int mode, int vec) {
  switch (dtype) {
    case kFloat32: return kernel_symbol<float, BACKWARD>(family, reset, mode, vec);
    case kFloat16: return kernel_symbol<__half, BACKWARD>(family, reset, mode, vec);
    default: return kernel_symbol<__nv_bfloat16, BACKWARD>(family, reset, mode, vec);
  }
}

const void* symbol(bool backward, int family, int dtype, int reset, int mode, int vec) {
  return backward ? symbol_of<true>(family, dtype, reset, mode, vec)
                  : symbol_of<false>(family, dtype, reset, mode, vec);
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
// FLASHSNN_CUDA_VEC=1|4 and FLASHSNN_CUDA_BLOCK=32..128 replace
// launch_shape's choice (a vector width the alignment does not allow is
// ignored). Every family, every kernel.
void tuning_override(int64_t N, bool ok, LaunchShape* s) {
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
const char* launch(const P& p, int family, int dtype, int reset, int mode, int device,
                   Launch* out) {
  if (dtype < kFloat32 || dtype > kBFloat16) return "internal: unknown dtype";
  const void* sym1 = symbol(BACKWARD, family, dtype, reset, mode, 1);
  if (!sym1) return "internal: no CUDA kernel for this family, reset and mode";
  // Resolve with the V = 1 kernel first: the SM count decides V.
  CUfunction fn = nullptr;
  int sms = 0;
  if (const char* err = resolve(sym1, device, &fn, &sms)) return err;
  const bool ok = vec_ok(p, dtype);
  LaunchShape s = launch_shape(p.N, BACKWARD, ok, sms);
  tuning_override(p.N, ok, &s);
  if (s.vec == 4) {
    if (const char* err = resolve(symbol(BACKWARD, family, dtype, reset, mode, 4), device, &fn,
                                  &sms))
      return err;
  }
  if (int64_t(s.grid) * s.block * s.vec < p.N || s.grid > 0x7fffffffu)
    return "layer too large for one launch (more than 2^31 blocks)";
  *out = Launch{fn, s.grid, s.block, s.vec};
  return nullptr;
}

}  // namespace

const char* resolve_kernel(const void* sym, int device, CUfunction* fn, int* sms) {
  return resolve(sym, device, fn, sms);
}

const char* family_forward_launch(const FwdParams& p, int family, int dtype, int reset, int mode,
                                  int device, Launch* out) {
  return launch<false>(p, family, dtype, reset, mode, device, out);
}

const char* family_backward_launch(const BwdParams& p, int family, int dtype, int reset,
                                   int mode, int device, Launch* out) {
  return launch<true>(p, family, dtype, reset, mode, device, out);
}

const char* family_check_device(int device) {
  // Every kernel is built for the same architectures, so one resolves for
  // all: cudaGetFuncBySymbol fails the same way for each when this GPU's is
  // missing. resolve() caches it, so later calls only take the lock. (The
  // first reset and mode family 0 has a kernel for.)
  const void* sym = nullptr;
  for (int r = 0; r < 3 && !sym; ++r) {
    for (int m = 0; m < 3 && !sym; ++m) sym = symbol(false, 0, kFloat32, r, m, 1);
  }
  if (!sym) return "internal: no CUDA kernel for family 0";
  int prev = 0;
  const bool had = cudaGetDevice(&prev) == cudaSuccess;
  CUfunction fn = nullptr;
  int sms = 0;
  const char* err = resolve(sym, device, &fn, &sms);
  if (had && prev != device) cudaSetDevice(prev);
  return err;
}

}  // namespace flashsnn::cuda

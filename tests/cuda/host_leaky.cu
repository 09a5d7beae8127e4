// Runs the CUDA kernels' per-thread code (csrc/leaky.cuh) on the CPU: every
// thread of the grid that leaky_shape picks, one after another. The kernels in
// csrc/leaky.cu are one call to these same functions, so this checks their
// indexing, vector loads/stores, unrolled batches, tails and per-step math
// without a GPU. Built by tests/cuda/test_kernel_logic.py with nvcc into a
// shared library that Python drives through ctypes.
#include <cstddef>

#include "../../csrc/leaky.cuh"
#include "../../src/ops/dispatch.h"

using namespace flashsnn;
using namespace flashsnn::cuda;

namespace {

template <bool BACKWARD, typename T, int V, typename P>
void run_grid(const P& p, int reset, int mode, const LeakyShape& s) {
  dispatch_reset_mode(reset, mode, [&](auto r, auto m) {
    constexpr int R = decltype(r)::value, M = decltype(m)::value;
    const int64_t threads = int64_t(s.grid) * s.block;
    for (int64_t tid = 0; tid < threads; ++tid) {
      if constexpr (BACKWARD) {
        leaky_backward_thread<T, R, M, V>(p, tid);
      } else {
        leaky_forward_thread<T, R, M, V>(p, tid);
      }
    }
  });
}

template <bool BACKWARD, int V, typename P>
void run_dtype(const P& p, int dtype, int reset, int mode, const LeakyShape& s) {
  switch (dtype) {
    case kFloat32: return run_grid<BACKWARD, float, V>(p, reset, mode, s);
    case kFloat16: return run_grid<BACKWARD, __half, V>(p, reset, mode, s);
    default: return run_grid<BACKWARD, __nv_bfloat16, V>(p, reset, mode, s);
  }
}

// vec: 0 takes leaky_shape's choice for `sm_count`; 1 or 4 forces it (4 only
// where the rows allow it). Returns the neurons per thread used, -1 if 4 was
// forced on rows that cannot take it.
template <bool BACKWARD, typename P>
int run(const P& p, int dtype, int reset, int mode, int sm_count, int vec) {
  const bool ok = vec_ok(p, dtype);
  LeakyShape s = leaky_shape(p.N, BACKWARD, ok, sm_count);
  if (vec == 4 && !ok) return -1;
  if (vec != 0 && vec != s.vec) {
    // Same block and grid rule, other vector width.
    const int64_t threads = (p.N + vec - 1) / vec;
    s.vec = vec;
    s.grid = unsigned((threads + s.block - 1) / s.block);
  }
  if (s.vec == 4) {
    run_dtype<BACKWARD, 4>(p, dtype, reset, mode, s);
  } else {
    run_dtype<BACKWARD, 1>(p, dtype, reset, mode, s);
  }
  return s.vec;
}

}  // namespace

extern "C" {

int fs_leaky_forward(const LeakyFwdParams* p, int dtype, int reset, int mode, int sm_count,
                     int vec) {
  return run<false>(*p, dtype, reset, mode, sm_count, vec);
}

int fs_leaky_backward(const LeakyBwdParams* p, int dtype, int reset, int mode, int sm_count,
                      int vec) {
  return run<true>(*p, dtype, reset, mode, sm_count, vec);
}

void fs_leaky_shape(int64_t N, int backward, int vec_ok, int sm_count, int* vec,
                    unsigned* block, unsigned* grid) {
  const LeakyShape s = leaky_shape(N, backward != 0, vec_ok != 0, sm_count);
  *vec = s.vec;
  *block = s.block;
  *grid = s.grid;
}

int fs_fwd_vec_ok(const LeakyFwdParams* p, int dtype) {
  return vec_ok(*p, dtype);
}

// Layout checks for the ctypes mirrors of the parameter structs.
size_t fs_sizeof_fwd() {
  return sizeof(LeakyFwdParams);
}
size_t fs_sizeof_bwd() {
  return sizeof(LeakyBwdParams);
}
size_t fs_offsetof_fwd_T() {
  return offsetof(LeakyFwdParams, T);
}
size_t fs_offsetof_bwd_g() {
  return offsetof(LeakyBwdParams, g);
}

}  // extern "C"

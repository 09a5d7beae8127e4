// Runs the CUDA kernels' per-thread code (csrc/family.cuh) on the CPU: every
// thread of the grid that launch_shape picks, one after another, for every
// family of src/step/families.h. The kernels (csrc/kernels.cuh) are one call
// to these same functions, so this checks their indexing, vector loads and
// stores, unrolled batches, tails and per-step math without a GPU. Built by
// tests/cuda/test_cuda_kernel_logic.py with nvcc into a shared library that
// Python drives through ctypes. FS_HOST_DTYPE (0, 1, 2) builds one dtype's
// part, so that the three parts compile in parallel; FS_HOST_COMMON the
// entry points, which call the parts.
#include <cstddef>

#include "../../csrc/family.cuh"
#include "../../src/ops/dispatch.h"

using namespace flashsnn;
using namespace flashsnn::cuda;

#if defined(FS_HOST_DTYPE)

namespace {

#if FS_HOST_DTYPE == 0
using T = float;
#elif FS_HOST_DTYPE == 1
using T = __half;
#else
using T = __nv_bfloat16;
#endif

template <bool BACKWARD, int V, typename P>
bool run_grid(const P& p, int family, int reset, int mode, int64_t threads) {
  bool ok = false;
  dispatch_family(family, [&](auto f) {
    using F = decltype(f);
    ok = dispatch_family_options<F>(reset, mode, [&](auto r, auto m) {
      constexpr int R = decltype(r)::value, M = decltype(m)::value;
      for (int64_t tid = 0; tid < threads; ++tid) {
        if constexpr (BACKWARD) {
          float slots[fold_slots<F, V>()];  // the kernel's shared-memory slots
          backward_thread<F, T, R, M, V>(p, tid, FoldSlots<1>{slots});
        } else {
          forward_thread<F, T, R, M, V>(p, tid);
        }
      }
    });
  });
  return ok;
}

}  // namespace

#define FS_PART(NAME) FS_PART2(NAME, FS_HOST_DTYPE)
#define FS_PART2(NAME, D) FS_PART3(NAME, D)
#define FS_PART3(NAME, D) NAME##_##D

bool FS_PART(fs_part_forward)(const FwdParams& p, int family, int reset, int mode, int vec,
                              int64_t threads) {
  return vec == 4 ? run_grid<false, 4>(p, family, reset, mode, threads)
                  : run_grid<false, 1>(p, family, reset, mode, threads);
}

bool FS_PART(fs_part_backward)(const BwdParams& p, int family, int reset, int mode, int vec,
                               int64_t threads) {
  return vec == 4 ? run_grid<true, 4>(p, family, reset, mode, threads)
                  : run_grid<true, 1>(p, family, reset, mode, threads);
}

#else  // FS_HOST_COMMON: the entry points

#define FS_DECLARE_PART(D)                                                                   \
  bool fs_part_forward_##D(const FwdParams&, int, int, int, int, int64_t);                   \
  bool fs_part_backward_##D(const BwdParams&, int, int, int, int, int64_t);
FS_DECLARE_PART(0)
FS_DECLARE_PART(1)
FS_DECLARE_PART(2)

namespace {

template <bool BACKWARD, typename P>
bool run_dtype(const P& p, int family, int dtype, int reset, int mode, int vec, int64_t threads) {
  if constexpr (BACKWARD) {
    switch (dtype) {
      case kFloat32: return fs_part_backward_0(p, family, reset, mode, vec, threads);
      case kFloat16: return fs_part_backward_1(p, family, reset, mode, vec, threads);
      default: return fs_part_backward_2(p, family, reset, mode, vec, threads);
    }
  } else {
    switch (dtype) {
      case kFloat32: return fs_part_forward_0(p, family, reset, mode, vec, threads);
      case kFloat16: return fs_part_forward_1(p, family, reset, mode, vec, threads);
      default: return fs_part_forward_2(p, family, reset, mode, vec, threads);
    }
  }
}

// vec: 0 takes launch_shape's choice for `sm_count`; 1 or 4 forces it (4
// only where the rows allow it). Returns the neurons per thread used, -1 if
// 4 was forced on rows that cannot take it, -2 for a family without this
// reset or mode.
template <bool BACKWARD, typename P>
int run(const P& p, int family, int dtype, int reset, int mode, int sm_count, int vec) {
  const bool ok = vec_ok(p, dtype);
  LaunchShape s = launch_shape(p.N, BACKWARD, ok, sm_count);
  if (vec == 4 && !ok) return -1;
  if (vec != 0 && vec != s.vec) {
    // Same block and grid rule, other vector width.
    const int64_t threads = (p.N + vec - 1) / vec;
    s.vec = vec;
    s.grid = unsigned((threads + s.block - 1) / s.block);
  }
  const int64_t threads = int64_t(s.grid) * s.block;
  if (!run_dtype<BACKWARD>(p, family, dtype, reset, mode, s.vec, threads)) return -2;
  return s.vec;
}

}  // namespace

extern "C" {

int fs_forward(const FwdParams* p, int family, int dtype, int reset, int mode, int sm_count,
               int vec) {
  return run<false>(*p, family, dtype, reset, mode, sm_count, vec);
}

int fs_backward(const BwdParams* p, int family, int dtype, int reset, int mode, int sm_count,
                int vec) {
  return run<true>(*p, family, dtype, reset, mode, sm_count, vec);
}

void fs_shape(int64_t N, int backward, int vec_ok, int sm_count, int* vec, unsigned* block,
              unsigned* grid) {
  const LaunchShape s = launch_shape(N, backward != 0, vec_ok != 0, sm_count);
  *vec = s.vec;
  *block = s.block;
  *grid = s.grid;
}

// Steps loaded ahead per batch (family.cuh), -1 for an unknown family.
int fs_unroll(int family, int backward, int vec) {
  int u = -1;
  dispatch_family(family, [&](auto f) {
    using F = decltype(f);
    u = backward ? bwd_unroll<F>(vec) : fwd_unroll<F>(vec);
  });
  return u;
}

int fs_fwd_vec_ok(const FwdParams* p, int dtype) {
  return vec_ok(*p, dtype);
}

int fs_bwd_vec_ok(const BwdParams* p, int dtype) {
  return vec_ok(*p, dtype);
}

// Layout checks for the ctypes mirrors of the parameter structs.
size_t fs_sizeof_fwd() {
  return sizeof(FwdParams);
}
size_t fs_sizeof_bwd() {
  return sizeof(BwdParams);
}
size_t fs_offsetof_fwd_mem_all() {
  return offsetof(FwdParams, mem_all);
}
size_t fs_offsetof_bwd_dstate_step() {
  return offsetof(BwdParams, dstate_step);
}
size_t fs_offsetof_bwd_g() {
  return offsetof(BwdParams, g);
}

}  // extern "C"

#endif

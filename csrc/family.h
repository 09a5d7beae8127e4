// Every fused family on CUDA: what the kernels (family.cu and the per-dtype
// kernels_*.cu, nvcc, no MLX headers) and the eval_gpu glue (family.cpp,
// host compiler, MLX headers) share. Plain structs and a C-style API, so that
// neither side sees the other's headers. Nothing here names a family: the
// kernels are generic over the trait (src/step/family.h), the tables below
// are sized by the largest family (fs::kMaxStates / kMaxParams / kMaxSaves),
// and the glue fills the first kStates / kParams / saves(mode) slots.
#pragma once

#include <cstdint>

#include <cuda.h>

#include "../src/step/families.h"

namespace flashsnn::cuda {

// x's dtype, as the kernels instantiate it (float, __half, __nv_bfloat16).
enum Dtype : int { kFloat32 = 0, kFloat16 = 1, kBFloat16 = 2 };

// Kernel arguments, passed by value as the kernel's only parameter (the glue
// hands its address to add_kernel_node_raw; 232 / 360 bytes, far below the
// 4 KB parameter limit). Arrays are row-contiguous, [T, N] with neuron i of
// step t at t * N + i; initial states and parameters are suffix arrays read
// as p[i % P] (src/ops/family.h, FamilyDims). Slots past the family's counts
// are null and never read.
struct FwdParams {
  const void* x;                          // [T, N], x's dtype
  const float* state0[fs::kMaxStates];    // [P_state[k]] initial states
  const float* param[fs::kMaxParams];     // [P_param[k]] raw parameters
  void* spk;                              // [T, N], x's dtype
  void* state_out[fs::kMaxStates];        // [N], or [T, N] when mem_all, x's dtype
  float* save[fs::kMaxSaves];             // [T, N], or null when not saved
  int64_t T, N;
  int64_t P_state[fs::kMaxStates];
  int64_t P_param[fs::kMaxParams];
  int mem_all;
};

struct BwdParams {
  const float* save[fs::kMaxSaves];       // [T, N], the first saves(mode)
  const void* x;                          // [T, N] x's dtype, when the family reads it, else null
  const float* state0[fs::kMaxStates];
  const float* param[fs::kMaxParams];     // unclamped (F::finish needs the raw values)
  const void* dspk;                       // [T, N], x's dtype (one row [N] when dspk_step is 0)
  const void* dstate[fs::kMaxStates];     // [N], or [T, N] when mem_all (a row if its step is 0)
  void* dx;                               // [T, N], x's dtype
  float* dstate0[fs::kMaxStates];         // [N] per-neuron partials (the op sums them to P)
  float* dparam[fs::kMaxParams];          // [N]
  int64_t T, N;
  int64_t P_state[fs::kMaxStates];
  int64_t P_param[fs::kMaxParams];
  // Elements between steps of dspk and (mem_all) of each dstate: N, or 0 for
  // a cotangent that is one row, the same at every step (FamilyOptions).
  int64_t dspk_step;
  int64_t dstate_step[fs::kMaxStates];
  int mem_all;
  int detach;
  fs::Surrogate g;
};

// A kernel ready to launch: the function in the current context of the
// device asked for, and its 1-D launch shape.
struct Launch {
  CUfunction fn;
  unsigned grid;
  unsigned block;
  int vec;  // neurons per thread
};

// Pick the kernel for (family, dtype, reset, mode) and its launch shape for
// these arguments on CUDA device `device`. Return null on success, else a
// message (static storage) for the caller to raise.
const char* family_forward_launch(const FwdParams& p, int family, int dtype, int reset, int mode,
                                  int device, Launch* out);
const char* family_backward_launch(const BwdParams& p, int family, int dtype, int reset,
                                   int mode, int device, Launch* out);

// Whether the kernels can launch on CUDA device `device` at all (this build
// has code for its architecture; the runtime finds the functions): null, or
// the message. The op asks while it builds the graph, so that this failure
// never surfaces inside eval_gpu. The calling thread's current device is
// left as it was.
const char* family_check_device(int device);

// A kernel's host stub (this extension's cudart) as a CUfunction of device
// `device`, and the device's SM count; cached. Null on success, else the
// message. Used by every kernel of csrc/ (the scan's too).
const char* resolve_kernel(const void* sym, int device, CUfunction* fn, int* sms);

}  // namespace flashsnn::cuda

// Leaky on CUDA: what the kernels (leaky.cu, nvcc, no MLX headers) and the
// eval_gpu glue (leaky.cpp, host compiler, MLX headers) share. Plain structs
// and a C-style API, so that neither side sees the other's headers.
#pragma once

#include <cstdint>

#include <cuda.h>

#include "../src/step/common.h"

namespace flashsnn::cuda {

// x's dtype, as the kernels instantiate it (float, __half, __nv_bfloat16).
enum Dtype : int { kFloat32 = 0, kFloat16 = 1, kBFloat16 = 2 };

// Kernel arguments, passed by value as the kernel's only parameter (the glue
// hands its address to add_kernel_node_raw). Arrays are row-contiguous,
// [T, N] with neuron i of step t at t * N + i; mem, beta and th are suffix
// arrays read as p[i % P] (src/ops/leaky.h, LeakyDims).
struct LeakyFwdParams {
  const void* x;     // [T, N], x's dtype
  const float* mem;  // [P_mem] initial membrane
  const float* beta;
  const float* th;
  void* spk;         // [T, N], x's dtype
  void* mem_out;     // [N], or [T, N] when mem_all
  float* h;          // [T, N] pre-reset membrane, or null (not saved)
  float* u;          // [T, N] carried membrane, or null (kImmediate saves it)
  int64_t T, N, P_mem, P_beta, P_th;
  int mem_all;
};

struct LeakyBwdParams {
  const float* h;     // [T, N]
  const float* u;     // [T, N], kImmediate only (else null)
  const float* mem;   // [P_mem]
  const float* beta;  // [P_beta], unclamped (the clamp's mask needs it)
  const float* th;    // [P_th]
  const void* dspk;   // [T, N], x's dtype (one row [N] when dspk_step is 0)
  const void* dmem;   // [N], or [T, N] when mem_all, x's dtype (a row if dmem_step is 0)
  void* dx;           // [T, N], x's dtype
  float* dmem0;       // [N] per-neuron partials (the op sums them to P_mem)
  float* dbeta;       // [N]
  float* dth;         // [N]
  int64_t T, N, P_mem, P_beta, P_th;
  // Elements between steps of dspk and (mem_all) dmem: N, or 0 for a
  // cotangent that is one row, the same at every step (LeakyOptions).
  int64_t dspk_step, dmem_step;
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

// Pick the kernel for (dtype, reset, mode) and its launch shape for these
// arguments on CUDA device `device`. Return null on success, else a message
// (static storage) for the caller to raise.
const char* leaky_forward_launch(const LeakyFwdParams& p, int dtype, int reset, int mode,
                                 int device, Launch* out);
const char* leaky_backward_launch(const LeakyBwdParams& p, int dtype, int reset, int mode,
                                  int device, Launch* out);

// Whether the kernels can launch on CUDA device `device` at all (this build
// has code for its architecture; the runtime finds the functions): null, or
// the message. The op asks while it builds the graph, so that this failure
// never surfaces inside eval_gpu. The calling thread's current device is
// left as it was.
const char* leaky_check_device(int device);

}  // namespace flashsnn::cuda

// Leaky integrate-and-fire on Apple GPUs: all T steps of a layer in one
// dispatch, forward and backward, one thread per neuron looping over T with
// its state in float32 registers. The per-step math is src/step/leaky.h, the
// same header the CPU and CUDA kernels compile; this file only loads,
// converts, calls and stores (mirroring src/cpu/leaky.cpp step for step).
//
// Layout: x, spk, h, u, dspk and dx are [T, N] row-major, so at step t thread
// i touches element t*N + i and neighbouring threads touch neighbouring
// addresses (coalesced). mem, beta and threshold are suffix arrays: neuron i
// uses p[i % P]. The backward writes per-neuron sums over T, which the op
// reduces with mx.sum (no atomics).
//
// What each dispatch binds and sets (kernel name, function constants, buffer
// indices, grid) is decided in metal/leaky.h; tests/metal compiles this file
// as C++ on Linux and runs those plans over it.

// Metal may contract a*b+c into an FMA even in safe math mode, which rounds
// once instead of twice and flips spikes within 1 ulp of threshold
// (src/step/common.h).
#pragma METAL fp contract(off)

#include <metal_stdlib>

#include "../../src/step/leaky.h"

using namespace metal;

// Function constants: one value per pipeline. They specialize the kernels
// when the pipeline is created (the surrogate's switch folds to one case) and
// gate the buffers that a dispatch does not bind.
constant int fs_surrogate_id [[function_constant(0)]];
constant bool fs_detach [[function_constant(1)]];
constant bool fs_mem_all [[function_constant(2)]];  // membrane output [T, N], not [N]
constant bool fs_save_h [[function_constant(3)]];   // forward writes h
constant bool fs_save_u [[function_constant(4)]];   // forward writes u / backward reads it
// Backward: dspk / (with mem_all) dmem is one row [N], the same at every step
// (a .sum() loss's cotangent), read at offset i instead of t*N + i.
constant bool fs_dspk_row [[function_constant(5)]];
constant bool fs_dmem_row [[function_constant(6)]];

template <typename T, int RESET, int MODE>
void leaky_forward_thread(const device T* x,
                          const device float* mem,
                          const device float* beta,
                          const device float* threshold,
                          device T* spk,
                          device T* mem_out,
                          device float* h,
                          device float* u,
                          uint steps,
                          uint n,
                          uint p_mem,
                          uint p_beta,
                          uint p_th,
                          uint i) {
  if (i >= n) return;
  const float b = fs::clamp_unit(beta[i % p_beta]);
  const float th = threshold[i % p_th];
  float m = mem[i % p_mem];
  for (uint t = 0; t < steps; ++t) {
    const ulong o = ulong(t) * n + i;  // T*N may pass 2^32
    const fs::LeakyStep r = fs::leaky_forward<RESET, MODE>(m, static_cast<float>(x[o]), b, th);
    spk[o] = static_cast<T>(r.s);
    if (fs_save_h) h[o] = r.h;
    if (fs_save_u) u[o] = r.u;
    if (fs_mem_all) mem_out[o] = static_cast<T>(r.u);
    m = r.u;
  }
  if (!fs_mem_all) mem_out[i] = static_cast<T>(m);
}

// Reverse pass over t = T-1 .. 0, as backward_range in src/cpu/leaky.cpp.
// The membrane carried into step t is the initial mem at t = 0, the saved u
// at t-1 for kImmediate, and otherwise recomputed from the saved h at t-1,
// which the next iteration needs anyway, so h is read once per step.
template <typename T, int RESET, int MODE>
void leaky_backward_thread(const device float* h,
                           const device float* u,
                           const device float* mem,
                           const device float* beta,
                           const device float* threshold,
                           const device T* dspk,
                           const device T* dmem,
                           device T* dx,
                           device float* dmem0,
                           device float* dbeta,
                           device float* dth,
                           uint steps,
                           uint n,
                           uint p_mem,
                           uint p_beta,
                           uint p_th,
                           float sa,
                           float sb,
                           uint i) {
  if (i >= n) return;
  const fs::Surrogate g{fs_surrogate_id, sa, sb};
  const float beta_raw = beta[i % p_beta];
  const float b = fs::clamp_unit(beta_raw);
  const float th = threshold[i % p_th];
  float gu = fs_mem_all ? 0.0f : static_cast<float>(dmem[i]);
  float gb = 0.0f;
  float gt = 0.0f;
  float h_t = h[ulong(steps - 1) * n + i];
  for (uint k = 0; k < steps; ++k) {
    const uint t = steps - 1 - k;
    const ulong o = ulong(t) * n + i;
    float h_prev = 0.0f;
    float u_prev;
    if (t == 0) {
      u_prev = mem[i % p_mem];
    } else {
      h_prev = h[o - n];
      u_prev = MODE == fs::kImmediate ? u[o - n] : fs::leaky_carried<RESET, MODE>(h_prev, th);
    }
    const float dm = fs_mem_all ? static_cast<float>(dmem[fs_dmem_row ? ulong(i) : o]) : 0.0f;
    const float ds = static_cast<float>(dspk[fs_dspk_row ? ulong(i) : o]);
    const float sg = fs::leaky_slope<MODE>(g, h_t, th);
    const fs::LeakyGrad r =
        fs::leaky_backward<RESET, MODE>(h_t, u_prev, b, th, ds, gu + dm, sg, fs_detach);
    dx[o] = static_cast<T>(r.dx);
    gu = r.du_prev;
    gb += r.dbeta;
    gt += r.dth;
    h_t = h_prev;
  }
  dmem0[i] = gu;
  dbeta[i] = gb * fs::clamp_unit_mask(beta_raw);
  dth[i] = gt;
}

// One concrete [[kernel]] pair per (dtype, reset, mode), named after its
// template arguments: leaky_fwd_<reset>_<mode>_<dtype>, leaky_bwd_... A
// wrapper rather than MLX's `template [[host_name(..)]] [[kernel]]
// decltype(..)` line, which clang rejects (an attribute list cannot appear
// there), so that the Linux emulator compiles exactly this text. Buffer
// indices are the ones metal/leaky.h binds.
#define FS_LEAKY_KERNELS(TN, T, RN, R, MN, M)                                               \
  [[kernel]] void leaky_fwd_##RN##_##MN##_##TN(                                             \
      const device T* x [[buffer(0)]],                                                      \
      const device float* mem [[buffer(1)]],                                                \
      const device float* beta [[buffer(2)]],                                               \
      const device float* threshold [[buffer(3)]],                                          \
      device T* spk [[buffer(4)]],                                                          \
      device T* mem_out [[buffer(5)]],                                                      \
      device float* h [[buffer(6), function_constant(fs_save_h)]],                          \
      device float* u [[buffer(7), function_constant(fs_save_u)]],                          \
      constant const uint& steps [[buffer(8)]],                                             \
      constant const uint& n [[buffer(9)]],                                                 \
      constant const uint& p_mem [[buffer(10)]],                                            \
      constant const uint& p_beta [[buffer(11)]],                                           \
      constant const uint& p_th [[buffer(12)]],                                             \
      uint i [[thread_position_in_grid]]) {                                                 \
    leaky_forward_thread<T, R, M>(                                                          \
        x, mem, beta, threshold, spk, mem_out, h, u, steps, n, p_mem, p_beta, p_th, i);     \
  }                                                                                         \
  [[kernel]] void leaky_bwd_##RN##_##MN##_##TN(                                             \
      const device float* h [[buffer(0)]],                                                  \
      const device float* u [[buffer(1), function_constant(fs_save_u)]],                    \
      const device float* mem [[buffer(2)]],                                                \
      const device float* beta [[buffer(3)]],                                               \
      const device float* threshold [[buffer(4)]],                                          \
      const device T* dspk [[buffer(5)]],                                                   \
      const device T* dmem [[buffer(6)]],                                                   \
      device T* dx [[buffer(7)]],                                                           \
      device float* dmem0 [[buffer(8)]],                                                    \
      device float* dbeta [[buffer(9)]],                                                    \
      device float* dth [[buffer(10)]],                                                     \
      constant const uint& steps [[buffer(11)]],                                            \
      constant const uint& n [[buffer(12)]],                                                \
      constant const uint& p_mem [[buffer(13)]],                                            \
      constant const uint& p_beta [[buffer(14)]],                                           \
      constant const uint& p_th [[buffer(15)]],                                             \
      constant const float& sa [[buffer(16)]],                                              \
      constant const float& sb [[buffer(17)]],                                              \
      uint i [[thread_position_in_grid]]) {                                                 \
    leaky_backward_thread<T, R, M>(h, u, mem, beta, threshold, dspk, dmem, dx, dmem0,       \
                                   dbeta, dth, steps, n, p_mem, p_beta, p_th, sa, sb, i);   \
  }

#define FS_LEAKY_RESETS_MODES(TN, T)                                                        \
  FS_LEAKY_KERNELS(TN, T, subtract, fs::kSubtract, delayed, fs::kDelayed)                   \
  FS_LEAKY_KERNELS(TN, T, subtract, fs::kSubtract, immediate, fs::kImmediate)               \
  FS_LEAKY_KERNELS(TN, T, subtract, fs::kSubtract, same_step, fs::kSameStep)                \
  FS_LEAKY_KERNELS(TN, T, zero, fs::kZero, delayed, fs::kDelayed)                           \
  FS_LEAKY_KERNELS(TN, T, zero, fs::kZero, immediate, fs::kImmediate)                       \
  FS_LEAKY_KERNELS(TN, T, zero, fs::kZero, same_step, fs::kSameStep)                        \
  FS_LEAKY_KERNELS(TN, T, none, fs::kNone, delayed, fs::kDelayed)                           \
  FS_LEAKY_KERNELS(TN, T, none, fs::kNone, immediate, fs::kImmediate)                       \
  FS_LEAKY_KERNELS(TN, T, none, fs::kNone, same_step, fs::kSameStep)

FS_LEAKY_RESETS_MODES(float32, float)
FS_LEAKY_RESETS_MODES(float16, half)
FS_LEAKY_RESETS_MODES(bfloat16, bfloat)

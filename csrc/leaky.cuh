// Leaky on CUDA: what one thread does, and the launch shape. The kernels in
// leaky.cu are one line each around these functions; tests/cuda compiles the
// same functions for the host and runs them over the whole grid against the
// CPU kernel. Only nvcc reads this file (FS_FN is __host__ __device__ there).
//
// Design (memory-bound: ~12 bytes moved per neuron-step, a few flops):
// - One thread owns V neighbouring neurons for all T steps; their state stays
//   in float32 registers. V = 4 when every row is 16-byte aligned: float32
//   rows move as 16-byte vectors (LDG.E.128 / STG.E.128), 16-bit rows as
//   8-byte ones (a warp still covers 256 contiguous bytes per instruction),
//   and h / u (float32) as 16-byte ones. V = 1 otherwise, and for layers too
//   small to give every SM enough threads with V = 4.
// - The recurrence is serial in t, so the only way to keep enough bytes in
//   flight is to load several steps before using any: each thread loads U
//   steps of every input stream, then computes and stores them. U is larger
//   when V = 1 (few, light threads; registers to spare).
// - Per-step math is src/step/leaky.h, the CPU kernel's own, in the same
//   order; with nvcc -fmad=false float32 spikes match the CPU bit for bit.
#pragma once

#include <cstdint>
#include <type_traits>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "../src/step/leaky.h"
#include "leaky.h"

// `#pragma unroll` for the device pass only (g++ -Wall warns on it when nvcc
// hands it the host copy of these functions).
#if defined(__CUDA_ARCH__)
#define FS_UNROLL _Pragma("unroll")
#else
#define FS_UNROLL
#endif

namespace flashsnn::cuda {

// ---------------------------------------------------------------------------
// Launch shape
// ---------------------------------------------------------------------------

constexpr unsigned kMaxBlock = 128;  // __launch_bounds__ of every kernel

// Steps loaded ahead per thread. Forward: one input stream (x). Backward: up
// to four (h, dspk, u, dmem), so fewer steps at a time keep it within the
// 128-register cap below (94-126 registers with V = 4, nvcc 13.0).
__host__ __device__ constexpr int fwd_unroll(int vec) {
  return vec == 4 ? 8 : 32;
}
__host__ __device__ constexpr int bwd_unroll(int vec) {
  return vec == 4 ? 4 : 16;
}

// Blocks of kMaxBlock that must fit on one SM at once, as __launch_bounds__'s
// second argument: a register cap of 65536 / (128 * n). Left to itself ptxas
// took the V = 1 forward to 255 registers (nvcc 13.0, sm_90) and spilled in
// one backward at 128. Caps: forward V = 4: 80 (6 blocks, 768 threads/SM);
// forward V = 1: 168 (3); backward: 128 (4).
__host__ __device__ constexpr int min_blocks(bool backward, int vec) {
  return backward ? 4 : (vec == 4 ? 6 : 3);
}

struct LeakyShape {
  int vec;
  unsigned block;
  unsigned grid;
};

// One place for block and grid sizes. N: neurons; vec_ok: every row is
// aligned for 4-neuron vectors; sm_count: multiprocessors of the device.
// V = 1 while the whole layer fits in one wave of V = 1 threads (the
// residency __launch_bounds__ guarantees: 384 threads/SM forward, 512
// backward): those light threads carry the deeper prefetch (U = 32 / 16) and
// spread over every SM. Above that, V = 4 cuts the thread count 4x and moves
// 16-byte vectors. (H100, 132 SMs: T=100 B=64 N=4096 runs 65536 threads of 4
// neurons, 128 per block; T=500 B=32 N=1024 runs 32768 threads of 1, 64 per
// block.) Blocks shrink from 128 to 32 threads until there are two per SM, so
// that small layers still reach every SM.
inline LeakyShape leaky_shape(int64_t N, bool backward, bool vec_ok, int sm_count) {
  if (sm_count < 1) sm_count = 1;
  const int64_t one_wave = int64_t(kMaxBlock) * min_blocks(backward, 1) * sm_count;
  LeakyShape s;
  s.vec = (vec_ok && N % 4 == 0 && N > one_wave) ? 4 : 1;
  const int64_t threads = (N + s.vec - 1) / s.vec;
  int64_t block = kMaxBlock;
  while (block > 32 && (threads + block - 1) / block < 2 * int64_t(sm_count)) block /= 2;
  s.block = unsigned(block);
  s.grid = unsigned((threads + block - 1) / block);
  return s;
}

inline bool aligned(const void* p, int64_t bytes) {
  return reinterpret_cast<uintptr_t>(p) % uintptr_t(bytes) == 0;
}

inline int elem_size(int dtype) {
  return dtype == kFloat32 ? 4 : 2;
}

// Every row of every [T, N] array starts on a 4-element boundary.
inline bool vec_ok(const LeakyFwdParams& p, int dtype) {
  const int64_t e = 4 * elem_size(dtype);
  return p.N % 4 == 0 && aligned(p.x, e) && aligned(p.spk, e) && aligned(p.mem_out, e) &&
         aligned(p.h, 16) && aligned(p.u, 16);
}

inline bool vec_ok(const LeakyBwdParams& p, int dtype) {
  const int64_t e = 4 * elem_size(dtype);
  return p.N % 4 == 0 && aligned(p.h, 16) && aligned(p.u, 16) && aligned(p.dspk, e) &&
         aligned(p.dmem, e) && aligned(p.dx, e) && aligned(p.dmem0, 16) &&
         aligned(p.dbeta, 16) && aligned(p.dth, 16);
}

// ---------------------------------------------------------------------------
// Loads and stores of V neighbouring elements, converted to/from float32
// ---------------------------------------------------------------------------

FS_FN float to_float(float v) {
  return v;
}
FS_FN float to_float(__half v) {
  return __half2float(v);
}
FS_FN float to_float(__nv_bfloat16 v) {
  return __bfloat162float(v);
}

template <typename T>
FS_FN T from_float(float v);
template <>
FS_FN float from_float<float>(float v) {
  return v;
}
// Round to nearest even, as the CPU kernel's static_cast<T>(float) does.
template <>
FS_FN __half from_float<__half>(float v) {
  return __float2half_rn(v);
}
template <>
FS_FN __nv_bfloat16 from_float<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

// 16-bit values <-> their bit patterns (element 0 in the low half of a word).
template <typename T>
FS_FN float from_bits(unsigned short b) {
  if constexpr (std::is_same_v<T, __half>) {
    __half_raw r;
    r.x = b;
    return to_float(__half(r));
  } else {
    __nv_bfloat16_raw r;
    r.x = b;
    return to_float(__nv_bfloat16(r));
  }
}
template <typename T>
FS_FN unsigned bits(float v) {
  if constexpr (std::is_same_v<T, __half>) {
    __half_raw r = from_float<__half>(v);
    return r.x;
  } else {
    __nv_bfloat16_raw r = from_float<__nv_bfloat16>(v);
    return r.x;
  }
}

// V neighbouring elements as they come from memory. Loads keep this form and
// convert at use, so a batch of 16-bit values holds half the registers.
template <typename T, int V>
struct Packed;
template <typename T>
struct Packed<T, 1> {
  T v;
};
template <>
struct Packed<float, 4> {
  float4 v;
};
template <typename T>
struct Packed<T, 4> {  // 16-bit: 4 values in 8 bytes
  uint2 v;
};

template <typename T, int V>
FS_FN Packed<T, V> load_packed(const T* p) {
  if constexpr (V == 1) {
    return {*p};
  } else if constexpr (sizeof(T) == 4) {
    return {*reinterpret_cast<const float4*>(p)};
  } else {
    return {*reinterpret_cast<const uint2*>(p)};
  }
}

template <typename T, int V>
FS_FN void unpack(const Packed<T, V>& a, float (&o)[V]) {
  static_assert(V == 1 || V == 4, "vectors are 4 neurons");
  if constexpr (V == 1) {
    o[0] = to_float(a.v);
  } else if constexpr (sizeof(T) == 4) {
    o[0] = a.v.x;
    o[1] = a.v.y;
    o[2] = a.v.z;
    o[3] = a.v.w;
  } else {
    o[0] = from_bits<T>(static_cast<unsigned short>(a.v.x & 0xffffu));
    o[1] = from_bits<T>(static_cast<unsigned short>(a.v.x >> 16));
    o[2] = from_bits<T>(static_cast<unsigned short>(a.v.y & 0xffffu));
    o[3] = from_bits<T>(static_cast<unsigned short>(a.v.y >> 16));
  }
}

template <typename T, int V>
FS_FN void load(const T* p, float (&o)[V]) {
  unpack<T, V>(load_packed<T, V>(p), o);
}

template <typename T, int V>
FS_FN void store(T* p, const float (&v)[V]) {
  if constexpr (V == 1) {
    *p = from_float<T>(v[0]);
  } else if constexpr (sizeof(T) == 4) {
    *reinterpret_cast<float4*>(p) = make_float4(v[0], v[1], v[2], v[3]);
  } else {
    uint2 w;
    w.x = bits<T>(v[0]) | (bits<T>(v[1]) << 16);
    w.y = bits<T>(v[2]) | (bits<T>(v[3]) << 16);
    *reinterpret_cast<uint2*>(p) = w;
  }
}

// p[(i + k) % P] for the V neurons from i.
template <int V>
FS_FN void load_suffix(const float* p, int64_t P, int64_t i, float (&o)[V]) {
  FS_UNROLL
  for (int k = 0; k < V; ++k) o[k] = p[(i + k) % P];
}

// ---------------------------------------------------------------------------
// Forward: one thread, V neurons, all T steps
// ---------------------------------------------------------------------------

// B steps from t0: all B loads are issued before the first one is used.
// Full batches carry no bounds checks: per-step predicates and addresses
// kept live across a 32-step batch took a V = 1 kernel to 255 registers with
// spills (nvcc 13.0, sm_90).
template <typename T, int RESET, int MODE, int V, int B>
FS_FN void forward_steps(const LeakyFwdParams& p, int64_t i, int64_t t0, float (&u)[V],
                         const float (&b)[V], const float (&th)[V]) {
  const int64_t N = p.N;
  const int64_t o0 = t0 * N + i;
  Packed<T, V> xp[B];
  FS_UNROLL
  for (int j = 0; j < B; ++j) xp[j] = load_packed<T, V>(static_cast<const T*>(p.x) + o0 + j * N);
  FS_UNROLL
  for (int j = 0; j < B; ++j) {
    const int64_t o = o0 + j * N;
    float xv[V], s[V], h[V];
    unpack<T, V>(xp[j], xv);
    FS_UNROLL
    for (int k = 0; k < V; ++k) {
      const fs::LeakyStep r = fs::leaky_forward<RESET, MODE>(u[k], xv[k], b[k], th[k]);
      s[k] = r.s;
      h[k] = r.h;
      u[k] = r.u;
    }
    store<T, V>(static_cast<T*>(p.spk) + o, s);
    if (p.h) store<float, V>(p.h + o, h);
    if (p.u) store<float, V>(p.u + o, u);
    if (p.mem_all) store<T, V>(static_cast<T*>(p.mem_out) + o, u);
  }
}

template <typename T, int RESET, int MODE, int V>
FS_FN void leaky_forward_thread(const LeakyFwdParams& p, int64_t tid) {
  constexpr int U = fwd_unroll(V);
  const int64_t i = tid * V;
  if (i >= p.N) return;
  float u[V], b[V], th[V];
  load_suffix<V>(p.mem, p.P_mem, i, u);
  load_suffix<V>(p.beta, p.P_beta, i, b);
  load_suffix<V>(p.th, p.P_th, i, th);
  FS_UNROLL
  for (int k = 0; k < V; ++k) b[k] = fs::clamp_unit(b[k]);

  int64_t t = 0;
  for (; t + U <= p.T; t += U) forward_steps<T, RESET, MODE, V, U>(p, i, t, u, b, th);
  // The rest in batches of 4, then 1 (T = 25 with U = 32 still loads ahead).
  for (; t + 4 <= p.T; t += 4) forward_steps<T, RESET, MODE, V, 4>(p, i, t, u, b, th);
  for (; t < p.T; ++t) forward_steps<T, RESET, MODE, V, 1>(p, i, t, u, b, th);
  if (!p.mem_all) store<T, V>(static_cast<T*>(p.mem_out) + i, u);
}

// ---------------------------------------------------------------------------
// Backward: one thread, V neurons, reverse time (the CPU's backward_range)
// ---------------------------------------------------------------------------

// sg[k] = leaky_slope(h[k]) with the surrogate id a constant, so that its
// switch folds; one uniform switch per step picks the instance.
template <int MODE, int ID, int V>
FS_FN void slopes_id(fs::Surrogate g, const float (&h)[V], const float (&th)[V],
                     float (&sg)[V]) {
  const fs::Surrogate c{ID, g.a, g.b};
  FS_UNROLL
  for (int k = 0; k < V; ++k) sg[k] = fs::leaky_slope<MODE>(c, h[k], th[k]);
}

template <int MODE, int V>
FS_FN void slopes(fs::Surrogate g, const float (&h)[V], const float (&th)[V], float (&sg)[V]) {
  switch (g.id) {
#define FS_SLOPE_CASE(ID, NAME)                   \
  case fs::ID:                                    \
    slopes_id<MODE, fs::ID, V>(g, h, th, sg);     \
    return;
    FS_FOR_EACH_SURROGATE(FS_SLOPE_CASE)
#undef FS_SLOPE_CASE
    default:
      // The op rejects unknown ids; fs::surrogate_grad returns 0 for them.
      FS_UNROLL
      for (int k = 0; k < V; ++k) sg[k] = 0.0f;
  }
}

// Per-thread state of the reverse pass.
template <int V>
struct BwdState {
  float b[V], th[V], m0[V];
  float gu[V], gb[V], gt[V];  // dL/du carried back, sums for beta and threshold
  float hn[V];                // h at the step above the next batch (loaded once)
};

// B steps from t_hi down to t_hi - B + 1. Every step but step 0 recomputes
// the membrane carried into it from h one step earlier (kImmediate reads the
// saved u instead); only single-step batches (B = 1) can reach step 0.
template <typename T, int RESET, int MODE, int V, int B>
FS_FN void backward_steps(const LeakyBwdParams& p, int64_t i, int64_t t_hi, BwdState<V>& st) {
  const int64_t N = p.N;
  const int64_t o0 = t_hi * N + i;  // element of step t_hi; step t_hi - j is o0 - j * N
  // hv[j] = h at step t_hi - j; hv[B] is the step below the batch.
  // Zero-initialized only to keep g++ (the host copy, -Wmaybe-uninitialized)
  // quiet about loads it cannot see always happen; no register or spill cost
  // in the device code (docs/cuda.md, compiler report).
  float hv[B + 1][V] = {}, uv[B][V] = {};
  Packed<T, V> dvp[B] = {}, dmp[B] = {};
  FS_UNROLL
  for (int k = 0; k < V; ++k) hv[0][k] = st.hn[k];
  const bool has_prev = B > 1 || t_hi > 0;  // true unless this is step 0
  FS_UNROLL
  for (int j = 0; j < B; ++j) {
    const int64_t o = o0 - j * N, t = t_hi - j;
    if (has_prev) load<float, V>(p.h + o - N, hv[j + 1]);
    dvp[j] = load_packed<T, V>(static_cast<const T*>(p.dspk) + t * p.dspk_step + i);
    if (p.mem_all) {
      dmp[j] = load_packed<T, V>(static_cast<const T*>(p.dmem) + t * p.dmem_step + i);
    }
    if (MODE == fs::kImmediate && has_prev) load<float, V>(p.u + o - N, uv[j]);
  }
  FS_UNROLL
  for (int j = 0; j < B; ++j) {
    float sg[V], g[V], dv[V], dm[V];
    unpack<T, V>(dvp[j], dv);
    if (p.mem_all) {
      unpack<T, V>(dmp[j], dm);
    } else {
      // As the CPU loop: gu + 0 when only the last membrane has a cotangent.
      FS_UNROLL
      for (int k = 0; k < V; ++k) dm[k] = 0.0f;
    }
    slopes<MODE, V>(p.g, hv[j], st.th, sg);
    FS_UNROLL
    for (int k = 0; k < V; ++k) {
      float up;
      if (!has_prev) {
        up = st.m0[k];
      } else if (MODE == fs::kImmediate) {
        up = uv[j][k];
      } else {
        up = fs::leaky_carried<RESET, MODE>(hv[j + 1][k], st.th[k]);
      }
      const float du = st.gu[k] + dm[k];
      const fs::LeakyGrad r = fs::leaky_backward<RESET, MODE>(
          hv[j][k], up, st.b[k], st.th[k], dv[k], du, sg[k], p.detach != 0);
      g[k] = r.dx;
      st.gu[k] = r.du_prev;
      st.gb[k] += r.dbeta;
      st.gt[k] += r.dth;
    }
    store<T, V>(static_cast<T*>(p.dx) + o0 - j * N, g);
  }
  if (has_prev) {
    FS_UNROLL
    for (int k = 0; k < V; ++k) st.hn[k] = hv[B][k];
  }
}

template <typename T, int RESET, int MODE, int V>
FS_FN void leaky_backward_thread(const LeakyBwdParams& p, int64_t tid) {
  constexpr int U = bwd_unroll(V);
  const int64_t i = tid * V;
  if (i >= p.N) return;
  BwdState<V> st{};  // gradient sums start at zero
  load_suffix<V>(p.mem, p.P_mem, i, st.m0);
  load_suffix<V>(p.beta, p.P_beta, i, st.b);
  load_suffix<V>(p.th, p.P_th, i, st.th);
  FS_UNROLL
  for (int k = 0; k < V; ++k) st.b[k] = fs::clamp_unit(st.b[k]);
  if (!p.mem_all) load<T, V>(static_cast<const T*>(p.dmem) + i, st.gu);
  load<float, V>(p.h + (p.T - 1) * p.N + i, st.hn);

  // Batches of U, then 4, then 1, each kept above step 0 but the last.
  int64_t t = p.T - 1;
  for (; t - U >= 0; t -= U) backward_steps<T, RESET, MODE, V, U>(p, i, t, st);
  for (; t - 4 >= 0; t -= 4) backward_steps<T, RESET, MODE, V, 4>(p, i, t, st);
  for (; t >= 0; --t) backward_steps<T, RESET, MODE, V, 1>(p, i, t, st);

  float beta_raw[V];
  load_suffix<V>(p.beta, p.P_beta, i, beta_raw);
  FS_UNROLL
  for (int k = 0; k < V; ++k) st.gb[k] *= fs::clamp_unit_mask(beta_raw[k]);
  store<float, V>(p.dmem0 + i, st.gu);
  store<float, V>(p.dbeta + i, st.gb);
  store<float, V>(p.dth + i, st.gt);
}

}  // namespace flashsnn::cuda

// Every fused family on CUDA: what one thread does, and the launch shape.
// The kernels (kernels.cuh, instantiated per dtype and direction in
// forward_/backward_*.cu) are one line each around these functions;
// tests/cuda compiles the same functions for the host and runs them over
// the whole grid against the CPU kernel.
// Only nvcc reads this file (FS_FN is __host__ __device__ there).
//
// Generic over the family trait (src/step/family.h) exactly as the CPU loops
// (src/cpu/engine.h) are: prepare() once per neuron, forward() per step,
// carried() to recover the states entering a step from the saves of the step
// before, fire() for the surrogate's argument, backward() per reverse step,
// finish() on the constants' gradient sums. No family is named here.
//
// Design (memory-bound: the smallest family, one state and one save, moves
// ~12 bytes per neuron-step for a few flops; larger ones move more arrays,
// with as little arithmetic). "The first kernel" below is the single-family
// kernel this backend started from (1 state, 2 constants, 2 saves), whose
// measurements are in docs/cuda.md; nothing here names a family.
// - One thread owns V neighbouring neurons for all T steps; their states and
//   constants stay in float32 registers. V = 4 when every row is 16-byte
//   aligned: float32 rows move as 16-byte vectors (LDG.E.128 / STG.E.128),
//   16-bit rows as 8-byte ones (a warp still covers 256 contiguous bytes per
//   instruction), and the float32 saves as 16-byte ones. V = 1 otherwise,
//   and for layers too small to give every SM enough threads with V = 4.
// - The recurrence is serial in t, so the only way to keep enough bytes in
//   flight is to load several steps before using any: each thread loads U
//   steps of every input stream, then computes and stores them. U comes
//   from the family's counts (fwd_unroll / bwd_unroll below).
// - Per-step math is the trait's, the CPU kernel's own, in the same order;
//   with nvcc -fmad=false float32 spikes match the CPU bit for bit.
#pragma once

#include "family.h"
#include "memory.cuh"

namespace flashsnn::cuda {

// ---------------------------------------------------------------------------
// Launch shape and unroll depth
// ---------------------------------------------------------------------------

constexpr unsigned kMaxBlock = 128;  // __launch_bounds__ of every kernel

// Blocks of kMaxBlock that must fit on one SM at once, as __launch_bounds__'s
// second argument: a register cap of 65536 / (128 * n). Left to itself ptxas
// took the first kernel's V = 1 forward to 255 registers (nvcc 13.0, sm_90) and
// spilled in one backward at 128. Caps: forward V = 4: 80 (6 blocks, 768
// threads/SM); forward V = 1: 168 (3); backward: 128 (4). The same for every
// family: the unroll depth below is what adapts to a family's size.
__host__ __device__ constexpr int min_blocks(bool backward, int vec) {
  return backward ? 4 : (vec == 4 ? 6 : 3);
}

// Steps loaded ahead per thread, from the floats per neuron a thread keeps
// live: what lives for all T steps, plus U steps of each input stream
// loaded before use. The budgets are the first kernel's (measured: within
// the caps above with no spill, 76-80 registers forward V = 4, 94-126
// backward; docs/cuda.md), so a family of its size keeps exactly its U, and
// a family with more states, constants or saves trades steps ahead for
// registers.
//  forward   live: states + constants; streams: x.
//            First kernel: 3 live + 8 steps (V = 4) or 32 (V = 1) of x = 11 / 35.
//  backward  live: state gradients + initial states + constants + their
//            gradient sums + the saves carried to the next batch; streams:
//            every save (each loaded once, one step below), dspk, a
//            cotangent per state (mem_all), and x when backward() reads it.
//            First kernel: 8 live + 4 (V = 4) or 16 (V = 1) steps of 4 streams
//            (h, u, dspk, dmem) = 24 / 72.
// The worst mode's counts (kSaves, not saves(mode)) so that a family's U is
// one number; at least 1 step.
template <class F>
__host__ __device__ constexpr int fwd_unroll(int vec) {
  const int live = F::kStates + F::kConsts;
  const int u = (vec == 4 ? 11 : 35) - live;
  return u < 1 ? 1 : u;
}
template <class F>
__host__ __device__ constexpr int bwd_unroll(int vec) {
  const int live = 2 * F::kStates + 2 * F::kConsts + F::kSaves;
  const int streams = F::kSaves + 1 + F::kOutputStates + (F::kBackwardX ? 1 : 0);
  const int u = ((vec == 4 ? 24 : 72) - live) / streams;
  // A power of two (at most 16), so that U divides kFoldSteps and the
  // gradient sums fold after the same steps as on the CPU and Metal, to the
  // same bits (backward_thread).
  int p = 1;
  while (p * 2 <= u && p * 2 <= 16) p *= 2;
  return p;
}
// The tail after the full batches: batches of 4 (or U, if smaller), then 1.
__host__ __device__ constexpr int tail_unroll(int u) {
  return u < 4 ? u : 4;
}

struct LaunchShape {
  int vec;
  unsigned block;
  unsigned grid;
};

// One place for block and grid sizes. N: neurons; vec_ok: every row is
// aligned for 4-neuron vectors; sm_count: multiprocessors of the device.
// V = 1 while the whole layer fits in one wave of V = 1 threads (the
// residency __launch_bounds__ guarantees: 384 threads/SM forward, 512
// backward): those light threads carry the deeper prefetch (first kernel:
// U = 32 / 16) and spread over every SM. Above that, V = 4 cuts the thread count 4x
// and moves 16-byte vectors. (H100, 132 SMs: T=100 B=64 N=4096 runs 65536
// threads of 4 neurons, 128 per block; T=500 B=32 N=1024 runs 32768 threads
// of 1, 64 per block.) Blocks shrink from 128 to 32 threads until there are
// two per SM, so that small layers still reach every SM. The same for every
// family.
inline LaunchShape launch_shape(int64_t N, bool backward, bool vec_ok, int sm_count) {
  if (sm_count < 1) sm_count = 1;
  const int64_t one_wave = int64_t(kMaxBlock) * min_blocks(backward, 1) * sm_count;
  LaunchShape s;
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

// Every row of every [T, N] array starts on a 4-element boundary (null
// slots, past the family's counts, pass).
inline bool vec_ok(const FwdParams& p, int dtype) {
  const int64_t e = 4 * elem_size(dtype);
  bool ok = p.N % 4 == 0 && aligned(p.x, e) && aligned(p.spk, e);
  for (int k = 0; k < fs::kMaxStates; ++k) ok = ok && aligned(p.state_out[k], e);
  for (int k = 0; k < fs::kMaxSaves; ++k) ok = ok && aligned(p.save[k], 16);
  return ok;
}

inline bool vec_ok(const BwdParams& p, int dtype) {
  const int64_t e = 4 * elem_size(dtype);
  bool ok = p.N % 4 == 0 && aligned(p.x, e) && aligned(p.dspk, e) && aligned(p.dx, e);
  for (int k = 0; k < fs::kMaxSaves; ++k) ok = ok && aligned(p.save[k], 16);
  for (int k = 0; k < fs::kMaxStates; ++k) {
    ok = ok && aligned(p.dstate[k], e) && aligned(p.dstate0[k], 16);
  }
  for (int k = 0; k < fs::kMaxParams; ++k) ok = ok && aligned(p.dparam[k], 16);
  return ok;
}

// ---------------------------------------------------------------------------
// Per-neuron values: the trait's Vec<N> for neuron k of a thread's V
// ---------------------------------------------------------------------------

// a[j][k] -> Vec of neuron k (compile-time indices once unrolled: registers).
template <int N, int V>
FS_FN fs::Vec<N> column(const float (&a)[N][V], int k) {
  fs::Vec<N> v;
  FS_UNROLL
  for (int j = 0; j < N; ++j) v.v[j] = a[j][k];
  return v;
}

// The first NV of a family's kSaves (the rest: zero, never read).
template <class F, int NV, int V>
FS_FN fs::Vec<F::kSaves> saves_of(const float (&a)[NV][V], int k) {
  fs::Vec<F::kSaves> v = {};
  FS_UNROLL
  for (int j = 0; j < NV; ++j) v.v[j] = a[j][k];
  return v;
}

// Raw parameters of the V neurons from i, made into the trait's constants.
template <class F, int V>
FS_FN void prepare(const float* const* param, const int64_t* P, int64_t i,
                   float (&c)[F::kConsts][V]) {
  float raw[F::kParams][V];
  FS_UNROLL
  for (int j = 0; j < F::kParams; ++j) load_suffix<V>(param[j], P[j], i, raw[j]);
  FS_UNROLL
  for (int k = 0; k < V; ++k) {
    const fs::Vec<F::kConsts> q = F::prepare(column(raw, k));
    FS_UNROLL
    for (int j = 0; j < F::kConsts; ++j) c[j][k] = q.v[j];
  }
}

// ---------------------------------------------------------------------------
// Forward: one thread, V neurons, all T steps
// ---------------------------------------------------------------------------

// B steps from t0: all B loads are issued before the first one is used.
// Full batches carry no bounds checks: per-step predicates and addresses
// kept live across a 32-step batch took the first kernel's V = 1 to 255
// registers with spills (nvcc 13.0, sm_90).
template <class F, typename T, int RESET, int MODE, int V, int B>
FS_FN void forward_steps(const FwdParams& p, int64_t i, int64_t t0, float (&st)[F::kStates][V],
                         const float (&c)[F::kConsts][V]) {
  constexpr int NS = F::kStates, NV = F::saves(MODE);
  const int64_t N = p.N;
  const int64_t o0 = t0 * N + i;
  Packed<T, V> xp[B];
  FS_UNROLL
  for (int j = 0; j < B; ++j) xp[j] = load_packed<T, V>(static_cast<const T*>(p.x) + o0 + j * N);
  FS_UNROLL
  for (int j = 0; j < B; ++j) {
    const int64_t o = o0 + j * N;
    float xv[V], s[V], sv[NV][V];
    unpack<T, V>(xp[j], xv);
    FS_UNROLL
    for (int k = 0; k < V; ++k) {
      const fs::Fwd<F> r = F::template forward<RESET, MODE>(column(st, k), xv[k], column(c, k));
      s[k] = r.spk;
      FS_UNROLL
      for (int q = 0; q < NV; ++q) sv[q][k] = r.save.v[q];
      FS_UNROLL
      for (int q = 0; q < NS; ++q) st[q][k] = r.s.v[q];
    }
    store<T, V>(static_cast<T*>(p.spk) + o, s);
    FS_UNROLL
    for (int q = 0; q < NV; ++q) {
      if (p.save[q]) store<float, V>(p.save[q] + o, sv[q]);
    }
    if (p.mem_all) {
      FS_UNROLL
      for (int q = 0; q < F::kOutputStates; ++q) store<T, V>(static_cast<T*>(p.state_out[q]) + o, st[q]);
    }
  }
}

template <class F, typename T, int RESET, int MODE, int V>
FS_FN void forward_thread(const FwdParams& p, int64_t tid) {
  constexpr int U = fwd_unroll<F>(V), U4 = tail_unroll(U);
  const int64_t i = tid * V;
  if (i >= p.N) return;
  float st[F::kStates][V], c[F::kConsts][V];
  FS_UNROLL
  for (int q = 0; q < F::kStates; ++q) load_suffix<V>(p.state0[q], p.P_state[q], i, st[q]);
  prepare<F, V>(p.param, p.P_param, i, c);

  int64_t t = 0;
  for (; t + U <= p.T; t += U) forward_steps<F, T, RESET, MODE, V, U>(p, i, t, st, c);
  // The rest in batches of 4, then 1 (T = 25 with U = 32 still loads ahead).
  for (; t + U4 <= p.T; t += U4) forward_steps<F, T, RESET, MODE, V, U4>(p, i, t, st, c);
  for (; t < p.T; ++t) forward_steps<F, T, RESET, MODE, V, 1>(p, i, t, st, c);
  if (!p.mem_all) {
    FS_UNROLL
    for (int q = 0; q < F::kOutputStates; ++q) store<T, V>(static_cast<T*>(p.state_out[q]) + i, st[q]);
  }
}

// ---------------------------------------------------------------------------
// Backward: one thread, V neurons, reverse time (the CPU's backward_range)
// ---------------------------------------------------------------------------

// sg[k]: the surrogate's slope at fire(), the surrogate id a constant so
// that its switch folds; one uniform switch per step picks the instance.
template <int ID, int V>
FS_FN void slopes_id(fs::Surrogate g, const fs::Fire (&f)[V], float (&sg)[V]) {
  const fs::Surrogate c{ID, g.a, g.b};
  FS_UNROLL
  for (int k = 0; k < V; ++k) sg[k] = fs::surrogate_grad(c, f[k].v, f[k].s);
}

template <int V>
FS_FN void slopes(fs::Surrogate g, const fs::Fire (&f)[V], float (&sg)[V]) {
  switch (g.id) {
#define FS_SLOPE_CASE(ID, NAME)       \
  case fs::ID:                        \
    slopes_id<fs::ID, V>(g, f, sg);   \
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
template <class F, int V>
struct BwdState {
  float c[F::kConsts][V];     // the trait's constants
  float m0[F::kStates][V];    // initial states (the states entering step 0)
  float gu[F::kStates][V];    // dL/d(states) carried back
  float gc[F::kConsts][V];    // the constants' gradients summed since the last fold
  float next[F::kSaves][V];   // saves at the step above the next batch (loaded once)
};

// B steps from t_hi down to t_hi - B + 1. Every step but step 0 recovers the
// states carried into it from the saves one step earlier (F::carried); only
// single-step batches (B = 1) can reach step 0. Each save is loaded once:
// the step below a batch is carried to the next.
template <class F, typename T, int RESET, int MODE, int V, int B>
FS_FN void backward_steps(const BwdParams& p, int64_t i, int64_t t_hi, BwdState<F, V>& st) {
  constexpr int NS = F::kStates, NO = F::kOutputStates, NV = F::saves(MODE);
  const int64_t N = p.N;
  const int64_t o0 = t_hi * N + i;  // element of step t_hi; step t_hi - j is o0 - j * N
  // sv[j] = saves at step t_hi - j; sv[B] is the step below the batch.
  // Zero-initialized only to keep g++ (the host copy, -Wmaybe-uninitialized)
  // quiet about loads it cannot see always happen; no register or spill cost
  // in the device code (docs/cuda.md, compiler report).
  float sv[B + 1][NV][V] = {};
  Packed<T, V> dvp[B] = {}, dmp[B][NO] = {}, xp[B] = {};
  FS_UNROLL
  for (int q = 0; q < NV; ++q) {
    FS_UNROLL
    for (int k = 0; k < V; ++k) sv[0][q][k] = st.next[q][k];
  }
  const bool has_prev = B > 1 || t_hi > 0;  // true unless this is step 0
  // Loads in the order the first kernel issued them (first save, dspk, the
  // state cotangents, the other saves), then x.
  FS_UNROLL
  for (int j = 0; j < B; ++j) {
    const int64_t o = o0 - j * N, t = t_hi - j;
    if (has_prev) load<float, V>(p.save[0] + o - N, sv[j + 1][0]);
    dvp[j] = load_packed<T, V>(static_cast<const T*>(p.dspk) + t * p.dspk_step + i);
    if (p.mem_all) {
      FS_UNROLL
      for (int q = 0; q < NO; ++q) {
        dmp[j][q] = load_packed<T, V>(static_cast<const T*>(p.dstate[q]) + t * p.dstate_step[q] + i);
      }
    }
    FS_UNROLL
    for (int q = 1; q < NV; ++q) {
      if (has_prev) load<float, V>(p.save[q] + o - N, sv[j + 1][q]);
    }
    if (F::kBackwardX) xp[j] = load_packed<T, V>(static_cast<const T*>(p.x) + o);
  }
  FS_UNROLL
  for (int j = 0; j < B; ++j) {
    float g[V], dv[V], dm[NS][V], xv[V] = {};
    unpack<T, V>(dvp[j], dv);
    if (F::kBackwardX) unpack<T, V>(xp[j], xv);
    // As the CPU loop: gu + 0 when only the last states have a cotangent,
    // and for the states that have no output.
    FS_UNROLL
    for (int q = 0; q < NS; ++q) {
      if (p.mem_all && q < NO) {
        unpack<T, V>(dmp[j][q < NO ? q : 0], dm[q]);
      } else {
        FS_UNROLL
        for (int k = 0; k < V; ++k) dm[q][k] = 0.0f;
      }
    }
    fs::Vec<NS> prev[V];
    fs::Fire f[V];
    float sg[V];
    FS_UNROLL
    for (int k = 0; k < V; ++k) {
      const fs::Vec<F::kConsts> c = column(st.c, k);
      prev[k] = has_prev ? F::template carried<RESET, MODE>(saves_of<F>(sv[j + 1], k), c)
                         : column(st.m0, k);
      f[k] = F::template fire<RESET, MODE>(saves_of<F>(sv[j], k), prev[k], c);
    }
    slopes<V>(p.g, f, sg);
    FS_UNROLL
    for (int k = 0; k < V; ++k) {
      fs::Vec<NS> d;
      FS_UNROLL
      for (int q = 0; q < NS; ++q) d.v[q] = st.gu[q][k] + dm[q][k];
      const fs::Grad<F> r = F::template backward<RESET, MODE>(
          saves_of<F>(sv[j], k), prev[k], xv[k], column(st.c, k), dv[k], d, sg[k],
          p.detach != 0);
      g[k] = r.dx;
      FS_UNROLL
      for (int q = 0; q < NS; ++q) st.gu[q][k] = r.dprev.v[q];
      FS_UNROLL
      for (int q = 0; q < F::kConsts; ++q) st.gc[q][k] += r.dc.v[q];
    }
    store<T, V>(static_cast<T*>(p.dx) + o0 - j * N, g);
  }
  if (has_prev) {
    FS_UNROLL
    for (int q = 0; q < NV; ++q) {
      FS_UNROLL
      for (int k = 0; k < V; ++k) st.next[q][k] = sv[B][q][k];
    }
  }
}

// The sums over T of the constants' gradients, compensated: each thread adds
// its steps to plain sums in registers (BwdState::gc) and folds them into
// compensated sums (fs::add_compensated) after every kFoldSteps steps counted
// from step T - 1 (but the last) and once at the end, exactly where the CPU
// and Metal kernels fold, so the three give the same bits. Held outside registers (the
// kernel's: shared memory, one slot per thread, kMaxBlock floats apart so
// that a warp's accesses fall in 32 banks): kept in registers, the
// compensations took kConsts x V more, and the V = 4 backward of the four
// families with the most constants spilled (4-80 bytes of stack at the
// 128-register cap).
using fs::kFoldSteps;

// This thread's first slot, the next STRIDE floats further on. Volatile:
// without it the compiler kept the slots in registers across the loop (it
// may: no other thread touches them), which is what they are there to avoid,
// and the V = 4 backward of six families spilled (up to 176 bytes).
template <int STRIDE>
struct FoldSlots {
  volatile float* at;
};

// 2 x kConsts x V slots per thread: sum, then compensation, per (q, k).
template <class F, int V>
__host__ __device__ constexpr int fold_slots() {
  return 2 * F::kConsts * V;
}

template <class F, int V, int S>
FS_FN void fold(BwdState<F, V>& st, FoldSlots<S> f) {
  FS_UNROLL
  for (int q = 0; q < F::kConsts; ++q) {
    FS_UNROLL
    for (int k = 0; k < V; ++k) {
      volatile float* sum = f.at + (2 * (q * V + k)) * S;
      volatile float* comp = sum + S;
      const fs::Sum a = fs::add_compensated(fs::Sum{*sum, *comp}, st.gc[q][k]);
      *sum = a.s;
      *comp = a.c;
      st.gc[q][k] = 0.0f;
    }
  }
}

template <class F, typename T, int RESET, int MODE, int V, int S>
FS_FN void backward_thread(const BwdParams& p, int64_t tid, FoldSlots<S> f) {
  constexpr int U = bwd_unroll<F>(V), U4 = tail_unroll(U), NS = F::kStates;
  constexpr int NV = F::saves(MODE);
  const int64_t i = tid * V;
  if (i >= p.N) return;
  BwdState<F, V> st{};  // gradient sums start at zero
  FS_UNROLL
  for (int j = 0; j < fold_slots<F, V>(); ++j) f.at[j * S] = 0.0f;
  FS_UNROLL
  for (int q = 0; q < NS; ++q) load_suffix<V>(p.state0[q], p.P_state[q], i, st.m0[q]);
  prepare<F, V>(p.param, p.P_param, i, st.c);
  if (!p.mem_all) {
    FS_UNROLL
    for (int q = 0; q < F::kOutputStates; ++q) load<T, V>(static_cast<const T*>(p.dstate[q]) + i, st.gu[q]);
  }
  FS_UNROLL
  for (int q = 0; q < NV; ++q) load<float, V>(p.save[q] + (p.T - 1) * p.N + i, st.next[q]);

  // Batches of U, then 4, then 1, each kept above step 0 but the last. The
  // sums fold after every kFoldSteps steps before the last step, and once at
  // the end, as on the CPU and Metal. U divides kFoldSteps (bwd_unroll), so
  // the batches of U meet every such point exactly; the tail after them is at
  // most U steps and meets none (the main loop stops at t < U having folded
  // where a multiple of kFoldSteps was done, and the next multiple is at
  // least U steps further, at the earliest the end). A uniform branch: every
  // thread has the same T. (Folds in the tail loops too spilled the first
  // family's immediate-mode kernel at the 128-register cap.)
  int64_t t = p.T - 1;
  int since = 0;
  for (; t - U >= 0; t -= U) {
    backward_steps<F, T, RESET, MODE, V, U>(p, i, t, st);
    if ((since += U) == kFoldSteps) {
      fold(st, f);
      since = 0;
    }
  }
  for (; t - U4 >= 0; t -= U4) backward_steps<F, T, RESET, MODE, V, U4>(p, i, t, st);
  for (; t >= 0; --t) backward_steps<F, T, RESET, MODE, V, 1>(p, i, t, st);
  fold(st, f);
  float sums[F::kConsts][V];
  FS_UNROLL
  for (int q = 0; q < F::kConsts; ++q) {
    FS_UNROLL
    for (int k = 0; k < V; ++k) sums[q][k] = f.at[(2 * (q * V + k)) * S];
  }

  // The initial states' partials: the gradient carried out of step 0. The
  // parameters': F::finish on the sums, with the raw values loaded again
  // (fewer live registers than keeping them; a load finish() does not use
  // is dead code).
  float raw[F::kParams][V];
  FS_UNROLL
  for (int q = 0; q < F::kParams; ++q) load_suffix<V>(p.param[q], p.P_param[q], i, raw[q]);
  float dp[F::kParams][V];
  FS_UNROLL
  for (int k = 0; k < V; ++k) {
    const fs::Vec<F::kParams> d = F::finish(column(raw, k), column(sums, k));
    FS_UNROLL
    for (int q = 0; q < F::kParams; ++q) dp[q][k] = d.v[q];
  }
  FS_UNROLL
  for (int q = 0; q < NS; ++q) store<float, V>(p.dstate0[q] + i, st.gu[q]);
  FS_UNROLL
  for (int q = 0; q < F::kParams; ++q) store<float, V>(p.dparam[q] + i, dp[q]);
}

}  // namespace flashsnn::cuda

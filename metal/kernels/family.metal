// Every fused neuron family on Apple GPUs: all T steps of a layer in one
// dispatch, forward and backward, one thread per neuron looping over T with
// its states in float32 registers. Generic over the family trait
// (src/step/family.h): this file names no family, it loads, converts, calls
// the trait and stores, looping exactly as the CPU engine does
// (src/cpu/engine.h, forward_range / backward_range), so float32 results are
// the CPU kernel's bits. The kernels come from the registration list
// FS_FOR_EACH_FAMILY (src/step/families.h) and each family's FS_MODES_<name>.
//
// Layout: x, spk, saves, dx and the [T, N] cotangents are row-major, so at
// step t thread i touches element t*N + i and neighbouring threads touch
// neighbouring addresses (coalesced). Initial states and parameters are
// suffix arrays: neuron i reads p[i % P]. The backward writes per-neuron sums
// over T of the parameter gradients (F::finish applied), which the op reduces
// with mx.sum (no atomics).
//
// Every buffer and function-constant index is a function of
// metal/kernels/family_layout.h, which the launch plans (metal/family.h) call
// too; tests/metal compiles this file as C++ on Linux and runs those plans
// over it.

// Metal may contract a*b+c into an FMA even in safe math mode, which rounds
// once instead of twice and flips spikes within 1 ulp of threshold
// (src/step/common.h).
#pragma METAL fp contract(off)

#include <metal_stdlib>

#include "../../src/step/families.h"
#include "family_layout.h"

using namespace metal;

// The kernel signatures below spell out the slots of the fixed layout.
static_assert(fs::kMaxStates == 3 && fs::kMaxParams == 6 && fs::kMaxSaves == 3,
              "family.metal's signatures list 3 state, 6 parameter and 3 save slots");

// Function constants: one value per pipeline (MLX caches pipelines by the
// plan's name, which carries every value). The indices are literals because
// [[function_constant(n)]] takes one; each is tied to family_layout.h by the
// static_assert under it.
constant int fs_surrogate_id [[function_constant(0)]];
static_assert(fs::layout::kFcSurrogate == 0, "family_layout.h");
constant bool fs_detach [[function_constant(1)]];
static_assert(fs::layout::kFcDetach == 1, "family_layout.h");
constant bool fs_mem_all [[function_constant(2)]];
static_assert(fs::layout::kFcMemAll == 2, "family_layout.h");
constant bool fs_dspk_row [[function_constant(3)]];
static_assert(fs::layout::kFcDspkRow == 3, "family_layout.h");
constant int fs_dstate_rows [[function_constant(4)]];
static_assert(fs::layout::kFcDstateRows == 4, "family_layout.h");
constant bool fs_read_x [[function_constant(5)]];
static_assert(fs::layout::kFcReadX == 5, "family_layout.h");
constant bool fs_state0 [[function_constant(6)]];
constant bool fs_state1 [[function_constant(7)]];
constant bool fs_state2 [[function_constant(8)]];
static_assert(fs::layout::kFcState == 6, "family_layout.h");
constant bool fs_param0 [[function_constant(9)]];
constant bool fs_param1 [[function_constant(10)]];
constant bool fs_param2 [[function_constant(11)]];
constant bool fs_param3 [[function_constant(12)]];
constant bool fs_param4 [[function_constant(13)]];
constant bool fs_param5 [[function_constant(14)]];
static_assert(fs::layout::kFcParam == 9, "family_layout.h");
constant bool fs_save0 [[function_constant(15)]];
constant bool fs_save1 [[function_constant(16)]];
constant bool fs_save2 [[function_constant(17)]];
static_assert(fs::layout::kFcSave == 15, "family_layout.h");
constant bool fs_out0 [[function_constant(18)]];
constant bool fs_out1 [[function_constant(19)]];
constant bool fs_out2 [[function_constant(20)]];
static_assert(fs::layout::kFcOut == 18 && fs::layout::kNumFunctionConstants == 21,
              "family_layout.h");

// Whether save slot j is written (forward) / read (backward): j is a
// constant after unrolling, so this folds.
inline bool fs_save_slot(int j) {
  return j == 0 ? fs_save0 : (j == 1 ? fs_save1 : fs_save2);
}

// A dispatch's arrays, by slot. Slots the family lacks are null (their
// arguments are compiled out) and never touched: every loop runs to the
// family's own count.
template <typename T>
struct FwdBuffers {
  const device T* x;
  const device float* state0[fs::kMaxStates];
  const device float* param[fs::kMaxParams];
  device T* spk;
  device T* state_out[fs::kMaxStates];
  device float* save[fs::kMaxSaves];
};

template <typename T>
struct BwdBuffers {
  const device float* save[fs::kMaxSaves];
  const device T* x;
  const device float* state0[fs::kMaxStates];
  const device float* param[fs::kMaxParams];
  const device T* dspk;
  const device T* dstate[fs::kMaxStates];
  device T* dx;
  device float* dstate0[fs::kMaxStates];
  device float* dparam[fs::kMaxParams];
};

template <class F, typename T, int RESET, int MODE>
void family_forward_thread(FwdBuffers<T> b, constant uint* dims, uint i) {
  const uint n = dims[fs::layout::dims_N()];
  if (i >= n) return;
  const uint steps = dims[fs::layout::dims_T()];
  fs::Vec<F::kParams> raw;
  for (int j = 0; j < F::kParams; ++j) raw.v[j] = b.param[j][i % dims[fs::layout::dims_param(j)]];
  const fs::Vec<F::kConsts> c = F::prepare(raw);
  fs::Vec<F::kStates> st;
  for (int j = 0; j < F::kStates; ++j) st.v[j] = b.state0[j][i % dims[fs::layout::dims_state(j)]];
  for (uint t = 0; t < steps; ++t) {
    const ulong o = ulong(t) * n + i;  // T*N may pass 2^32
    const fs::Fwd<F> r = F::template forward<RESET, MODE>(st, static_cast<float>(b.x[o]), c);
    b.spk[o] = static_cast<T>(r.spk);
    for (int j = 0; j < F::saves(MODE); ++j) {
      if (fs_save_slot(j)) b.save[j][o] = r.save.v[j];
    }
    if (fs_mem_all) {
      for (int j = 0; j < F::kOutputStates; ++j) b.state_out[j][o] = static_cast<T>(r.s.v[j]);
    }
    st = r.s;
  }
  if (!fs_mem_all) {
    for (int j = 0; j < F::kOutputStates; ++j) b.state_out[j][i] = static_cast<T>(st.v[j]);
  }
}

// The first saves(MODE) saved arrays at offset o (the rest zero, as the CPU
// engine's saves_at).
template <class F, int MODE, typename T>
fs::Vec<F::kSaves> load_saves(BwdBuffers<T> b, ulong o) {
  fs::Vec<F::kSaves> s = {};
  for (int j = 0; j < F::saves(MODE); ++j) s.v[j] = b.save[j][o];
  return s;
}

// Compensated sums (fs::add_compensated) and their compensations, by value
// (a reference would need an address space).
template <int N>
struct Compensated {
  fs::Vec<N> s, c;
};
template <int N>
Compensated<N> fold_into(Compensated<N> a, fs::Vec<N> add) {
  for (int j = 0; j < N; ++j) {
    const fs::Sum r = fs::add_compensated(fs::Sum{a.s.v[j], a.c.v[j]}, add.v[j]);
    a.s.v[j] = r.s;
    a.c.v[j] = r.c;
  }
  return a;
}

// Reverse pass over t = T-1 .. 0, as backward_range in src/cpu/engine.h: the
// states entering step t are the initial states at t = 0, else carried()
// from step t-1's saves, which the next iteration reads as its own, so each
// saved array is read once per step.
template <class F, typename T, int RESET, int MODE>
void family_backward_thread(BwdBuffers<T> b, constant uint* dims, float sa, float sb, uint i) {
  const uint n = dims[fs::layout::dims_N()];
  if (i >= n) return;
  const uint steps = dims[fs::layout::dims_T()];
  const fs::Surrogate g{fs_surrogate_id, sa, sb};
  fs::Vec<F::kParams> raw;
  for (int j = 0; j < F::kParams; ++j) raw.v[j] = b.param[j][i % dims[fs::layout::dims_param(j)]];
  const fs::Vec<F::kConsts> c = F::prepare(raw);
  fs::Vec<F::kStates> m0;
  fs::Vec<F::kStates> gu;
  for (int j = 0; j < F::kStates; ++j) {
    m0.v[j] = b.state0[j][i % dims[fs::layout::dims_state(j)]];
    // A state with no output has no cotangent of its own.
    gu.v[j] = fs_mem_all || j >= F::kOutputStates ? 0.0f : static_cast<float>(b.dstate[j][i]);
  }
  // The constants' gradients: plain sums of up to fs::kFoldSteps steps (gc)
  // folded into compensated sums after every kFoldSteps steps but the last
  // and once at the end, where the CPU and CUDA kernels fold: the three give
  // the same bits.
  fs::Vec<F::kConsts> gc = {};
  Compensated<F::kConsts> sums = {};
  fs::Vec<F::kSaves> sv = load_saves<F, MODE>(b, ulong(steps - 1) * n + i);
  for (uint k = 0; k < steps; ++k) {
    const uint t = steps - 1 - k;
    const ulong o = ulong(t) * n + i;
    fs::Vec<F::kSaves> svp = {};
    fs::Vec<F::kStates> prev;
    if (t == 0) {
      prev = m0;
    } else {
      svp = load_saves<F, MODE>(b, o - n);
      prev = F::template carried<RESET, MODE>(svp, c);
    }
    const float xv = F::kBackwardX ? static_cast<float>(b.x[o]) : 0.0f;
    const fs::Fire f = F::template fire<RESET, MODE>(sv, prev, c);
    const float sg = fs::surrogate_grad(g, f.v, f.s);
    fs::Vec<F::kStates> d;
    for (int j = 0; j < F::kStates; ++j) {
      const ulong oj = (fs_dstate_rows >> j) & 1 ? ulong(i) : o;
      d.v[j] = gu.v[j] + (fs_mem_all && j < F::kOutputStates ? static_cast<float>(b.dstate[j][oj])
                                                              : 0.0f);
    }
    const float ds = static_cast<float>(b.dspk[fs_dspk_row ? ulong(i) : o]);
    const fs::Grad<F> r = F::template backward<RESET, MODE>(sv, prev, xv, c, ds, d, sg, fs_detach);
    b.dx[o] = static_cast<T>(r.dx);
    gu = r.dprev;
    for (int j = 0; j < F::kConsts; ++j) gc.v[j] += r.dc.v[j];
    if (fs::fold_after(long(k) + 1, long(steps))) {
      sums = fold_into(sums, gc);
      gc = fs::Vec<F::kConsts>{};
    }
    sv = svp;
  }
  sums = fold_into(sums, gc);
  for (int j = 0; j < F::kStates; ++j) b.dstate0[j][i] = gu.v[j];
  const fs::Vec<F::kParams> dp = F::finish(raw, sums.s);
  for (int j = 0; j < F::kParams; ++j) b.dparam[j][i] = dp.v[j];
}

// Argument lists of the fixed layout. A slot's argument exists only where its
// function constant is true; the wrapper reads it only then.
#define FS_IN(T, NAME, IDX, GATE) const device T* NAME [[buffer(IDX), function_constant(GATE)]]
#define FS_OUT(T, NAME, IDX, GATE) device T* NAME [[buffer(IDX), function_constant(GATE)]]
#define FS_GATED(GATE, NAME) (GATE ? NAME : nullptr)

// One concrete [[kernel]] pair per (family, reset, mode, dtype):
// <family>_fwd_<reset>_<mode>_<dtype>, <family>_bwd_... A wrapper rather
// than MLX's `template [[host_name(..)]] [[kernel]] decltype(..)` line, which
// clang rejects (an attribute list cannot appear there), so that the Linux
// emulator compiles exactly this text.
#define FS_KERNEL_PAIR(NAME, F, RN, R, MN, M, TN, T)                                         \
  [[kernel]] void NAME##_fwd_##RN##_##MN##_##TN(                                             \
      const device T* x [[buffer(fs::layout::fwd_x())]],                                     \
      FS_IN(float, s0, fs::layout::fwd_state0(0), fs_state0),                                \
      FS_IN(float, s1, fs::layout::fwd_state0(1), fs_state1),                                \
      FS_IN(float, s2, fs::layout::fwd_state0(2), fs_state2),                                \
      FS_IN(float, p0, fs::layout::fwd_param(0), fs_param0),                                 \
      FS_IN(float, p1, fs::layout::fwd_param(1), fs_param1),                                 \
      FS_IN(float, p2, fs::layout::fwd_param(2), fs_param2),                                 \
      FS_IN(float, p3, fs::layout::fwd_param(3), fs_param3),                                 \
      FS_IN(float, p4, fs::layout::fwd_param(4), fs_param4),                                 \
      FS_IN(float, p5, fs::layout::fwd_param(5), fs_param5),                                 \
      device T* spk [[buffer(fs::layout::fwd_spk())]],                                       \
      FS_OUT(T, o0, fs::layout::fwd_state_out(0), fs_out0),                                  \
      FS_OUT(T, o1, fs::layout::fwd_state_out(1), fs_out1),                                  \
      FS_OUT(T, o2, fs::layout::fwd_state_out(2), fs_out2),                                  \
      FS_OUT(float, v0, fs::layout::fwd_save(0), fs_save0),                                  \
      FS_OUT(float, v1, fs::layout::fwd_save(1), fs_save1),                                  \
      FS_OUT(float, v2, fs::layout::fwd_save(2), fs_save2),                                  \
      constant uint* dims [[buffer(fs::layout::fwd_dims())]],                                \
      uint i [[thread_position_in_grid]]) {                                                  \
    FwdBuffers<T> b;                                                                         \
    b.x = x;                                                                                 \
    b.state0[0] = FS_GATED(fs_state0, s0);                                                   \
    b.state0[1] = FS_GATED(fs_state1, s1);                                                   \
    b.state0[2] = FS_GATED(fs_state2, s2);                                                   \
    b.param[0] = FS_GATED(fs_param0, p0);                                                    \
    b.param[1] = FS_GATED(fs_param1, p1);                                                    \
    b.param[2] = FS_GATED(fs_param2, p2);                                                    \
    b.param[3] = FS_GATED(fs_param3, p3);                                                    \
    b.param[4] = FS_GATED(fs_param4, p4);                                                    \
    b.param[5] = FS_GATED(fs_param5, p5);                                                    \
    b.spk = spk;                                                                             \
    b.state_out[0] = FS_GATED(fs_out0, o0);                                                  \
    b.state_out[1] = FS_GATED(fs_out1, o1);                                                  \
    b.state_out[2] = FS_GATED(fs_out2, o2);                                                  \
    b.save[0] = FS_GATED(fs_save0, v0);                                                      \
    b.save[1] = FS_GATED(fs_save1, v1);                                                      \
    b.save[2] = FS_GATED(fs_save2, v2);                                                      \
    family_forward_thread<fs::F, T, fs::R, fs::M>(b, dims, i);                               \
  }                                                                                          \
  [[kernel]] void NAME##_bwd_##RN##_##MN##_##TN(                                             \
      FS_IN(float, v0, fs::layout::bwd_save(0), fs_save0),                                   \
      FS_IN(float, v1, fs::layout::bwd_save(1), fs_save1),                                   \
      FS_IN(float, v2, fs::layout::bwd_save(2), fs_save2),                                   \
      FS_IN(T, x, fs::layout::bwd_x(), fs_read_x),                                           \
      FS_IN(float, s0, fs::layout::bwd_state0(0), fs_state0),                                \
      FS_IN(float, s1, fs::layout::bwd_state0(1), fs_state1),                                \
      FS_IN(float, s2, fs::layout::bwd_state0(2), fs_state2),                                \
      FS_IN(float, p0, fs::layout::bwd_param(0), fs_param0),                                 \
      FS_IN(float, p1, fs::layout::bwd_param(1), fs_param1),                                 \
      FS_IN(float, p2, fs::layout::bwd_param(2), fs_param2),                                 \
      FS_IN(float, p3, fs::layout::bwd_param(3), fs_param3),                                 \
      FS_IN(float, p4, fs::layout::bwd_param(4), fs_param4),                                 \
      FS_IN(float, p5, fs::layout::bwd_param(5), fs_param5),                                 \
      const device T* dspk [[buffer(fs::layout::bwd_dspk())]],                               \
      FS_IN(T, d0, fs::layout::bwd_dstate(0), fs_out0),                                      \
      FS_IN(T, d1, fs::layout::bwd_dstate(1), fs_out1),                                      \
      FS_IN(T, d2, fs::layout::bwd_dstate(2), fs_out2),                                      \
      device T* dx [[buffer(fs::layout::bwd_dx())]],                                         \
      FS_OUT(float, g0, fs::layout::bwd_dstate0(0), fs_state0),                              \
      FS_OUT(float, g1, fs::layout::bwd_dstate0(1), fs_state1),                              \
      FS_OUT(float, g2, fs::layout::bwd_dstate0(2), fs_state2),                              \
      FS_OUT(float, q0, fs::layout::bwd_dparam(0), fs_param0),                               \
      FS_OUT(float, q1, fs::layout::bwd_dparam(1), fs_param1),                               \
      FS_OUT(float, q2, fs::layout::bwd_dparam(2), fs_param2),                               \
      FS_OUT(float, q3, fs::layout::bwd_dparam(3), fs_param3),                               \
      FS_OUT(float, q4, fs::layout::bwd_dparam(4), fs_param4),                               \
      FS_OUT(float, q5, fs::layout::bwd_dparam(5), fs_param5),                               \
      constant uint* dims [[buffer(fs::layout::bwd_dims())]],                                \
      constant float& sa [[buffer(fs::layout::bwd_surrogate_a())]],                          \
      constant float& sb [[buffer(fs::layout::bwd_surrogate_b())]],                          \
      uint i [[thread_position_in_grid]]) {                                                  \
    BwdBuffers<T> b;                                                                         \
    b.save[0] = FS_GATED(fs_save0, v0);                                                      \
    b.save[1] = FS_GATED(fs_save1, v1);                                                      \
    b.save[2] = FS_GATED(fs_save2, v2);                                                      \
    b.x = FS_GATED(fs_read_x, x);                                                            \
    b.state0[0] = FS_GATED(fs_state0, s0);                                                   \
    b.state0[1] = FS_GATED(fs_state1, s1);                                                   \
    b.state0[2] = FS_GATED(fs_state2, s2);                                                   \
    b.param[0] = FS_GATED(fs_param0, p0);                                                    \
    b.param[1] = FS_GATED(fs_param1, p1);                                                    \
    b.param[2] = FS_GATED(fs_param2, p2);                                                    \
    b.param[3] = FS_GATED(fs_param3, p3);                                                    \
    b.param[4] = FS_GATED(fs_param4, p4);                                                    \
    b.param[5] = FS_GATED(fs_param5, p5);                                                    \
    b.dspk = dspk;                                                                           \
    b.dstate[0] = FS_GATED(fs_out0, d0);                                                     \
    b.dstate[1] = FS_GATED(fs_out1, d1);                                                     \
    b.dstate[2] = FS_GATED(fs_out2, d2);                                                     \
    b.dx = dx;                                                                               \
    b.dstate0[0] = FS_GATED(fs_state0, g0);                                                  \
    b.dstate0[1] = FS_GATED(fs_state1, g1);                                                  \
    b.dstate0[2] = FS_GATED(fs_state2, g2);                                                  \
    b.dparam[0] = FS_GATED(fs_param0, q0);                                                   \
    b.dparam[1] = FS_GATED(fs_param1, q1);                                                   \
    b.dparam[2] = FS_GATED(fs_param2, q2);                                                   \
    b.dparam[3] = FS_GATED(fs_param3, q3);                                                   \
    b.dparam[4] = FS_GATED(fs_param4, q4);                                                   \
    b.dparam[5] = FS_GATED(fs_param5, q5);                                                   \
    family_backward_thread<fs::F, T, fs::R, fs::M>(b, dims, sa, sb, i);                      \
  }

#define FS_DTYPE_KERNELS(NAME, F, RN, R, MN, M)        \
  FS_KERNEL_PAIR(NAME, F, RN, R, MN, M, float32, float) \
  FS_KERNEL_PAIR(NAME, F, RN, R, MN, M, float16, half)  \
  FS_KERNEL_PAIR(NAME, F, RN, R, MN, M, bfloat16, bfloat)

// Per mode, the family's resets (its FS_RESETS_<name> list).
#define FS_MODE_KERNELS(NAME, F, MN, M) FS_RESETS_##NAME(FS_RESET_KERNELS, NAME, F, MN, M)
#define FS_RESET_KERNELS(NAME, F, RN, R, MN, M) FS_DTYPE_KERNELS(NAME, F, RN, R, MN, M)

#define FS_FAMILY_KERNELS(ID, NAME, F) FS_MODES_##NAME(FS_MODE_KERNELS, NAME, F)

FS_FOR_EACH_FAMILY(FS_FAMILY_KERNELS)

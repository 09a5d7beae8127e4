// The family trait: what every neuron family's step header (src/step/<f>.h)
// exposes, and the only thing the generic kernels on every backend (CPU
// loops, CUDA, Metal) know about a family. Like common.h, this header is read
// by g++, nvcc and the Metal compiler: values in, values out, no references,
// no standard library, no `if constexpr` (Metal is C++14).
//
// A family F is a struct of static members:
//
//   kStates   carried states (Leaky: u; Synaptic: syn, mem). Each is an
//             initial-state input and gets a gradient.
//   kOutputStates  the first kOutputStates states are also the op's outputs
//             ([N], or [T, N] with mem_all) and cotangents of the backward;
//             the rest are carried only (RLeaky's spike fed back to the next
//             step, whose history is the spike output already).
//   kParams   parameters as the op receives them (raw, before clamps),
//             suffix arrays read as p[i % P]; each gets a gradient.
//   kConsts   per-neuron constants the step uses, made from the raw
//             parameters once per neuron by prepare() (clamps, 1/(R C)...).
//   kSaves    the most [T, N] float32 arrays the forward writes for the
//             backward, over the modes; saves(mode) is the count for a mode.
//   kBackwardX  the backward reads x again (families whose saved values do
//             not determine the step's derivatives: Alpha, Lapicque).
//   fire_reads_prev(mode)  whether fire() uses the states entering the step
//             (Synaptic's kImmediate recomputes h from them); loops that know
//             it does not skip recovering them for the surrogate.
//   kResets, kModes  bit masks (1 << fs::Reset, 1 << fs::Mode) of the options
//             the family has; kernels are instantiated only for these.
//
//   prepare(Vec<kParams> raw)                      -> Vec<kConsts>
//   forward<RESET, MODE>(Vec<kStates> prev, float x, Vec<kConsts> c)
//                                                  -> Fwd<F>: states, saves, spike
//   carried<RESET, MODE>(Vec<kSaves> save, Vec<kConsts> c) -> Vec<kStates>
//             the states a step carried out, from what that step saved: the
//             backward's state entering step t is carried(save of t-1), or
//             the initial states at t = 0.
//   fire<RESET, MODE>(Vec<kSaves> save, Vec<kStates> prev, Vec<kConsts> c)
//                                                  -> Fire: the surrogate's argument v
//             and the spike, exactly as the forward fired. A function of its
//             own so that loops can evaluate the surrogate for a row of
//             neurons with its id a compile-time constant. It does not read
//             x, so that the CPU compiles those loops once for every dtype
//             (src/cpu/slopes.cpp).
//   backward<RESET, MODE>(save, prev, x, c, dspk, Vec<kStates> dstate, sg, detach)
//                                                  -> Grad<F>: d prev, dx, d consts
//             dstate: dL/d(states out of step t), from step t+1 and from the
//             state outputs at t; sg: the surrogate's slope at fire(); detach:
//             no gradient through a same-step reset.
//   finish(Vec<kParams> raw, Vec<kConsts> dc)      -> Vec<kParams>
//             a neuron's parameter gradients from its constant gradients
//             summed over T (the clamp's mask, the chain rule of prepare()).
//
// Why the state entering a step is recovered from the step before (carried)
// and not saved as such: the forward then writes one array per state the
// backward really needs (Leaky writes h alone and recomputes U_{t-1} from
// h_{t-1}), which is the whole cost of these memory-bound kernels.
#pragma once

#include "common.h"

namespace fs {

// Host code only (errors, the binding's table): a family's state and
// parameter names, space-separated, as its op names them.
#if defined(__METAL_VERSION__)
#define FS_NAMES(STATES, PARAMS)
#else
#define FS_NAMES(STATES, PARAMS)                     \
  static constexpr const char* kStateNames = STATES; \
  static constexpr const char* kParamNames = PARAMS;
#endif

template <int N>
struct Vec {
  float v[N];
};

// The spike and the surrogate's argument.
struct Fire {
  float v;
  float s;
};

template <class F>
struct Fwd {
  Vec<F::kStates> s;     // states carried out of the step
  Vec<F::kSaves> save;   // what the backward reads (the first saves(MODE))
  float spk;
};

template <class F>
struct Grad {
  Vec<F::kStates> dprev;  // dL/d(states entering the step)
  float dx;
  Vec<F::kConsts> dc;     // this step's contribution to dL/d consts
};

// A running sum with Kahan's compensation c. The backward adds one term per
// step over T to each constant's gradient; in plain float32 those sums were
// 1e-6 to 1e-5 off (relative) at T = 100,000 (tests/ops/test_nonfinite.py's
// case), where x's gradient, which is not summed over T, stays at 2-5e-7. Exact only because no backend reassociates or
// contracts float arithmetic (common.h): fast math would fold c to 0.
struct Sum {
  float s, c;
};
FS_FN Sum add_compensated(Sum a, float v) {
  const float y = v - a.c;
  const float t = a.s + y;
  const float c = (t - a.s) - y;
  Sum o;
  o.s = t;
  // Once the sum or a term is infinite or NaN, c is inf - inf or inf: drop it,
  // so that the sum goes on as the plain sum does (inf stays inf; NaN, NaN).
  o.c = FS_FABSF(c) <= kFloatMax ? c : 0.0f;
  return o;
}

// Steps between folds of plain per-step sums into compensated ones (the CPU
// and CUDA kernels; see their fold functions): a fold's plain sum has the
// float32 error of a 32-term sum, not of a T-term one.
FS_CONST int kFoldSteps = 32;

// Whether the backward folds after `done` of its T steps (counted from step
// T - 1): after every kFoldSteps but the last; the kernels fold once more at
// the end. The same points on every backend give the same bits (the CUDA
// kernel meets them with a counter, csrc/family.cuh).
FS_FN bool fold_after(long done, long T) {
  return done < T && done % kFoldSteps == 0;
}

// The largest counts any family has: the fixed sizes of the generic kernels'
// pointer tables (CUDA params, Metal buffer layout). static_assert'ed against
// every registered family in families.h.
FS_CONST int kMaxStates = 3;
FS_CONST int kMaxParams = 6;  // Izhikevich: a b c d threshold time_step
FS_CONST int kMaxSaves = 3;

// Base of a family whose saves are exactly its states (kSaves == kStates):
// the states a step carried out are what it saved.
template <int NS>
struct SavesItsStates {
  template <int RESET, int MODE, class C>
  static FS_FN Vec<NS> carried(Vec<NS> save, C) {
    return save;
  }
};

// The spike H(u - θ) with snnTorch's strict >, and the surrogate's argument.
FS_FN Fire fire_above(float u, float th) {
  Fire f;
  f.v = u - th;
  f.s = u > th ? 1.0f : 0.0f;
  return f;
}

// snnTorch's reset_delay=False (kImmediate) after the spike, shared by the
// families that have it through a Synaptic-like step (Synaptic, RLeaky,
// RSynaptic): the membrane h that fired S is reset again by D = S - R (R,
// the delayed reset already applied), keeping S's surrogate gradient:
// U = h - D θ (subtract) | h - D h (zero) | h (none, and kDelayed).
template <int RESET, int MODE>
FS_FN float immediate_reset(float h, float s, float r, float th) {
  if (MODE == kDelayed || RESET == kNone) return h;
  if (RESET == kSubtract) return h - (s - r) * th;
  return h - (s - r) * h;
}

// The delayed reset applied to the charge b, as snnTorch's Synaptic and
// RLeaky do (R = [U_{t-1} > θ]): h = b - R θ (subtract) | b - R b (zero) | b.
template <int RESET>
FS_FN float delayed_reset_charge(float b, float r, float th) {
  if (RESET == kSubtract) return b - r * th;
  if (RESET == kZero) return b - b * r;
  return b;
}

// Its partials: dL/db from dL/dh, and dth with the subtract reset's θ term.
// (By value, not a reference: Metal would need an address space on one.)
struct ChargeGrad {
  float db, dth;
};
template <int RESET>
FS_FN ChargeGrad delayed_reset_charge_grad(float gh, float r, float dth) {
  ChargeGrad g{gh, dth};
  if (RESET == kSubtract) g.dth = dth - gh * r;
  if (RESET == kZero) g.db = gh * (1.0f - r);
  return g;
}

// Its partials dU/dh, dU/dS, dU/dθ.
struct ResetGrad {
  float dh, ds, dth;
};
template <int RESET, int MODE>
FS_FN ResetGrad immediate_reset_grad(float h, float s, float r, float th) {
  ResetGrad g{1.0f, 0.0f, 0.0f};
  if (MODE == kImmediate && RESET == kSubtract) {
    g.ds = -th;
    g.dth = -(s - r);
  } else if (MODE == kImmediate && RESET == kZero) {
    g.dh = 1.0f - (s - r);
    g.ds = -h;
  }
  return g;
}

template <class F>
FS_FN constexpr bool has_reset(int r) {
  return (F::kResets >> r) & 1u;
}
template <class F>
FS_FN constexpr bool has_mode(int m) {
  return (F::kModes >> m) & 1u;
}

// kModes from the family's FS_MODES_<name>(X, NAME, F) list (in its step
// header): one bit per entry, so that the list the preprocessor expands (the
// Metal kernels' names) and the mask the templates read cannot disagree.
#define FS_MODE_BIT(NAME, F, MN, M) (1u << M) |

// kResets likewise from the family's FS_RESETS_<name>(X, NAME, F, MN, M) list:
// X(NAME, F, reset_name, fs::Reset, MN, M) per reset. Most families have all
// three (`#define FS_RESETS_<name> FS_RESETS_ALL`); Izhikevich has one.
#define FS_RESETS_ALL(X, NAME, F, MN, M) \
  X(NAME, F, subtract, kSubtract, MN, M) X(NAME, F, zero, kZero, MN, M) X(NAME, F, none, kNone, MN, M)
#define FS_RESET_BIT(NAME, F, RN, R, MN, M) (1u << R) |

}  // namespace fs

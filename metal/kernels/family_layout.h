// The argument table of the generic Metal family kernels (family.metal): the
// index of every [[buffer(n)]] and [[function_constant(n)]], as constexpr
// functions that the kernel signatures and the launch plans (metal/family.h)
// both call, so the two cannot drift apart. Plain C++14, read by the Metal
// compiler (through embed.py) and by the host compiler.
//
// The layout is fixed, the same for every family: kMaxStates initial states,
// kMaxParams parameters, kMaxSaves saved arrays... (src/step/family.h). A
// family with fewer leaves the rest unbound; each such slot is gated by a
// function constant, so its argument is compiled out of the pipeline. Sizes
// travel as one `constant uint*` array: the backward's 27 arrays plus 11
// separate sizes and 2 surrogate parameters would need 40 buffer slots, and
// Metal has 31 (the backward uses 30).
#pragma once

#include "../../src/step/family.h"

namespace fs {
namespace layout {

// Function constants. Booleans gate buffers; the surrogate id is an int so
// that the surrogate's switch folds to one case per pipeline.
enum FunctionConstantIndex : int {
  kFcSurrogate = 0,   // int: fs::SurrogateId (backward)
  kFcDetach = 1,      // bool: no gradient through a same-step reset (backward)
  kFcMemAll = 2,      // bool: state outputs / cotangents are [T, N], not [N]
  kFcDspkRow = 3,     // bool: dspk is one [N] row read at every step
  kFcDstateRows = 4,  // int: bit j set, dstate j (with mem_all) is one [N] row
  kFcReadX = 5,       // bool: the backward reads x (F::kBackwardX)
  kFcState = 6,                       // bool per state slot j: the family has state j
  kFcParam = kFcState + kMaxStates,   // bool per parameter slot j
  kFcSave = kFcParam + kMaxParams,    // bool per save slot j: written / read
  kFcOut = kFcSave + kMaxSaves,       // bool per state slot j: state j is an output
                                      // (state_out, dstate; F::kOutputStates)
  kNumFunctionConstants = kFcOut + kMaxStates
};

// Forward: x, state0[S], param[P] -> spk, state_out[S], save[V]; dims.
FS_FN constexpr int fwd_x() { return 0; }
FS_FN constexpr int fwd_state0(int j) { return 1 + j; }
FS_FN constexpr int fwd_param(int j) { return fwd_state0(kMaxStates) + j; }
FS_FN constexpr int fwd_spk() { return fwd_param(kMaxParams); }
FS_FN constexpr int fwd_state_out(int j) { return fwd_spk() + 1 + j; }
FS_FN constexpr int fwd_save(int j) { return fwd_state_out(kMaxStates) + j; }
FS_FN constexpr int fwd_dims() { return fwd_save(kMaxSaves); }
FS_FN constexpr int fwd_buffers() { return fwd_dims() + 1; }

// Backward: save[V], x, state0[S], param[P], dspk, dstate[S] -> dx,
// dstate0[S], dparam[P] (per-neuron partials); dims, surrogate a and b.
FS_FN constexpr int bwd_save(int j) { return j; }
FS_FN constexpr int bwd_x() { return bwd_save(kMaxSaves); }
FS_FN constexpr int bwd_state0(int j) { return bwd_x() + 1 + j; }
FS_FN constexpr int bwd_param(int j) { return bwd_state0(kMaxStates) + j; }
FS_FN constexpr int bwd_dspk() { return bwd_param(kMaxParams); }
FS_FN constexpr int bwd_dstate(int j) { return bwd_dspk() + 1 + j; }
FS_FN constexpr int bwd_dx() { return bwd_dstate(kMaxStates); }
FS_FN constexpr int bwd_dstate0(int j) { return bwd_dx() + 1 + j; }
FS_FN constexpr int bwd_dparam(int j) { return bwd_dstate0(kMaxStates) + j; }
FS_FN constexpr int bwd_dims() { return bwd_dparam(kMaxParams); }
FS_FN constexpr int bwd_surrogate_a() { return bwd_dims() + 1; }
FS_FN constexpr int bwd_surrogate_b() { return bwd_dims() + 2; }
FS_FN constexpr int bwd_buffers() { return bwd_dims() + 3; }

// The dims array: T, N, then the suffix sizes (p[i % P]) of every slot; the
// plan writes 1 for a slot the family does not have.
FS_FN constexpr int dims_T() { return 0; }
FS_FN constexpr int dims_N() { return 1; }
FS_FN constexpr int dims_state(int j) { return 2 + j; }
FS_FN constexpr int dims_param(int j) { return dims_state(kMaxStates) + j; }
FS_FN constexpr int dims_size() { return dims_param(kMaxParams); }

static_assert(fwd_buffers() <= 31 && bwd_buffers() <= 31, "Metal has 31 buffer slots (0..30)");

}  // namespace layout
}  // namespace fs

// Launch plans of the Leaky Metal kernels (metal/kernels/leaky.metal): one
// thread per neuron, the buffer indices of the kernels' signatures, and the
// primitives' input and output order of src/ops/leaky.h. Plain C++: used by
// metal/leaky.cpp on macOS and by the Linux emulator (tests/metal).
#pragma once

#include "../src/step/common.h"
#include "launch.h"

namespace flashsnn::metal {

// Everything a Leaky launch depends on, copied from LeakyOptions and
// LeakyDims (src/ops/leaky.h) so that this header needs no MLX.
struct LeakyLaunch {
  int reset = fs::kSubtract;
  int mode = fs::kDelayed;
  bool detach = false;
  int surrogate_id = fs::kAtan;
  float surrogate_a = 2.0f;
  float surrogate_b = 0.0f;
  bool mem_all = false;
  bool save = true;  // forward: write h (and u for kImmediate)
  // Backward: dspk / (mem_all) dmem is one row [N] read at every step.
  bool dspk_row = false;
  bool dmem_row = false;
  int64_t T = 0, N = 0, P_mem = 1, P_beta = 1, P_th = 1;
  Dtype dtype = Dtype::kFloat32;

  // As LeakyOptions::saves_u(): kImmediate needs the carried membrane too.
  bool saves_u() const {
    return save && mode == fs::kImmediate;
  }
};

// Function-constant indices, as declared in leaky.metal.
enum LeakyConstant : int {
  kFcSurrogate = 0,
  kFcDetach = 1,
  kFcMemAll = 2,
  kFcSaveH = 3,
  kFcSaveU = 4,
  kFcDspkRow = 5,
  kFcDmemRow = 6,
};

namespace detail {

inline std::string leaky_kernel(const char* dir, const LeakyLaunch& l) {
  static const char* resets[] = {"subtract", "zero", "none"};
  static const char* modes[] = {"delayed", "immediate", "same_step"};
  if (l.reset < fs::kSubtract || l.reset > fs::kNone || l.mode < fs::kDelayed ||
      l.mode > fs::kSameStep) {
    throw std::invalid_argument("[leaky] internal: reset " + std::to_string(l.reset) +
                                " / mode " + std::to_string(l.mode) + " has no Metal kernel");
  }
  return std::string("leaky_") + dir + "_" + resets[l.reset] + "_" + modes[l.mode] + "_" +
      dtype_name(l.dtype);
}

inline void bind_sizes(Plan& p, int first, const LeakyLaunch& l) {
  p.bindings.push_back(Binding::u32(first, checked_u32("leaky", "T", l.T)));
  p.bindings.push_back(Binding::u32(first + 1, checked_u32("leaky", "neurons", l.N)));
  p.bindings.push_back(Binding::u32(first + 2, checked_u32("leaky", "mem size", l.P_mem)));
  p.bindings.push_back(Binding::u32(first + 3, checked_u32("leaky", "beta size", l.P_beta)));
  p.bindings.push_back(Binding::u32(first + 4, checked_u32("leaky", "threshold size", l.P_th)));
}

}  // namespace detail

// LeakyForward: inputs {x, mem, beta, threshold}, outputs {spk, mem, (h), (u)}.
inline Plan leaky_forward_plan(const LeakyLaunch& l) {
  Plan p;
  p.kernel = detail::leaky_kernel("fwd", l);
  const bool save_u = l.saves_u();
  p.constants = {FunctionConstant::boolean(kFcMemAll, l.mem_all),
                 FunctionConstant::boolean(kFcSaveH, l.save),
                 FunctionConstant::boolean(kFcSaveU, save_u)};
  p.pipeline = p.kernel + (l.mem_all ? "_memall" : "_memlast") + "_h" +
      std::to_string(int(l.save)) + "_u" + std::to_string(int(save_u));
  for (int j = 0; j < 4; ++j) p.bindings.push_back(Binding::input(j, j));
  p.bindings.push_back(Binding::output(4, 0));  // spk
  p.bindings.push_back(Binding::output(5, 1));  // mem
  if (l.save) p.bindings.push_back(Binding::output(6, 2));  // h
  if (save_u) p.bindings.push_back(Binding::output(7, 3));  // u
  detail::bind_sizes(p, 8, l);
  p.grid = checked_u32("leaky", "neurons", l.N);
  return p;
}

// LeakyBackward: inputs {h, (u), mem, beta, threshold, dspk, dmem}, outputs
// {dx, dmem, dbeta, dthreshold} (the last three per-neuron partials).
inline Plan leaky_backward_plan(const LeakyLaunch& l) {
  if (!l.save) throw std::invalid_argument("[leaky] internal: the backward reads the saved h");
  Plan p;
  p.kernel = detail::leaky_kernel("bwd", l);
  const bool has_u = l.saves_u();
  if (l.surrogate_id < 0 || l.surrogate_id >= fs::kNumSurrogates) {
    throw std::invalid_argument("[leaky] unknown surrogate id " + std::to_string(l.surrogate_id));
  }
  p.constants = {FunctionConstant::integer(kFcSurrogate, l.surrogate_id),
                 FunctionConstant::boolean(kFcDetach, l.detach),
                 FunctionConstant::boolean(kFcMemAll, l.mem_all),
                 FunctionConstant::boolean(kFcSaveU, has_u),
                 FunctionConstant::boolean(kFcDspkRow, l.dspk_row),
                 FunctionConstant::boolean(kFcDmemRow, l.dmem_row)};
  p.pipeline = p.kernel + "_sg" + std::to_string(l.surrogate_id) + "_detach" +
      std::to_string(int(l.detach)) + (l.mem_all ? "_memall" : "_memlast") + "_u" +
      std::to_string(int(has_u)) + "_rows" + std::to_string(int(l.dspk_row) + 2 * int(l.dmem_row));
  const int k = has_u ? 2 : 1;  // inputs after the saved h (and u)
  p.bindings.push_back(Binding::input(0, 0));  // h
  if (has_u) p.bindings.push_back(Binding::input(1, 1));  // u
  for (int j = 0; j < 5; ++j) {
    p.bindings.push_back(Binding::input(2 + j, k + j));  // mem, beta, threshold, dspk, dmem
  }
  for (int j = 0; j < 4; ++j) p.bindings.push_back(Binding::output(7 + j, j));
  detail::bind_sizes(p, 11, l);
  p.bindings.push_back(Binding::f32(16, l.surrogate_a));
  p.bindings.push_back(Binding::f32(17, l.surrogate_b));
  p.grid = checked_u32("leaky", "neurons", l.N);
  return p;
}

}  // namespace flashsnn::metal

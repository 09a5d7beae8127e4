// Launch plans of the generic Metal family kernels (metal/kernels/family.metal):
// one thread per neuron, every buffer and function-constant index from
// metal/kernels/family_layout.h (the functions the kernel signatures call),
// and the primitives' input and output order of src/ops/family.h (Layout).
// Plain C++, no Metal or MLX: used by metal/family.cpp on macOS and by the
// Linux emulator (tests/metal).
#pragma once

#include "../src/step/families.h"
#include "kernels/family_layout.h"
#include "launch.h"

namespace flashsnn::metal {

// A family's counts, read from its trait (the registration list), so that the
// plans need neither MLX nor a copy of the numbers.
struct KernelFamily {
  const char* name;
  int states, params;
  int outputs;   // states that are outputs (the first `outputs`)
  int saves[3];  // per fs::Mode
  bool backward_x;
  unsigned resets, modes;
};

inline const KernelFamily& kernel_family(int id) {
#define FS_KERNEL_FAMILY(ID, NAME, F)                                                \
  {#NAME, fs::F::kStates, fs::F::kParams, fs::F::kOutputStates,                     \
   {fs::F::saves(fs::kDelayed), fs::F::saves(fs::kImmediate), fs::F::saves(fs::kSameStep)}, \
   fs::F::kBackwardX, fs::F::kResets, fs::F::kModes},
  static const KernelFamily table[] = {FS_FOR_EACH_FAMILY(FS_KERNEL_FAMILY)};
#undef FS_KERNEL_FAMILY
  if (id < 0 || id >= fs::kNumFamilies) {
    throw std::invalid_argument("[fused] internal: family id " + std::to_string(id) +
                                " has no Metal kernels");
  }
  return table[id];
}

// Everything a launch depends on, copied from FamilyOptions and FamilyDims
// (src/ops/family.h) so that this header needs no MLX.
struct FamilyLaunch {
  int family = 0;  // fs::FamilyId
  int reset = fs::kSubtract;
  int mode = fs::kDelayed;
  bool detach = false;
  int surrogate_id = fs::kAtan;
  float surrogate_a = 2.0f;
  float surrogate_b = 0.0f;
  bool mem_all = false;
  bool save = true;            // forward: write what the backward reads
  bool dspk_row = false;       // backward: dspk is one [N] row
  unsigned dstate_rows = 0;    // backward, mem_all: bit j, dstate j is one row
  int64_t T = 0, N = 0;
  int64_t P_state[fs::kMaxStates] = {1, 1, 1};
  int64_t P_param[fs::kMaxParams] = {1, 1, 1, 1, 1, 1};
  Dtype dtype = Dtype::kFloat32;

  const KernelFamily& info() const { return kernel_family(family); }
  int saves() const { return save ? info().saves[mode] : 0; }
};

namespace detail {

namespace L = fs::layout;

inline const char* op_name(const FamilyLaunch& l) { return l.info().name; }

inline std::string kernel_name(const char* dir, const FamilyLaunch& l) {
  static const char* resets[] = {"subtract", "zero", "none"};
  static const char* modes[] = {"delayed", "immediate", "same_step"};
  const KernelFamily& f = l.info();
  if (l.reset < fs::kSubtract || l.reset > fs::kNone || l.mode < fs::kDelayed ||
      l.mode > fs::kSameStep || !((f.resets >> l.reset) & 1u) || !((f.modes >> l.mode) & 1u)) {
    throw std::invalid_argument(std::string("[") + f.name + "] internal: reset " +
                                std::to_string(l.reset) + " / mode " + std::to_string(l.mode) +
                                " has no Metal kernel");
  }
  return std::string(f.name) + "_" + dir + "_" + resets[l.reset] + "_" + modes[l.mode] + "_" +
      dtype_name(l.dtype);
}

// The slot constants: which state, parameter and save slots this family (and,
// for saves, this mode with save on) has.
inline void slot_constants(Plan& p, const FamilyLaunch& l) {
  const KernelFamily& f = l.info();
  for (int j = 0; j < fs::kMaxStates; ++j) {
    p.constants.push_back(FunctionConstant::boolean(L::kFcState + j, j < f.states));
  }
  for (int j = 0; j < fs::kMaxParams; ++j) {
    p.constants.push_back(FunctionConstant::boolean(L::kFcParam + j, j < f.params));
  }
  for (int j = 0; j < fs::kMaxSaves; ++j) {
    p.constants.push_back(FunctionConstant::boolean(L::kFcSave + j, j < l.saves()));
  }
  for (int j = 0; j < fs::kMaxStates; ++j) {
    p.constants.push_back(FunctionConstant::boolean(L::kFcOut + j, j < f.outputs));
  }
}

// T, N and every slot's suffix size (1 for the slots the family lacks).
inline void bind_dims(Plan& p, int index, const FamilyLaunch& l) {
  const char* op = op_name(l);
  const KernelFamily& f = l.info();
  std::vector<uint32_t> d(L::dims_size(), 1u);
  d[L::dims_T()] = checked_u32(op, "T", l.T);
  d[L::dims_N()] = checked_u32(op, "neurons", l.N);
  for (int j = 0; j < f.states; ++j) d[L::dims_state(j)] = checked_u32(op, "state size", l.P_state[j]);
  for (int j = 0; j < f.params; ++j) d[L::dims_param(j)] = checked_u32(op, "parameter size", l.P_param[j]);
  p.bindings.push_back(Binding::u32s(index, std::move(d)));
}

}  // namespace detail

// FamilyForward: inputs {x, state0[S], param[P]}, outputs {spk, state[O],
// save[saves()]} (O: the output states).
inline Plan family_forward_plan(const FamilyLaunch& l) {
  namespace L = fs::layout;
  const KernelFamily& f = l.info();
  Plan p;
  p.kernel = detail::kernel_name("fwd", l);
  p.constants = {FunctionConstant::boolean(L::kFcMemAll, l.mem_all)};
  detail::slot_constants(p, l);
  p.pipeline = p.kernel + (l.mem_all ? "_memall" : "_memlast") + "_save" + std::to_string(l.saves());
  p.bindings.push_back(Binding::input(L::fwd_x(), 0));
  for (int j = 0; j < f.states; ++j) p.bindings.push_back(Binding::input(L::fwd_state0(j), 1 + j));
  for (int j = 0; j < f.params; ++j) {
    p.bindings.push_back(Binding::input(L::fwd_param(j), 1 + f.states + j));
  }
  p.bindings.push_back(Binding::output(L::fwd_spk(), 0));
  for (int j = 0; j < f.outputs; ++j) p.bindings.push_back(Binding::output(L::fwd_state_out(j), 1 + j));
  for (int j = 0; j < l.saves(); ++j) {
    p.bindings.push_back(Binding::output(L::fwd_save(j), 1 + f.outputs + j));
  }
  detail::bind_dims(p, L::fwd_dims(), l);
  p.grid = checked_u32(f.name, "neurons", l.N);
  return p;
}

// FamilyBackward: inputs {save[saves()], (x), state0[S], param[P], dspk,
// dstate[O]}, outputs {dx, dstate0[S], dparam[P]} (the last two per-neuron
// partials), in Layout's order (src/ops/family.h).
inline Plan family_backward_plan(const FamilyLaunch& l) {
  namespace L = fs::layout;
  const KernelFamily& f = l.info();
  if (l.saves() < 1) {
    throw std::invalid_argument(std::string("[") + f.name +
                                "] internal: the backward reads what the forward saved");
  }
  if (l.surrogate_id < 0 || l.surrogate_id >= fs::kNumSurrogates) {
    throw std::invalid_argument(std::string("[") + f.name + "] unknown surrogate id " +
                                std::to_string(l.surrogate_id));
  }
  // A row bit only means something for a state the family has, with mem_all.
  const unsigned rows = l.mem_all ? l.dstate_rows & ((1u << f.outputs) - 1u) : 0u;
  Plan p;
  p.kernel = detail::kernel_name("bwd", l);
  p.constants = {FunctionConstant::integer(L::kFcSurrogate, l.surrogate_id),
                 FunctionConstant::boolean(L::kFcDetach, l.detach),
                 FunctionConstant::boolean(L::kFcMemAll, l.mem_all),
                 FunctionConstant::boolean(L::kFcDspkRow, l.dspk_row),
                 FunctionConstant::integer(L::kFcDstateRows, int32_t(rows)),
                 FunctionConstant::boolean(L::kFcReadX, f.backward_x)};
  detail::slot_constants(p, l);
  p.pipeline = p.kernel + "_sg" + std::to_string(l.surrogate_id) + "_detach" +
      std::to_string(int(l.detach)) + (l.mem_all ? "_memall" : "_memlast") + "_save" +
      std::to_string(l.saves()) + "_rows" + std::to_string(int(l.dspk_row) + 2 * int(rows));
  int in = 0;  // the primitive's inputs, in order
  for (int j = 0; j < l.saves(); ++j) p.bindings.push_back(Binding::input(L::bwd_save(j), in++));
  if (f.backward_x) p.bindings.push_back(Binding::input(L::bwd_x(), in++));
  for (int j = 0; j < f.states; ++j) p.bindings.push_back(Binding::input(L::bwd_state0(j), in++));
  for (int j = 0; j < f.params; ++j) p.bindings.push_back(Binding::input(L::bwd_param(j), in++));
  p.bindings.push_back(Binding::input(L::bwd_dspk(), in++));
  for (int j = 0; j < f.outputs; ++j) p.bindings.push_back(Binding::input(L::bwd_dstate(j), in++));
  p.bindings.push_back(Binding::output(L::bwd_dx(), 0));
  for (int j = 0; j < f.states; ++j) p.bindings.push_back(Binding::output(L::bwd_dstate0(j), 1 + j));
  for (int j = 0; j < f.params; ++j) {
    p.bindings.push_back(Binding::output(L::bwd_dparam(j), 1 + f.states + j));
  }
  detail::bind_dims(p, L::bwd_dims(), l);
  p.bindings.push_back(Binding::f32(L::bwd_surrogate_a(), l.surrogate_a));
  p.bindings.push_back(Binding::f32(L::bwd_surrogate_b(), l.surrogate_b));
  p.grid = checked_u32(f.name, "neurons", l.N);
  return p;
}

}  // namespace flashsnn::metal

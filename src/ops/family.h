// Every fused neuron family: the op function and its two primitives
// (forward, backward), generic over the family (src/step/family.h). eval_cpu
// lives in src/cpu/family.cpp, eval_gpu in the GPU backend CMake picked
// (csrc/ for CUDA, metal/ for Metal, src/no_gpu/ otherwise).
#pragma once

#include <string>
#include <vector>

#include "mlx/array.h"
#include "mlx/primitives.h"
#include "mlx/utils.h"

#include "../step/families.h"

namespace flashsnn {

namespace mx = mlx::core;

// A family's counts and options as runtime values (the trait's constants),
// for the code that is not a template over the trait: checks, shapes,
// vjp/vmap index arithmetic, launch plans.
struct FamilyInfo {
  const char* name;  // the op's name, which tags every error
  int states, params, consts, max_saves;
  int outputs;       // states that are outputs (the first `outputs`; kOutputStates)
  bool backward_x;
  unsigned resets, modes;
  int saves[3];      // per fs::Mode
  const char* state_names;  // space-separated, as the op names them
  const char* param_names;
  std::string state_name(int k) const { return word(state_names, k); }
  std::string param_name(int k) const { return word(param_names, k); }
  static std::string word(const char* s, int k);
};

// Throws the tagged error listing the valid ids for an unknown family.
const FamilyInfo& family_info(int family);

struct FamilyOptions {
  int family = 0;                  // fs::FamilyId
  int reset = fs::kSubtract;       // fs::Reset
  int mode = fs::kDelayed;         // fs::Mode
  bool detach = false;             // no gradient through a same-step reset
  fs::Surrogate surrogate{fs::kAtan, 2.0f, 0.0f};
  bool mem_all = false;            // state outputs [T, *S] instead of [*S]
  bool save = true;                // forward writes what the backward reads
  // Backward only: whether any parameter's gradient was asked for (vjp's
  // argnums). Without, the CPU backward skips their accumulation and writes
  // zero partials; the GPU kernels compute them regardless.
  bool param_grads = true;
  // Backward only: the spike cotangent (dspk_row) or, with mem_all, a state's
  // (bit k of dstate_rows) is one [*S] row, the same at every step, read with
  // a step stride of 0. A .sum() loss, or a sum of the spikes over time (the
  // rate losses), gives such a cotangent; materialized it was one more
  // [T, *S] array written and read per call (13 MB at T=100 B=32 N=1024).
  bool dspk_row = false;
  unsigned dstate_rows = 0;

  bool operator==(const FamilyOptions& o) const {
    return family == o.family && reset == o.reset && mode == o.mode && detach == o.detach &&
        surrogate.id == o.surrogate.id && surrogate.a == o.surrogate.a &&
        surrogate.b == o.surrogate.b && mem_all == o.mem_all && save == o.save &&
        param_grads == o.param_grads && dspk_row == o.dspk_row && dstate_rows == o.dstate_rows;
  }
  const FamilyInfo& info() const { return family_info(family); }
  // [T, N] float32 arrays the forward writes for the backward (0 unless save).
  int saves() const { return save ? info().saves[mode] : 0; }
  bool dstate_row(int k) const { return (dstate_rows >> k) & 1u; }
};

// Sizes every kernel needs: x is [T, N] row-major (N = prod(S)). Initial
// states and parameters are "suffix" arrays: one of P elements applies to
// neuron i as p[i % P] (its shape is a trailing part of S, or a scalar), so
// per-neuron [N], per-feature and scalar values need no copy.
struct FamilyDims {
  int64_t T, N;
  int64_t P_state[fs::kMaxStates];
  int64_t P_param[fs::kMaxParams];
};

// The primitives' array order, for every backend:
//  forward  inputs  x, state0[S], param[P]
//           outputs spk, state[O] ([*S] or [T, *S]), save[saves()] ([T, *S] f32)
//  backward inputs  save[saves()], (x when backward_x), state0[S], param[P],
//                   dspk ([T, *S], or [*S] when dspk_row), dstate[O] ([*S], or
//                   with mem_all [T, *S] unless that state's row bit is set)
//  with S states of which the first O are outputs (FamilyInfo::outputs).
//           outputs dx (x's dtype), then per-neuron partials (sums over T),
//                   float32 [N / P_k, P_k]: dstate0[S], dparam[P]; the op
//                   sums axis 0 with MLX's (deterministic) reduction.
struct Layout {
  int states, params, saves;
  int outputs;  // states with an output (and a cotangent): the first `outputs`
  bool x;  // the backward reads x
  int bwd_x() const { return saves; }
  int bwd_state0() const { return saves + (x ? 1 : 0); }
  int bwd_param() const { return bwd_state0() + states; }
  int bwd_dspk() const { return bwd_param() + params; }
  int bwd_dstate() const { return bwd_dspk() + 1; }
  int bwd_inputs() const { return bwd_dstate() + outputs; }
};
Layout layout(const FamilyOptions& o);

// x [T, *S] float32/float16/bfloat16; states and params float32 suffix
// arrays of S (FamilyDims). Returns {spk, state...} in x's dtype. save: 1/0
// forces the forward to write (or not) what the backward needs; -1 decides
// from whether any input is a tracer (under mx.grad, mx.vjp, mx.compile...).
std::vector<mx::array> family_forward(const mx::array& x,
                                      const std::vector<mx::array>& states,
                                      const std::vector<mx::array>& params,
                                      FamilyOptions opts,
                                      int save = -1,
                                      mx::StreamOrDevice s = {});

class FamilyForward : public mx::Primitive {
 public:
  FamilyForward(mx::Stream stream, FamilyOptions opts) : mx::Primitive(stream), opts_(opts) {}

  void eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override;
  void eval_gpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override;

  std::vector<mx::array> jvp(const std::vector<mx::array>& primals,
                             const std::vector<mx::array>& tangents,
                             const std::vector<int>& argnums) override;
  std::vector<mx::array> vjp(const std::vector<mx::array>& primals,
                             const std::vector<mx::array>& cotangents,
                             const std::vector<int>& argnums,
                             const std::vector<mx::array>& outputs) override;
  std::pair<std::vector<mx::array>, std::vector<int>> vmap(
      const std::vector<mx::array>& inputs, const std::vector<int>& axes) override;
  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& inputs) override;

  const char* name() const override { return "FamilyForward"; }
  bool is_equivalent(const mx::Primitive& other) const override {
    return opts_ == static_cast<const FamilyForward&>(other).opts_;
  }
  const FamilyOptions& options() const { return opts_; }

 private:
  FamilyOptions opts_;
};

class FamilyBackward : public mx::Primitive {
 public:
  FamilyBackward(mx::Stream stream, FamilyOptions opts) : mx::Primitive(stream), opts_(opts) {}

  void eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override;
  void eval_gpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override;

  std::pair<std::vector<mx::array>, std::vector<int>> vmap(
      const std::vector<mx::array>& inputs, const std::vector<int>& axes) override;
  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& inputs) override;

  const char* name() const override { return "FamilyBackward"; }
  bool is_equivalent(const mx::Primitive& other) const override {
    return opts_ == static_cast<const FamilyBackward&>(other).opts_;
  }
  const FamilyOptions& options() const { return opts_; }

 private:
  FamilyOptions opts_;
};

// Defined by the GPU backend that CMake picked (csrc/, metal/, src/no_gpu/):
// throws the tagged reason no kernel can launch on GPU stream `s` (no GPU
// backend compiled in; CUDA kernels not built for this GPU), so that
// family_forward fails while the graph is built and never inside eval_gpu.
void family_check_gpu(const FamilyOptions& o, const mx::Stream& s);

// Shapes and sizes shared by the op and every backend's eval; `first_state`
// is the index of the first initial state in `inputs`.
FamilyDims family_dims(const FamilyOptions& o, const std::vector<mx::array>& inputs,
                       int first_state);
FamilyDims forward_dims(const FamilyOptions& o, const std::vector<mx::array>& inputs);
FamilyDims backward_dims(const FamilyOptions& o, const std::vector<mx::array>& inputs);

// Every backend's FamilyBackward eval: the inputs are as many as the layout
// says, and the cotangents hold as many elements as the options say the
// kernel reads (a row: N; else T * N, or N for a last state), so that no
// kernel reads past an input.
void check_backward_inputs(const std::vector<mx::array>& inputs, const FamilyOptions& o);

}  // namespace flashsnn

// Leaky: the op function and its two primitives (forward, backward).
// eval_cpu lives in src/cpu/leaky.cpp, eval_gpu in the GPU backend that CMake
// picked (csrc/ for CUDA, metal/ for Metal, src/no_gpu/ otherwise).
#pragma once

#include <vector>

#include "mlx/array.h"
#include "mlx/primitives.h"
#include "mlx/utils.h"

#include "../step/common.h"

namespace flashsnn {

namespace mx = mlx::core;

struct LeakyOptions {
  int reset = fs::kSubtract;   // fs::Reset
  int mode = fs::kDelayed;     // fs::Mode
  bool detach = false;         // no gradient through a same-step reset
  fs::Surrogate surrogate{fs::kAtan, 2.0f, 0.0f};
  bool mem_all = false;        // membrane output: [T, *S] instead of [*S]
  bool save = true;            // forward writes h (and u) for the backward
  // Backward only: whether beta's or threshold's gradient was asked for
  // (vjp's argnums). Without, the CPU backward skips their accumulation and
  // writes zero partials; the GPU kernels compute them regardless.
  bool param_grads = true;
  // Backward only: the spike cotangent (dspk_row) or, with mem_all, the
  // membrane's (dmem_row) is one [*S] row, the same at every step, read with
  // a step stride of 0. A .sum() loss, or a sum of the spikes over time (the
  // rate losses), gives such a cotangent; materialized it was one more
  // [T, *S] array written and read per call (13 MB at T=100 B=32 N=1024).
  bool dspk_row = false;
  bool dmem_row = false;

  bool operator==(const LeakyOptions& o) const {
    return reset == o.reset && mode == o.mode && detach == o.detach &&
        surrogate.id == o.surrogate.id && surrogate.a == o.surrogate.a &&
        surrogate.b == o.surrogate.b && mem_all == o.mem_all && save == o.save &&
        param_grads == o.param_grads && dspk_row == o.dspk_row && dmem_row == o.dmem_row;
  }
  // kImmediate needs the carried membrane u besides h (src/step/leaky.h).
  bool saves_u() const {
    return save && mode == fs::kImmediate;
  }
};

// Sizes every Leaky kernel needs: x is [T, N] row-major (N = prod(S)). The
// initial membrane and the parameters are "suffix" arrays: one of P elements
// applies to neuron i as p[i % P] (its shape is a trailing part of S, or a
// scalar), so per-neuron [N], per-feature and scalar values need no copy.
struct LeakyDims {
  int64_t T, N, P_mem, P_beta, P_th;
};

// x [T, *S] float32/float16/bfloat16; mem, beta, threshold float32 suffix
// arrays of S (see LeakyDims). Returns
// {spk [T, *S], mem [*S] or [T, *S]} in x's dtype. save: 1/0 forces the
// forward to write (or not) what the backward needs; -1 decides from whether
// any input is a tracer (under mx.grad, mx.vjp, mx.compile...).
std::vector<mx::array> leaky_forward(
    const mx::array& x,
    const mx::array& mem,
    const mx::array& beta,
    const mx::array& threshold,
    LeakyOptions opts,
    int save = -1,
    mx::StreamOrDevice s = {});

class LeakyForward : public mx::Primitive {
 public:
  LeakyForward(mx::Stream stream, LeakyOptions opts)
      : mx::Primitive(stream), opts_(opts) {}

  void eval_cpu(const std::vector<mx::array>& inputs,
                std::vector<mx::array>& outputs) override;
  void eval_gpu(const std::vector<mx::array>& inputs,
                std::vector<mx::array>& outputs) override;

  std::vector<mx::array> jvp(const std::vector<mx::array>& primals,
                             const std::vector<mx::array>& tangents,
                             const std::vector<int>& argnums) override;
  std::vector<mx::array> vjp(const std::vector<mx::array>& primals,
                             const std::vector<mx::array>& cotangents,
                             const std::vector<int>& argnums,
                             const std::vector<mx::array>& outputs) override;
  std::pair<std::vector<mx::array>, std::vector<int>> vmap(
      const std::vector<mx::array>& inputs,
      const std::vector<int>& axes) override;
  std::vector<mx::Shape> output_shapes(
      const std::vector<mx::array>& inputs) override;

  const char* name() const override {
    return "LeakyForward";
  }
  bool is_equivalent(const mx::Primitive& other) const override {
    return opts_ == static_cast<const LeakyForward&>(other).opts_;
  }
  const LeakyOptions& options() const {
    return opts_;
  }

 private:
  LeakyOptions opts_;
};

// inputs: h [T,S] f32, (u [T,S] f32 when opts.saves_u()), mem [Pm] f32,
//         beta [Pb] f32, threshold [Pt] f32, dspk [T,S] ([S] when
//         opts.dspk_row), dmem ([S], or [T,S] when mem_all and not dmem_row)
// outputs: dx [T,S] (x's dtype), then per-neuron partials (sums over T)
//          dmem [N/Pm, Pm], dbeta [N/Pb, Pb], dthreshold [N/Pt, Pt], all f32;
//          the op sums axis 0 with MLX's (deterministic) reduction.
class LeakyBackward : public mx::Primitive {
 public:
  LeakyBackward(mx::Stream stream, LeakyOptions opts)
      : mx::Primitive(stream), opts_(opts) {}

  void eval_cpu(const std::vector<mx::array>& inputs,
                std::vector<mx::array>& outputs) override;
  void eval_gpu(const std::vector<mx::array>& inputs,
                std::vector<mx::array>& outputs) override;

  std::pair<std::vector<mx::array>, std::vector<int>> vmap(
      const std::vector<mx::array>& inputs,
      const std::vector<int>& axes) override;
  std::vector<mx::Shape> output_shapes(
      const std::vector<mx::array>& inputs) override;

  const char* name() const override {
    return "LeakyBackward";
  }
  bool is_equivalent(const mx::Primitive& other) const override {
    return opts_ == static_cast<const LeakyBackward&>(other).opts_;
  }
  const LeakyOptions& options() const {
    return opts_;
  }

 private:
  LeakyOptions opts_;
};

// Defined by the GPU backend that CMake picked (csrc/, metal/, src/no_gpu/):
// throws the tagged reason no Leaky kernel can launch on GPU stream `s`
// (no GPU backend compiled in; CUDA kernels not built for this GPU), so that
// leaky_forward fails while the graph is built and never inside eval_gpu.
void leaky_check_gpu(const mx::Stream& s);

// Shapes and sizes shared by the op and every backend's eval.
LeakyDims leaky_dims(const mx::array& x_or_h, const mx::array& mem,
                     const mx::array& beta, const mx::array& threshold);

// Every backend's LeakyBackward eval: the cotangents hold as many elements
// as the options say the kernel reads (a row: N; else T * N, or N for the
// last membrane), so that no kernel reads past an input.
void check_backward_inputs(const std::vector<mx::array>& inputs, const LeakyOptions& o);

}  // namespace flashsnn

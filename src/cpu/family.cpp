// Every neuron family on the CPU: eval_cpu of the two primitives, which
// fill the kernels' argument tables and hand them to the engine (engine.h).
#include "mlx/backend/cpu/encoder.h"

#include "../ops/buffers.h"
#include "engine.h"

namespace flashsnn {

namespace {

using cpu::engine::BwdArgs;
using cpu::engine::FwdArgs;

void alloc_outputs(std::vector<mx::array>& outputs, const mx::Stream& s) {
  for (auto& o : outputs) alloc_output(o, s);
}

}  // namespace

void FamilyForward::eval_cpu(const std::vector<mx::array>& inputs,
                             std::vector<mx::array>& outputs) {
  const FamilyOptions o = opts_;
  const char* op = o.info().name;
  for (const auto& in : inputs) check_row_contiguous(op, in);
  alloc_outputs(outputs, stream());
  auto& enc = mx::cpu::get_command_encoder(stream());
  for (const auto& in : inputs) enc.set_input_array(in);
  for (auto& out : outputs) enc.set_output_array(out);

  const auto& x = inputs[0];
  const FamilyDims d = forward_dims(o, inputs);
  const int S = o.info().states, P = o.info().params;
  dispatch_kernel_dtype(op, x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    FwdArgs<T> a{};
    a.x = x.data<T>();
    for (int j = 0; j < S; ++j) a.state0[j] = inputs[1 + j].data<float>();
    for (int j = 0; j < P; ++j) a.param[j] = inputs[1 + S + j].data<float>();
    a.spk = outputs[0].data<T>();
    const int O = o.info().outputs;
    for (int j = 0; j < O; ++j) a.state_out[j] = outputs[1 + j].data<T>();
    for (int j = 0; j < o.saves(); ++j) a.save[j] = outputs[1 + O + j].data<float>();
    a.d = d;
    a.mem_all = o.mem_all;
    a.stream = cpu::use_streaming_stores(op, outputs[0].nbytes());
    enc.dispatch([o, a]() { cpu::engine::forward_kernel<T>(o, a); });
  });
}

void FamilyBackward::eval_cpu(const std::vector<mx::array>& inputs,
                              std::vector<mx::array>& outputs) {
  const FamilyOptions o = opts_;
  const char* op = o.info().name;
  for (const auto& in : inputs) check_row_contiguous(op, in);
  check_backward_inputs(inputs, o);
  alloc_outputs(outputs, stream());
  auto& enc = mx::cpu::get_command_encoder(stream());
  for (const auto& in : inputs) enc.set_input_array(in);
  for (auto& out : outputs) enc.set_output_array(out);

  const Layout L = layout(o);
  const auto& dspk = inputs[L.bwd_dspk()];
  const FamilyDims d = backward_dims(o, inputs);
  dispatch_kernel_dtype(op, dspk.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    BwdArgs<T> a{};
    for (int j = 0; j < L.saves; ++j) a.save[j] = inputs[j].data<float>();
    a.x = L.x ? inputs[L.bwd_x()].data<T>() : nullptr;
    for (int j = 0; j < L.states; ++j) {
      a.state0[j] = inputs[L.bwd_state0() + j].data<float>();
      a.dstate0[j] = outputs[1 + j].data<float>();
    }
    for (int j = 0; j < L.outputs; ++j) a.dstate[j] = inputs[L.bwd_dstate() + j].data<T>();
    for (int j = 0; j < L.params; ++j) {
      a.param[j] = inputs[L.bwd_param() + j].data<float>();
      a.dparam[j] = outputs[1 + L.states + j].data<float>();
    }
    a.dspk = dspk.data<T>();
    a.dx = outputs[0].data<T>();
    a.d = d;
    a.mem_all = o.mem_all;
    a.g = o.surrogate;
    a.detach = o.detach;
    a.stream = cpu::use_streaming_stores(op, outputs[0].nbytes());
    a.dspk_row = o.dspk_row;
    a.dstate_rows = o.dstate_rows;
    enc.dispatch([o, a]() { cpu::engine::backward_kernel<T>(o, a); });
  });
}

}  // namespace flashsnn

// Every fused family on CUDA: eval_gpu for the two primitives. Host compiler
// only; the kernels are reached through the API in family.h. Generic over the
// family: the primitives' array order is the Layout of src/ops/family.h, and
// the family's counts come from FamilyInfo.
//
// MLX records kernels into a CUDA graph: set_input_array / set_output_array
// declare the dependencies, add_kernel_node_raw adds the launch, and MLX
// commits the graph itself. Outputs come from flashsnn's own stream-ordered
// device pool (buffers.cpp): MLX's is not exported from libmlx.so, and
// mx::allocator::malloc gives managed memory.
#include "mlx/backend/cuda/device.h"

#include "../src/ops/buffers.h"
#include "../src/ops/common.h"
#include "../src/ops/family.h"
#include "family.h"
#include "glue.h"

namespace flashsnn {

namespace {

int kernel_dtype(const char* op, mx::Dtype dt) {
  if (dt == mx::float32) return cuda::kFloat32;
  if (dt == mx::float16) return cuda::kFloat16;
  if (dt == mx::bfloat16) return cuda::kBFloat16;
  fail(op, "internal: CUDA kernels take float32, float16 or bfloat16");
}

// Sizes every kernel takes, forward or backward.
template <typename P>
void set_dims(P& p, const FamilyDims& d) {
  p.T = d.T;
  p.N = d.N;
  for (int k = 0; k < fs::kMaxStates; ++k) p.P_state[k] = d.P_state[k];
  for (int k = 0; k < fs::kMaxParams; ++k) p.P_param[k] = d.P_param[k];
}

template <typename P>
void launch(mx::cu::CommandEncoder& enc, const cuda::Launch& l, P& params) {
  void* args[] = {&params};
  enc.add_kernel_node_raw(l.fn, dim3(l.grid), dim3(l.block), dim3(), 0, args);
}

}  // namespace

void family_check_gpu(const FamilyOptions& o, const mx::Stream& s) {
  if (const char* err = cuda::family_check_device(mx::cu::device(s.device).cuda_device()))
    fail(o.info().name, err);
}

void FamilyForward::eval_gpu(const std::vector<mx::array>& inputs,
                             std::vector<mx::array>& outputs) {
  const FamilyInfo& f = opts_.info();
  auto& enc = prepare(f.name, stream(), inputs, outputs);
  // inputs: x, state0[S], param[P]; outputs: spk, state[O], save[saves()]
  const auto& x = inputs[0];
  cuda::FwdParams p{};
  p.x = mx::gpu_ptr<void>(x);
  for (int k = 0; k < f.states; ++k) p.state0[k] = mx::gpu_ptr<float>(inputs[1 + k]);
  for (int k = 0; k < f.outputs; ++k) p.state_out[k] = mx::gpu_ptr<void>(outputs[1 + k]);
  for (int k = 0; k < f.params; ++k) p.param[k] = mx::gpu_ptr<float>(inputs[1 + f.states + k]);
  p.spk = mx::gpu_ptr<void>(outputs[0]);
  for (int k = 0; k < opts_.saves(); ++k) p.save[k] = mx::gpu_ptr<float>(outputs[1 + f.outputs + k]);
  set_dims(p, forward_dims(opts_, inputs));
  p.mem_all = opts_.mem_all;

  cuda::Launch l{};
  if (const char* err =
          cuda::family_forward_launch(p, opts_.family, kernel_dtype(f.name, x.dtype()),
                                      opts_.reset, opts_.mode, enc.device().cuda_device(), &l))
    fail(f.name, err);
  launch(enc, l, p);
}

void FamilyBackward::eval_gpu(const std::vector<mx::array>& inputs,
                              std::vector<mx::array>& outputs) {
  check_backward_inputs(inputs, opts_);
  const FamilyInfo& f = opts_.info();
  const Layout L = layout(opts_);
  auto& enc = prepare(f.name, stream(), inputs, outputs);
  // inputs: save[saves()], (x), state0[S], param[P], dspk, dstate[O]
  // outputs: dx, dstate0[S], dparam[P] (src/ops/family.h, Layout)
  const auto& dspk = inputs[L.bwd_dspk()];
  cuda::BwdParams p{};
  for (int k = 0; k < L.saves; ++k) p.save[k] = mx::gpu_ptr<float>(inputs[k]);
  p.x = L.x ? mx::gpu_ptr<void>(inputs[L.bwd_x()]) : nullptr;
  for (int k = 0; k < f.states; ++k) {
    p.state0[k] = mx::gpu_ptr<float>(inputs[L.bwd_state0() + k]);
    p.dstate0[k] = mx::gpu_ptr<float>(outputs[1 + k]);
  }
  for (int k = 0; k < L.outputs; ++k) p.dstate[k] = mx::gpu_ptr<void>(inputs[L.bwd_dstate() + k]);
  for (int k = 0; k < f.params; ++k) {
    p.param[k] = mx::gpu_ptr<float>(inputs[L.bwd_param() + k]);
    p.dparam[k] = mx::gpu_ptr<float>(outputs[1 + f.states + k]);
  }
  p.dspk = mx::gpu_ptr<void>(dspk);
  p.dx = mx::gpu_ptr<void>(outputs[0]);
  set_dims(p, backward_dims(opts_, inputs));
  // A row cotangent is read with a step stride of 0 (FamilyOptions).
  p.dspk_step = opts_.dspk_row ? 0 : p.N;
  for (int k = 0; k < L.outputs; ++k) p.dstate_step[k] = opts_.dstate_row(k) ? 0 : p.N;
  p.mem_all = opts_.mem_all;
  p.detach = opts_.detach;
  p.g = opts_.surrogate;

  cuda::Launch l{};
  if (const char* err =
          cuda::family_backward_launch(p, opts_.family, kernel_dtype(f.name, dspk.dtype()),
                                       opts_.reset, opts_.mode, enc.device().cuda_device(), &l))
    fail(f.name, err);
  launch(enc, l, p);
}

}  // namespace flashsnn

// Leaky on CUDA: eval_gpu for the two primitives. Host compiler only; the
// kernels are in leaky.cu, reached through the API in leaky.h.
//
// MLX records kernels into a CUDA graph: set_input_array / set_output_array
// declare the dependencies, add_kernel_node_raw adds the launch, and MLX
// commits the graph itself. Outputs come from flashsnn's own stream-ordered
// device pool (buffers.cpp): MLX's is not exported from libmlx.so, and
// mx::allocator::malloc gives managed memory.
#include "mlx/backend/cuda/device.h"

#include "../src/ops/buffers.h"
#include "../src/ops/common.h"
#include "../src/ops/leaky.h"
#include "leaky.h"

namespace flashsnn {

namespace {

const char* kOp = "leaky";

int kernel_dtype(mx::Dtype dt) {
  if (dt == mx::float32) return cuda::kFloat32;
  if (dt == mx::float16) return cuda::kFloat16;
  if (dt == mx::bfloat16) return cuda::kBFloat16;
  fail(kOp, "internal: CUDA kernels take float32, float16 or bfloat16");
}

// Declare inputs and outputs to the encoder and give every output memory.
mx::cu::CommandEncoder& prepare(mx::Stream s, const std::vector<mx::array>& inputs,
                                std::vector<mx::array>& outputs) {
  auto& enc = mx::cu::get_command_encoder(s);
  for (const auto& in : inputs) {
    check_row_contiguous(kOp, in);
    enc.set_input_array(in);
  }
  for (auto& out : outputs) {
    alloc_output(out, s);
    enc.set_output_array(out);
  }
  return enc;
}

// Sizes every kernel takes, forward or backward.
template <typename P>
void set_dims(P& p, const LeakyDims& d) {
  p.T = d.T;
  p.N = d.N;
  p.P_mem = d.P_mem;
  p.P_beta = d.P_beta;
  p.P_th = d.P_th;
}

template <typename P>
void launch(mx::cu::CommandEncoder& enc, const cuda::Launch& l, P& params) {
  void* args[] = {&params};
  enc.add_kernel_node_raw(l.fn, dim3(l.grid), dim3(l.block), dim3(), 0, args);
}

}  // namespace

void leaky_check_gpu(const mx::Stream& s) {
  if (const char* err = cuda::leaky_check_device(mx::cu::device(s.device).cuda_device()))
    fail(kOp, err);
}

void LeakyForward::eval_gpu(const std::vector<mx::array>& inputs,
                            std::vector<mx::array>& outputs) {
  auto& enc = prepare(stream(), inputs, outputs);
  const auto& x = inputs[0];
  cuda::LeakyFwdParams p{};
  p.x = mx::gpu_ptr<void>(x);
  p.mem = mx::gpu_ptr<float>(inputs[1]);
  p.beta = mx::gpu_ptr<float>(inputs[2]);
  p.th = mx::gpu_ptr<float>(inputs[3]);
  p.spk = mx::gpu_ptr<void>(outputs[0]);
  p.mem_out = mx::gpu_ptr<void>(outputs[1]);
  p.h = opts_.save ? mx::gpu_ptr<float>(outputs[2]) : nullptr;
  p.u = opts_.saves_u() ? mx::gpu_ptr<float>(outputs[3]) : nullptr;
  set_dims(p, leaky_dims(x, inputs[1], inputs[2], inputs[3]));
  p.mem_all = opts_.mem_all;

  cuda::Launch l{};
  if (const char* err = cuda::leaky_forward_launch(p, kernel_dtype(x.dtype()), opts_.reset,
                                                   opts_.mode, enc.device().cuda_device(), &l))
    fail(kOp, err);
  launch(enc, l, p);
}

void LeakyBackward::eval_gpu(const std::vector<mx::array>& inputs,
                             std::vector<mx::array>& outputs) {
  check_backward_inputs(inputs, opts_);
  auto& enc = prepare(stream(), inputs, outputs);
  // [h, (u), mem, beta, threshold, dspk, dmem] (src/ops/leaky.h)
  const size_t k = opts_.saves_u() ? 2 : 1;
  const auto& h = inputs[0];
  const auto& dspk = inputs[k + 3];
  cuda::LeakyBwdParams p{};
  p.h = mx::gpu_ptr<float>(h);
  p.u = opts_.saves_u() ? mx::gpu_ptr<float>(inputs[1]) : nullptr;
  p.mem = mx::gpu_ptr<float>(inputs[k]);
  p.beta = mx::gpu_ptr<float>(inputs[k + 1]);
  p.th = mx::gpu_ptr<float>(inputs[k + 2]);
  p.dspk = mx::gpu_ptr<void>(dspk);
  p.dmem = mx::gpu_ptr<void>(inputs[k + 4]);
  p.dx = mx::gpu_ptr<void>(outputs[0]);
  p.dmem0 = mx::gpu_ptr<float>(outputs[1]);
  p.dbeta = mx::gpu_ptr<float>(outputs[2]);
  p.dth = mx::gpu_ptr<float>(outputs[3]);
  set_dims(p, leaky_dims(h, inputs[k], inputs[k + 1], inputs[k + 2]));
  p.dspk_step = opts_.dspk_row ? 0 : p.N;
  p.dmem_step = opts_.dmem_row ? 0 : p.N;
  p.mem_all = opts_.mem_all;
  p.detach = opts_.detach;
  p.g = opts_.surrogate;

  cuda::Launch l{};
  if (const char* err = cuda::leaky_backward_launch(p, kernel_dtype(dspk.dtype()), opts_.reset,
                                                    opts_.mode, enc.device().cuda_device(), &l))
    fail(kOp, err);
  launch(enc, l, p);
}

}  // namespace flashsnn

// The selective scan on CUDA: eval_gpu of its two primitives (host compiler,
// MLX's CUDA headers); the kernels are reached through scan.h. The backward
// is two launches in MLX's graph: the per-block reverse scan, then the fixed-
// order sums of its partials (scan.cuh). Its scratch (one chunk's states,
// the partials) comes from flashsnn's device pool and lives until the graph
// has run (add_temporary).
#include <cstdint>
#include <vector>

#include "mlx/backend/cuda/device.h"

#include "../src/ops/buffers.h"
#include "../src/ops/common.h"
#include "../src/ops/scan.h"
#include "family.h"
#include "glue.h"
#include "scan.h"

namespace flashsnn {

namespace {

constexpr const char* kOp = "selective_scan";

int scan_dtype(mx::Dtype dt) {
  if (dt == mx::float32) return cuda::kFloat32;
  if (dt == mx::float16) return cuda::kFloat16;
  if (dt == mx::bfloat16) return cuda::kBFloat16;
  fail(kOp, "internal: CUDA kernels take float32, float16 or bfloat16");
}

// Scratch for the backward: a float32 array from flashsnn's pool, kept alive
// until the graph has run. MLX orders graph nodes by the arrays declared
// before each: the scratch is declared an output of the scan kernel here and
// an input of the sum kernel in eval_gpu (without that, the sums ran beside
// the scan and read partials not yet written: dA all zeros on an H200).
float* scratch(mx::cu::CommandEncoder& enc, mx::Stream s, int64_t n,
               std::vector<mx::array>& keep) {
  if (n > INT32_MAX) fail(kOp, "the backward's scratch needs over 2^31 floats; use a smaller chunk");
  mx::array a(mx::Shape{int(n)}, mx::float32, nullptr, {});
  alloc_output(a, s);
  enc.add_temporary(a);
  enc.set_output_array(a);
  keep.push_back(a);
  return mx::gpu_ptr<float>(a);
}

template <typename... A>
void launch(mx::cu::CommandEncoder& enc, const cuda::ScanLaunch& l, dim3 grid, A&... params) {
  void* args[] = {&params...};
  enc.add_kernel_node_raw(l.fn, grid, dim3(l.block), dim3(), l.shared, args);
}

// The arguments every scan kernel reads (src/ops/scan.h's input order).
cuda::ScanParams inputs_of(const ScanOptions& o, const std::vector<mx::array>& in) {
  const ScanLayout lay{o};
  cuda::ScanParams p{};
  p.u = mx::gpu_ptr<void>(in[0]);
  p.delta = mx::gpu_ptr<void>(in[1]);
  p.A = mx::gpu_ptr<float>(in[2]);
  p.B = mx::gpu_ptr<void>(in[3]);
  p.C = mx::gpu_ptr<void>(in[4]);
  p.Dv = o.has_D ? mx::gpu_ptr<float>(in[lay.D()]) : nullptr;
  p.z = o.has_z ? mx::gpu_ptr<void>(in[lay.z()]) : nullptr;
  p.bias = o.has_bias ? mx::gpu_ptr<float>(in[lay.bias()]) : nullptr;
  p.h0 = o.has_h0 ? mx::gpu_ptr<float>(in[lay.h0()]) : nullptr;
  p.Bt = in[0].shape(0);
  p.L = in[0].shape(1);
  p.D = in[0].shape(2);
  p.N = in[2].shape(1);
  p.K = o.chunk;
  p.nchk = (p.L + p.K - 1) / p.K;
  p.has_D = o.has_D;
  p.has_z = o.has_z;
  p.has_bias = o.has_bias;
  p.has_h0 = o.has_h0;
  p.softplus = o.softplus;
  p.B_varies = o.B_varies;
  p.C_varies = o.C_varies;
  return p;
}

}  // namespace

void ScanForward::eval_gpu(const std::vector<mx::array>& inputs,
                           std::vector<mx::array>& outputs) {
  auto& enc = prepare(kOp, stream(), inputs, outputs);
  cuda::ScanParams p = inputs_of(o_, inputs);
  p.out = mx::gpu_ptr<void>(outputs[0]);
  p.last = mx::gpu_ptr<float>(outputs[1]);
  p.chk = mx::gpu_ptr<float>(outputs[2]);
  if (p.Bt * p.D == 0) return;  // no channel: nothing to write (L = 0 still copies h0)
  cuda::ScanLaunch l{};
  if (const char* err =
          cuda::scan_launch(p, false, scan_dtype(inputs[0].dtype()), enc.device().cuda_device(), &l))
    fail(kOp, err);
  launch(enc, l, dim3(l.grid), p);
}

void ScanBackward::eval_gpu(const std::vector<mx::array>& inputs,
                            std::vector<mx::array>& outputs) {
  auto s = stream();
  auto& enc = prepare(kOp, s, inputs, outputs);
  const int n = ScanLayout{o_}.inputs();
  cuda::ScanParams p = inputs_of(o_, inputs);
  p.chk_in = mx::gpu_ptr<float>(inputs[n]);
  p.dout = mx::gpu_ptr<void>(inputs[n + 1]);
  p.dlast = mx::gpu_ptr<float>(inputs[n + 2]);
  p.du = mx::gpu_ptr<void>(outputs[0]);
  p.ddelta = mx::gpu_ptr<void>(outputs[1]);
  p.dz = o_.has_z ? mx::gpu_ptr<void>(outputs[6]) : nullptr;
  p.dh0 = o_.has_h0 ? mx::gpu_ptr<float>(outputs[8]) : nullptr;
  const cuda::ScanScratch sizes = cuda::scan_scratch(p);
  std::vector<mx::array> keep;
  p.hs = scratch(enc, s, sizes.hs, keep);
  p.pA = scratch(enc, s, sizes.pA, keep);
  p.pB = scratch(enc, s, sizes.pB, keep);
  p.pC = scratch(enc, s, sizes.pC, keep);
  p.pD = scratch(enc, s, sizes.pD, keep);
  p.pbias = scratch(enc, s, sizes.pbias, keep);
  const int dev = enc.device().cuda_device();
  cuda::ScanLaunch l{};
  if (p.Bt * p.D > 0) {  // L = 0 too: dh0 = dlast, zero partials
    if (const char* err = cuda::scan_launch(p, true, scan_dtype(inputs[0].dtype()), dev, &l))
      fail(kOp, err);
    launch(enc, l, dim3(l.grid), p);
  }
  // Sums over batch rows (dA, dD, dbias, a time-invariant dB / dC) and
  // channel groups (per-step dB / dC); with no batch row or channel, zero
  // parts give zeros.
  auto out = [&](int k) { return outputs[k].size() ? mx::gpu_ptr<float>(outputs[k]) : nullptr; };
  cuda::ScanSumParams q = cuda::scan_sums(p, out(2), out(3), out(4), o_.has_D ? out(5) : nullptr,
                                          o_.has_bias ? out(7) : nullptr);
  if (q.jobs == 0) return;
  for (const auto& a : keep) enc.set_input_array(a);
  for (int k : {2, 3, 4, 5, 7})
    if (outputs[k].size()) enc.set_output_array(outputs[k]);
  if (const char* err = cuda::scan_sum_launch(q, dev, &l)) fail(kOp, err);
  launch(enc, l, dim3(l.grid, unsigned(q.jobs)), q);
}

}  // namespace flashsnn

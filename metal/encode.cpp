// metal/encode.h: launch plans to MLX's Metal command encoder.
#include "encode.h"

#include <cstdint>
#include <string>

#include "mlx/backend/metal/device.h"

#include "../src/ops/buffers.h"
#include "../src/ops/common.h"

namespace flashsnn::metal {

// Encodes the plans in order. Scratch buffers are float32 arrays from
// flashsnn's allocator, kept alive until the command buffer completes
// (add_temporary); each is bound as an output where a dispatch writes it and
// as an input where a later one reads it, so that MLX's encoder orders the
// two dispatches (it inserts a barrier when an input is a previous output).
void encode_plans(const char* op, const PlanSet& set, const EmbeddedSource& src,
                  const mx::Stream& s, const std::vector<mx::array>& inputs,
                  std::vector<mx::array>& outputs) {
  if (set.plans.empty()) return;
  auto& d = mx::metal::device(s.device);
  auto* lib = d.get_library(src.library, [&src] { return std::string(src.source); });
  auto& enc = mx::metal::get_command_encoder(s);
  std::vector<mx::array> scratch;
  for (int64_t n : set.scratch) {
    if (n > INT32_MAX) fail(op, "scratch buffer over 2^31 floats");
    scratch.emplace_back(mx::Shape{int(n)}, mx::float32, nullptr, std::vector<mx::array>{});
    alloc_output(scratch.back(), s);
  }
  std::vector<bool> written(scratch.size(), false);
  for (const auto& plan : set.plans) {
    mx::metal::MTLFCList constants;
    for (const auto& c : plan.constants) {
      constants.emplace_back(c.data(), c.is_bool ? MTL::DataType::DataTypeBool : MTL::DataType::DataTypeInt,
                             NS::UInteger(c.index));
    }
    auto* kernel = d.get_kernel(plan.kernel, lib, plan.pipeline, constants);
    if (plan.group > kernel->maxTotalThreadsPerThreadgroup()) {
      fail(op, "the GPU runs at most " + std::to_string(kernel->maxTotalThreadsPerThreadgroup()) +
                    " threads per threadgroup of " + plan.kernel + ", which needs " +
                    std::to_string(plan.group));
    }
    enc.set_compute_pipeline_state(kernel);
    std::vector<int> now_written;
    for (const auto& b : plan.bindings) {
      switch (b.kind) {
        case Binding::kInput:
          enc.set_input_array(inputs[b.array], b.index);
          break;
        case Binding::kOutput:
          enc.set_output_array(outputs[b.array], b.index);
          break;
        case Binding::kScratch:
          // The first dispatch that binds a scratch buffer writes it.
          if (written[b.array]) {
            enc.set_input_array(scratch[b.array], b.index);
          } else {
            enc.set_output_array(scratch[b.array], b.index);
            now_written.push_back(b.array);
          }
          break;
        case Binding::kUint:
          enc.set_bytes(b.u, b.index);
          break;
        case Binding::kFloat:
          enc.set_bytes(b.f, b.index);
          break;
        case Binding::kUints:
          enc.set_bytes(b.us.data(), int(b.us.size()), b.index);
          break;
      }
    }
    for (int j : now_written) written[j] = true;
    // The threadgroup memory is the kernel's own (kernel-scope arrays of
    // plan.threadgroup_bytes, within 32 KB): nothing to set here.
    const auto group = plan.group ? plan.group
                                  : threadgroup_size(plan.grid, kernel->maxTotalThreadsPerThreadgroup());
    enc.dispatch_threads(MTL::Size(plan.grid, 1, 1), MTL::Size(group, 1, 1));
  }
  enc.add_temporaries(std::move(scratch));
}

}  // namespace flashsnn::metal

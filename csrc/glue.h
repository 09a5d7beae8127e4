// What every eval_gpu of csrc/ does first (host compiler, MLX's CUDA
// headers): declare the inputs and outputs to MLX's graph encoder, which
// orders graph nodes by them, and give every output memory from flashsnn's
// pool (src/ops/buffers.h).
#pragma once

#include <vector>

#include "mlx/backend/cuda/device.h"

#include "../src/ops/buffers.h"
#include "../src/ops/common.h"

namespace flashsnn {

inline mx::cu::CommandEncoder& prepare(const char* op, mx::Stream s,
                                       const std::vector<mx::array>& inputs,
                                       std::vector<mx::array>& outputs) {
  auto& enc = mx::cu::get_command_encoder(s);
  for (const auto& in : inputs) {
    check_row_contiguous(op, in);
    enc.set_input_array(in);
  }
  for (auto& out : outputs) {
    alloc_output(out, s);
    enc.set_output_array(out);
  }
  return enc;
}

}  // namespace flashsnn

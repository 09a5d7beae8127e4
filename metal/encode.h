// Hands launch plans (metal/launch.h) to MLX's Metal command encoder: the
// one place flashsnn's Metal glue talks to MLX's encoder, for the families
// (one plan) and the selective scan (several dispatches with scratch
// buffers). Compiled only against MLX's Metal build; type-checked on Linux
// against MLX's Metal headers (tests/metal/test_metal_host.py).
#pragma once

#include <vector>

#include "mlx/array.h"
#include "mlx/stream.h"

#include "embedded.h"
#include "launch.h"

namespace flashsnn::metal {

namespace mx = mlx::core;

// Compiles `src` on first use (MLX caches the library by name for the
// process, and each pipeline by plan.pipeline), then encodes set's plans in
// order on stream s. `op` tags errors.
void encode_plans(const char* op, const PlanSet& set, const EmbeddedSource& src,
                  const mx::Stream& s, const std::vector<mx::array>& inputs,
                  std::vector<mx::array>& outputs);

}  // namespace flashsnn::metal

// The CPU forward kernels of every family for bfloat16 inputs (engine.h).
#include "engine.h"

namespace flashsnn::cpu::engine {
FS_CPU_FORWARD(, mlx::core::bfloat16_t)
}  // namespace flashsnn::cpu::engine

// The CPU backward kernels of every family for bfloat16 inputs (engine.h).
#include "engine.h"

namespace flashsnn::cpu::engine {
FS_CPU_BACKWARD(, mlx::core::bfloat16_t)
}  // namespace flashsnn::cpu::engine

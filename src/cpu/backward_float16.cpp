// The CPU backward kernels of every family for float16 inputs (engine.h).
#include "engine.h"

namespace flashsnn::cpu::engine {
FS_CPU_BACKWARD(, mlx::core::float16_t)
}  // namespace flashsnn::cpu::engine

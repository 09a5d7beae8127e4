// The CPU kernels of every family for bfloat16 inputs (engine.h): one
// translation unit per dtype so that the build compiles them in parallel.
#include "engine.h"

namespace flashsnn::cpu::engine {
FS_CPU_KERNELS(, mlx::core::bfloat16_t)
}  // namespace flashsnn::cpu::engine

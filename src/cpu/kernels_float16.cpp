// The CPU kernels of every family for float16 inputs (engine.h): one
// translation unit per dtype so that the build compiles them in parallel.
#include "engine.h"

namespace flashsnn::cpu::engine {
FS_CPU_KERNELS(, mlx::core::float16_t)
}  // namespace flashsnn::cpu::engine

// The CPU kernels of every family for float32 inputs (engine.h): one
// translation unit per dtype so that the build compiles them in parallel.
#include "engine.h"

namespace flashsnn::cpu::engine {
FS_CPU_KERNELS(, float)
}  // namespace flashsnn::cpu::engine

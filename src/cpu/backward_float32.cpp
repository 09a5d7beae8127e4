// The CPU backward kernels of every family for float32 inputs (engine.h).
#include "engine.h"

namespace flashsnn::cpu::engine {
FS_CPU_BACKWARD(, float)
}  // namespace flashsnn::cpu::engine

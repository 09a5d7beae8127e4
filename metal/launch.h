// Launch plans for the Metal kernels: everything a dispatch needs (kernel
// and pipeline names, function constants, buffer bindings, grid) decided in
// plain C++ with no Metal or MLX types. The Metal eval_gpu (metal/<family>.cpp)
// encodes a plan through MLX's command encoder; the Linux emulator
// (tests/metal/emu) runs the same plan over the same kernels compiled for the
// CPU, so only the encoder calls themselves go untested off Apple hardware.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace flashsnn::metal {

// The dtypes of the kernels' T template argument, with the names that end
// kernel names (MLX's own: float32, float16, bfloat16).
enum class Dtype : int { kFloat32 = 0, kFloat16 = 1, kBfloat16 = 2 };

inline const char* dtype_name(Dtype d) {
  switch (d) {
    case Dtype::kFloat32: return "float32";
    case Dtype::kFloat16: return "float16";
    default: return "bfloat16";
  }
}

// A [[function_constant(index)]]: MTL::DataTypeBool reads one byte,
// MTL::DataTypeInt four, so each kind keeps its own storage.
struct FunctionConstant {
  int index;
  bool is_bool;
  bool b;
  int32_t i;

  static FunctionConstant boolean(int index, bool v) {
    return {index, true, v, 0};
  }
  static FunctionConstant integer(int index, int32_t v) {
    return {index, false, false, v};
  }
  const void* data() const {
    return is_bool ? static_cast<const void*>(&b) : static_cast<const void*>(&i);
  }
  int32_t value() const {
    return is_bool ? int32_t(b) : i;
  }
};

// What goes into [[buffer(index)]]: a primitive input or output (by its
// position in the primitive's inputs / outputs), a 32-bit scalar for a
// `constant uint&` / `constant float&` argument, a small array of uints
// for a `constant uint*` one (set_bytes copies it into the command buffer),
// or a float32 scratch buffer of the op's PlanSet (by its position there),
// which one dispatch writes and a later one reads.
struct Binding {
  enum Kind : int { kInput = 0, kOutput = 1, kUint = 2, kFloat = 3, kUints = 4, kScratch = 5 };
  Kind kind;
  int index;
  int array = -1;
  uint32_t u = 0;
  float f = 0.0f;
  std::vector<uint32_t> us = {};

  static Binding input(int index, int array) {
    return {kInput, index, array};
  }
  static Binding output(int index, int array) {
    return {kOutput, index, array};
  }
  static Binding u32(int index, uint32_t v) {
    return {kUint, index, -1, v};
  }
  static Binding f32(int index, float v) {
    return {kFloat, index, -1, 0, v};
  }
  static Binding u32s(int index, std::vector<uint32_t> v) {
    return {kUints, index, -1, 0, 0.0f, std::move(v)};
  }
  static Binding scratch(int index, int buffer) {
    return {kScratch, index, buffer};
  }
};

struct Plan {
  std::string kernel;    // the [[kernel]] function's name in the library
  std::string pipeline;  // kernel + every function-constant value: MLX caches
                         // pipelines by this name, so it must tell them apart
  std::vector<FunctionConstant> constants;
  std::vector<Binding> bindings;
  uint64_t grid = 0;     // threads (1-D); dispatch_threads launches exactly these
  // Threads per threadgroup when the kernel depends on it (threadgroup
  // memory, barriers); 0: threadgroup_size() picks.
  uint32_t group = 0;
  // Bytes of threadgroup memory the kernel declares (kernel-scope arrays,
  // not set by the host): the emulator checks the kernel asks for exactly
  // these, and the plans that Metal's 32 KB per threadgroup holds them.
  uint32_t threadgroup_bytes = 0;
};

// The dispatches of one primitive's eval_gpu, in order, and the float32
// scratch buffers they share (element counts), which live until the command
// buffer completes.
struct PlanSet {
  std::vector<int64_t> scratch;
  std::vector<Plan> plans;
};

// The kernels keep no threadgroup memory and never synchronize, so the group
// size only sets the granularity of scheduling. 256 threads = 8 SIMD groups
// of 32, a usual size for streaming kernels on Apple GPUs; not tuned yet
// (TODO(apple-hw): time 64..1024 on an M-series GPU once one is available).
constexpr uint32_t kThreadsPerGroup = 256;

// Threads per threadgroup for a 1-D grid of `grid` threads, given the
// pipeline's maxTotalThreadsPerThreadgroup. The only place launch sizes are
// chosen.
inline uint32_t threadgroup_size(uint64_t grid, uint64_t max_threads) {
  uint64_t g = kThreadsPerGroup;
  if (max_threads < g) g = max_threads;
  if (grid < g) g = grid;
  return static_cast<uint32_t>(g < 1 ? 1 : g);
}

// Kernel arguments are 32-bit: a grid dimension is a uint and the kernels
// index with uint (offsets into [T, N] are 64-bit).
inline uint32_t checked_u32(const char* op, const char* what, int64_t v) {
  if (v < 1 || v > int64_t(UINT32_MAX)) {
    throw std::invalid_argument(std::string("[") + op + "] " + what + " = " +
                                std::to_string(v) +
                                " is outside what the Metal kernels index (1 .. 2^32-1)");
  }
  return static_cast<uint32_t>(v);
}

}  // namespace flashsnn::metal

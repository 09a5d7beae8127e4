// Declarations only, so that metal/leaky.cpp can be type-checked on Linux
// against MLX's real mlx/backend/metal/device.h (tests/metal/
// test_metal_host.py). Names and signatures follow Apple's metal-cpp for the
// few members MLX's header and flashsnn's glue use; nothing here is defined,
// so nothing built with it can link, let alone run.
#pragma once

#include <cstddef>
#include <cstdint>

namespace NS {
using UInteger = std::uintptr_t;

template <typename T>
class SharedPtr {
 public:
  T* get() const;
  T* operator->() const;
};

class AutoreleasePool;
class Object {};
}  // namespace NS

namespace MTL {

enum DataType : NS::UInteger {
  DataTypeNone = 0,
  DataTypeInt = 29,
  DataTypeBool = 53,
};

struct Size {
  Size(NS::UInteger width, NS::UInteger height, NS::UInteger depth);
  NS::UInteger width, height, depth;
};

class Allocation : public NS::Object {};
class Resource : public Allocation {};
class Buffer : public Resource {};
class ResidencySet : public NS::Object {};
class Fence : public NS::Object {};
class Function : public NS::Object {};
class LinkedFunctions : public NS::Object {};
class Library : public NS::Object {};
class CommandQueue : public NS::Object {};
class CommandBuffer : public NS::Object {};

class ComputePipelineState : public NS::Object {
 public:
  NS::UInteger maxTotalThreadsPerThreadgroup() const;
  NS::UInteger threadExecutionWidth() const;
};

class ComputeCommandEncoder : public NS::Object {
 public:
  void setComputePipelineState(const ComputePipelineState* state);
  void setBytes(const void* bytes, NS::UInteger length, NS::UInteger index);
  void setThreadgroupMemoryLength(NS::UInteger length, NS::UInteger index);
};

class Device : public NS::Object {};

}  // namespace MTL

// Loads and stores of V neighbouring elements (V = 1, or 4 on rows aligned
// for vectors), converted to and from float32; every kernel's memory access
// goes through these. Only nvcc reads this file (FS_FN is __host__ __device__
// there, so tests/cuda also runs it on the CPU).
#pragma once

#include <cstdint>
#include <type_traits>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "../src/step/common.h"

// `#pragma unroll` for the device pass only (g++ -Wall warns on it when nvcc
// hands it the host copy of these functions).
#if defined(__CUDA_ARCH__)
#define FS_UNROLL _Pragma("unroll")
#else
#define FS_UNROLL
#endif

namespace flashsnn::cuda {


FS_FN float to_float(float v) {
  return v;
}
FS_FN float to_float(__half v) {
  return __half2float(v);
}
FS_FN float to_float(__nv_bfloat16 v) {
  return __bfloat162float(v);
}

template <typename T>
FS_FN T from_float(float v);
template <>
FS_FN float from_float<float>(float v) {
  return v;
}
// Round to nearest even, as the CPU kernel's static_cast<T>(float) does.
template <>
FS_FN __half from_float<__half>(float v) {
  return __float2half_rn(v);
}
template <>
FS_FN __nv_bfloat16 from_float<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

// 16-bit values <-> their bit patterns (element 0 in the low half of a word).
template <typename T>
FS_FN float from_bits(unsigned short b) {
  if constexpr (std::is_same_v<T, __half>) {
    __half_raw r;
    r.x = b;
    return to_float(__half(r));
  } else {
    __nv_bfloat16_raw r;
    r.x = b;
    return to_float(__nv_bfloat16(r));
  }
}
template <typename T>
FS_FN unsigned bits(float v) {
  if constexpr (std::is_same_v<T, __half>) {
    __half_raw r = from_float<__half>(v);
    return r.x;
  } else {
    __nv_bfloat16_raw r = from_float<__nv_bfloat16>(v);
    return r.x;
  }
}

// V neighbouring elements as they come from memory. Loads keep this form and
// convert at use, so a batch of 16-bit values holds half the registers.
template <typename T, int V>
struct Packed;
template <typename T>
struct Packed<T, 1> {
  T v;
};
template <>
struct Packed<float, 4> {
  float4 v;
};
template <typename T>
struct Packed<T, 4> {  // 16-bit: 4 values in 8 bytes
  uint2 v;
};

template <typename T, int V>
FS_FN Packed<T, V> load_packed(const T* p) {
  if constexpr (V == 1) {
    return {*p};
  } else if constexpr (sizeof(T) == 4) {
    return {*reinterpret_cast<const float4*>(p)};
  } else {
    return {*reinterpret_cast<const uint2*>(p)};
  }
}

template <typename T, int V>
FS_FN void unpack(const Packed<T, V>& a, float (&o)[V]) {
  static_assert(V == 1 || V == 4, "vectors are 4 neurons");
  if constexpr (V == 1) {
    o[0] = to_float(a.v);
  } else if constexpr (sizeof(T) == 4) {
    o[0] = a.v.x;
    o[1] = a.v.y;
    o[2] = a.v.z;
    o[3] = a.v.w;
  } else {
    o[0] = from_bits<T>(static_cast<unsigned short>(a.v.x & 0xffffu));
    o[1] = from_bits<T>(static_cast<unsigned short>(a.v.x >> 16));
    o[2] = from_bits<T>(static_cast<unsigned short>(a.v.y & 0xffffu));
    o[3] = from_bits<T>(static_cast<unsigned short>(a.v.y >> 16));
  }
}

template <typename T, int V>
FS_FN void load(const T* p, float (&o)[V]) {
  unpack<T, V>(load_packed<T, V>(p), o);
}

template <typename T, int V>
FS_FN void store(T* p, const float (&v)[V]) {
  if constexpr (V == 1) {
    *p = from_float<T>(v[0]);
  } else if constexpr (sizeof(T) == 4) {
    *reinterpret_cast<float4*>(p) = make_float4(v[0], v[1], v[2], v[3]);
  } else {
    uint2 w;
    w.x = bits<T>(v[0]) | (bits<T>(v[1]) << 16);
    w.y = bits<T>(v[2]) | (bits<T>(v[3]) << 16);
    *reinterpret_cast<uint2*>(p) = w;
  }
}

// p[(i + k) % P] for the V neurons from i.
template <int V>
FS_FN void load_suffix(const float* p, int64_t P, int64_t i, float (&o)[V]) {
  FS_UNROLL
  for (int k = 0; k < V; ++k) o[k] = p[(i + k) % P];
}

}  // namespace flashsnn::cuda

// Helpers shared by every family's op file: tagged errors, dtype checks.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

#include "mlx/array.h"
#include "mlx/ops.h"
#include "mlx/utils.h"

namespace flashsnn {

namespace mx = mlx::core;
using Shape_t = mx::Shape;

// Every error names its op: "[<op>] <what> must ...".
[[noreturn]] inline void fail(const char* op, const std::string& msg) {
  throw std::invalid_argument(std::string("[") + op + "] " + msg);
}

inline std::string shape_str(const Shape_t& s) {
  std::ostringstream os;
  os << "(";
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  if (s.size() == 1) os << ",";
  os << ")";
  return os.str();
}

inline void check_float_dtype(const char* op, const char* what, mx::Dtype dt) {
  if (dt != mx::float32 && dt != mx::float16 && dt != mx::bfloat16) {
    std::ostringstream os;
    os << what << " must be float32, float16 or bfloat16; got " << dt;
    fail(op, os.str());
  }
}

template <typename T>
struct TypeTag {
  using type = T;
};

// Calls f(TypeTag<T>{}) for the three dtypes the kernels are built for. Not
// MLX's dispatch_float_types: its float64 case instantiated every family's
// CPU kernels a fourth time for a dtype the ops refuse, 152 of the 372 s of
// the 2-core CPU build (ninja -j2, 2026-12-03).
template <typename F>
void dispatch_kernel_dtype(const char* op, mx::Dtype dt, F&& f) {
  if (dt == mx::float32) return f(TypeTag<float>{});
  if (dt == mx::float16) return f(TypeTag<mx::float16_t>{});
  if (dt == mx::bfloat16) return f(TypeTag<mx::bfloat16_t>{});
  check_float_dtype(op, "internal: kernel dtype", dt);
}

// An input as the kernels read it: row-contiguous. An array already
// evaluated that way is passed as is; anything else (unevaluated, strided,
// broadcast) goes through mx::contiguous, which copies only when it must.
// Skipping the node where it is not needed spares a graph node per input
// and call (the CPU stream schedules each one).
inline mx::array kernel_input(const mx::array& a, mx::Stream s) {
  if (a.is_available() && a.flags().row_contiguous) return a;
  return mx::contiguous(a, false, s);
}

// Inputs reach the kernels row-contiguous (kernel_input); this guards the
// assumption every eval makes.
inline void check_row_contiguous(const char* op, const mx::array& a) {
  if (!a.flags().row_contiguous)
    fail(op, "internal: kernel input is not row-contiguous");
}

}  // namespace flashsnn

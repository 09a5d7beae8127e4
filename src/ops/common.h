// Helpers shared by every family's op file: tagged errors, dtype checks.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

#include "mlx/array.h"
#include "mlx/utils.h"

namespace flashsnn {

namespace mx = mlx::core;
using Shape_t = mx::Shape;

// Every error names its op: "[leaky] mem must have shape ...".
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

// Inputs reach the kernels row-contiguous (the op wraps them in
// mx::contiguous); this guards the assumption every eval makes.
inline void check_row_contiguous(const char* op, const mx::array& a) {
  if (!a.flags().row_contiguous)
    fail(op, "internal: kernel input is not row-contiguous");
}

}  // namespace flashsnn

// Runtime options -> compile-time constants, in one place for every backend
// that instantiates templates from C++ (the CPU loops, the CUDA launchers).
#pragma once

#include <type_traits>

#include "../step/common.h"

namespace flashsnn {

template <int V>
using int_c = std::integral_constant<int, V>;

// f(std::bool_constant<flag>{}) for a runtime flag.
template <typename F>
void dispatch_bool(bool flag, F&& f) {
  if (flag) {
    f(std::true_type{});
  } else {
    f(std::false_type{});
  }
}

// f(int_c<reset>{}, int_c<mode>{}) for the runtime reset and mode.
template <typename F>
void dispatch_reset_mode(int reset, int mode, F&& f) {
  auto with_mode = [&](auto r) {
    switch (mode) {
      case fs::kDelayed: return f(r, int_c<fs::kDelayed>{});
      case fs::kImmediate: return f(r, int_c<fs::kImmediate>{});
      default: return f(r, int_c<fs::kSameStep>{});
    }
  };
  switch (reset) {
    case fs::kSubtract: return with_mode(int_c<fs::kSubtract>{});
    case fs::kZero: return with_mode(int_c<fs::kZero>{});
    default: return with_mode(int_c<fs::kNone>{});
  }
}

}  // namespace flashsnn

// Runtime options -> compile-time constants, in one place for every backend
// that instantiates templates from C++ (the CPU loops, the CUDA launchers).
#pragma once

#include <type_traits>

#include "../step/families.h"

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

// f(F{}) for the family trait of runtime id `family` (src/step/families.h).
// Returns false for an unknown id (the op has rejected those already).
template <typename Fn>
bool dispatch_family(int family, Fn&& f) {
  switch (family) {
#define FS_FAMILY_CASE(ID, NAME, F) \
  case ID:                          \
    f(fs::F{});                     \
    return true;
    FS_FOR_EACH_FAMILY(FS_FAMILY_CASE)
#undef FS_FAMILY_CASE
    default:
      return false;
  }
}

// dispatch_reset_mode for family F, calling f only for the resets and modes
// F has (kernels are instantiated for those alone); false for the others.
template <class F, typename Fn>
bool dispatch_family_options(int reset, int mode, Fn&& f) {
  bool ok = false;
  dispatch_reset_mode(reset, mode, [&](auto r, auto m) {
    if constexpr (fs::has_reset<F>(decltype(r)::value) && fs::has_mode<F>(decltype(m)::value)) {
      f(r, m);
      ok = true;
    }
  });
  return ok;
}

}  // namespace flashsnn

// The surrogate's slope loops of every family's CPU backward (engine.h,
// slopes()), compiled once here for every family, reset, mode and
// CARRIED: one vectorized loop per surrogate id, since the surrogate's
// switch is hoisted out of the loop (its id a template argument, so that
// the switch folds away; libm-free: common.h's exp).
#include "engine.h"

namespace flashsnn::cpu::engine {

namespace {

template <class F, int RESET, int MODE, bool CARRIED, int ID>
FS_ROW void slope_row(fs::Surrogate g, const float* const* sv, const float* const* svp,
                      const float* __restrict m0, const float* __restrict cs,
                      float* __restrict sg, int64_t n) {
  const fs::Surrogate id{ID, g.a, g.b};
  FS_IVDEP
  for (int64_t k = 0; k < n; ++k) {
    const auto c = consts_at<F>(cs, k);
    const fs::Fire f = F::template fire<RESET, MODE>(
        saves_at<F, MODE>(sv, k), prev_at<F, RESET, MODE, CARRIED>(svp, m0, c, k), c);
    sg[k] = fs::surrogate_grad(id, f.v, f.s);
  }
}

}  // namespace

template <class F, int RESET, int MODE, bool CARRIED>
FS_CPU_CLONES void slopes(fs::Surrogate g, const float* const* sv, const float* const* svp,
                          const float* m0, const float* cs, float* sg, int64_t n) {
  switch (g.id) {
#define FS_SLOPE_CASE(ID, NAME) \
  case fs::ID:                  \
    return slope_row<F, RESET, MODE, CARRIED, fs::ID>(g, sv, svp, m0, cs, sg, n);
    FS_FOR_EACH_SURROGATE(FS_SLOPE_CASE)
#undef FS_SLOPE_CASE
    default:
      fail("fused", "internal: surrogate id without a CPU case");
  }
}

// Every instance a backward calls (backward_range picks CARRIED = false
// only where fire() reads the entering states). Implicit instantiations are
// emitted only where something still refers to them after optimization: a
// volatile store of each address keeps them.
void* volatile slopes_sink;

void instantiate_slopes() {
  for (int id = 0; id < fs::kNumFamilies; ++id) {
    dispatch_family(id, [](auto fam) {
      using F = decltype(fam);
      for (int r = 0; r < 3; ++r) {
        for (int m = 0; m < 3; ++m) {
          dispatch_family_options<F>(r, m, [](auto rc, auto mc) {
            constexpr int R = decltype(rc)::value, M = decltype(mc)::value;
            slopes_sink = reinterpret_cast<void*>(&slopes<F, R, M, true>);
            if constexpr (F::fire_reads_prev(M)) {
              slopes_sink = reinterpret_cast<void*>(&slopes<F, R, M, false>);
            }
          });
        }
      }
    });
  }
}

}  // namespace flashsnn::cpu::engine

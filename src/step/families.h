// The registration list: every fused neuron family, in id order. Adding a
// family is its step header (src/step/<f>.h, the trait of family.h) plus one
// line here and one entry in python/flashsnn/ops/_table.py; every backend,
// primitive, binding and generated test picks it up from these two lists.
#pragma once

#include "alif.h"
#include "alpha.h"
#include "izhikevich.h"
#include "lapicque.h"
#include "leaky.h"
#include "rleaky.h"
#include "rsynaptic.h"
#include "synaptic.h"

// X(id, python_name, Trait)
#define FS_FOR_EACH_FAMILY(X) \
  X(0, leaky, Leaky)          \
  X(1, synaptic, Synaptic)    \
  X(2, alpha, Alpha)          \
  X(3, lapicque, Lapicque)            \
  X(4, rleaky, RLeaky)                \
  X(5, rsynaptic, RSynaptic)          \
  X(6, alif, ALIF)                    \
  X(7, izhikevich, Izhikevich)

namespace fs {

enum FamilyId : int {
#define FS_FAMILY_ID(ID, NAME, F) kFamily_##NAME = ID,
  FS_FOR_EACH_FAMILY(FS_FAMILY_ID)
#undef FS_FAMILY_ID
  kNumFamilies
};

#define FS_FAMILY_LIMITS(ID, NAME, F)                                      \
  static_assert(F::kStates <= kMaxStates && F::kParams <= kMaxParams &&    \
                    F::kSaves <= kMaxSaves && F::kConsts >= 1 &&           \
                    F::kOutputStates >= 1 && F::kOutputStates <= F::kStates, \
                #F " exceeds the generic kernels' fixed tables (family.h)");
FS_FOR_EACH_FAMILY(FS_FAMILY_LIMITS)
#undef FS_FAMILY_LIMITS

}  // namespace fs

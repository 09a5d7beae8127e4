// Alpha (snnTorch's `Alpha`): an excitatory and an inhibitory current whose
// sum, scaled by tau, is the membrane. One step as a family trait
// (src/step/family.h); equations in python/flashsnn/ops/README.md, the
// independent pure-MLX reference in python/flashsnn/reference/alpha.py.
//
//   R_t = H(U_{t-1} - θ)                 strict >, detached
//   E'_t = α E_{t-1} + X_t,   N'_t = β N_{t-1} - X_t,   U'_t = τ (E'_t + N'_t)
//   subtract: E_t = E'_t - θ R_t, N_t = N'_t - N'_t R_t, U_t = U'_t + N_{t-1} R_t
//   zero:     E_t, N_t, U_t = E'_t, N'_t, U'_t each minus itself times R_t
//   none:     E_t, N_t, U_t = E'_t, N'_t, U'_t
//   S_t = H(U_t - θ)
//
// τ = log α / (log β - log α) + 1 arrives as a fourth parameter computed by
// the op in MLX, with the reference's own expression: the same bits as the
// reference (a kernel-side logf differs from MLX's log by an ulp at times),
// and MLX carries τ's gradient on to α and β.
#pragma once

#include "family.h"

namespace fs {

// The modes Alpha has, as X(NAME, F, mode_name, fs::Mode) entries: kModes
// below is made from it, and code that instantiates per mode with the
// preprocessor (the Metal kernels, whose names carry the mode) expands it.
#define FS_MODES_alpha(X, NAME, F) X(NAME, F, delayed, kDelayed)
#define FS_RESETS_alpha FS_RESETS_ALL

struct Alpha : SavesItsStates<3> {
  static FS_CONST int kStates = 3;   // syn_exc, syn_inh, mem
  static FS_CONST int kOutputStates = kStates;
  static FS_CONST int kParams = 4;   // alpha, beta, threshold, tau
  static FS_CONST int kConsts = 4;   // alpha, beta clamped to [0, 1]; threshold; tau
  // The states themselves. A zero reset wipes E'_t and N'_t, so the step's
  // derivatives are recomputed from the states before it and X_t.
  static FS_CONST int kSaves = 3;
  FS_NAMES("syn_exc syn_inh mem", "alpha beta threshold tau")
  static FS_CONST bool kBackwardX = true;
  static FS_CONST unsigned kResets = FS_RESETS_alpha(FS_RESET_BIT, , , , ) 0u;
  static FS_CONST unsigned kModes = FS_MODES_alpha(FS_MODE_BIT, , ) 0u;

  static FS_FN constexpr int saves(int) { return 3; }
  static FS_FN constexpr bool fire_reads_prev(int) { return false; }

  static FS_FN Vec<4> prepare(Vec<4> raw) {
    Vec<4> c = raw;
    c.v[0] = clamp_unit(raw.v[0]);
    c.v[1] = clamp_unit(raw.v[1]);
    return c;
  }

  template <int RESET, int MODE>
  static FS_FN Fwd<Alpha> forward(Vec<3> prev, float x, Vec<4> c) {
    const float th = c.v[2];
    const float r = prev.v[2] > th ? 1.0f : 0.0f;
    float e = c.v[0] * prev.v[0] + x;
    float n = c.v[1] * prev.v[1] - x;
    float u = c.v[3] * (e + n);
    if (RESET == kSubtract) {
      e = e - th * r;
      n = n - n * r;
      u = u - (-prev.v[1]) * r;
    } else if (RESET == kZero) {
      e = e - e * r;
      n = n - n * r;
      u = u - u * r;
    }
    Fwd<Alpha> o;
    o.s.v[0] = e;
    o.s.v[1] = n;
    o.s.v[2] = u;
    o.save = o.s;
    o.spk = u > th ? 1.0f : 0.0f;
    return o;
  }

  template <int RESET, int MODE>
  static FS_FN Fire fire(Vec<3> save, Vec<3>, Vec<4> c) {
    return fire_above(save.v[2], c.v[2]);
  }

  template <int RESET, int MODE>
  static FS_FN Grad<Alpha> backward(Vec<3> save, Vec<3> prev, float x, Vec<4> c, float dspk,
                                    Vec<3> dstate, float sg, bool) {
    const float th = c.v[2], tau = c.v[3];
    const float r = prev.v[2] > th ? 1.0f : 0.0f;
    const float e1 = c.v[0] * prev.v[0] + x;
    const float n1 = c.v[1] * prev.v[1] - x;
    // S_t = H(U_t - θ)
    const float gu = dstate.v[2] + dspk * sg;
    float dth = -dspk * sg;
    float ge1 = dstate.v[0], gn1 = dstate.v[1], gu1 = gu, gn_prev = 0.0f;
    if (RESET == kSubtract) {
      dth -= dstate.v[0] * r;
      gn1 = dstate.v[1] * (1.0f - r);
      gn_prev = gu * r;  // U_t = U'_t + N_{t-1} R_t
    } else if (RESET == kZero) {
      ge1 = dstate.v[0] * (1.0f - r);
      gn1 = dstate.v[1] * (1.0f - r);
      gu1 = gu * (1.0f - r);
    }
    // U'_t = τ (E'_t + N'_t)
    ge1 += gu1 * tau;
    gn1 += gu1 * tau;
    Grad<Alpha> g;
    g.dprev.v[0] = ge1 * c.v[0];
    g.dprev.v[1] = gn1 * c.v[1] + gn_prev;
    g.dprev.v[2] = 0.0f;  // U_{t-1} reaches the step only through the detached R_t
    g.dx = ge1 - gn1;
    g.dc.v[0] = ge1 * prev.v[0];
    g.dc.v[1] = gn1 * prev.v[1];
    g.dc.v[2] = dth;
    g.dc.v[3] = gu1 * (e1 + n1);
    (void)save;
    return g;
  }

  static FS_FN Vec<4> finish(Vec<4> raw, Vec<4> dc) {
    Vec<4> d = dc;
    d.v[0] = dc.v[0] * clamp_unit_mask(raw.v[0]);
    d.v[1] = dc.v[1] * clamp_unit_mask(raw.v[1]);
    return d;
  }
};

}  // namespace fs

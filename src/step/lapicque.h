// Lapicque (snnTorch's `Lapicque`): an RC circuit stepped by forward Euler.
// One step as a family trait (src/step/family.h); equations in
// python/flashsnn/ops/README.md, the independent pure-MLX reference in
// python/flashsnn/reference/lapicque.py.
//
//   R_t = H(U_{t-1} - θ)                 strict >, detached
//   B_t = X_t R (1 / (R C)) Δt + (1 - Δt / (R C)) U_{t-1}     (snnTorch's grouping)
//   U_t = B_t - R_t θ | B_t - B_t R_t | B_t                   (subtract | zero | none)
//   S_t = H(U_t - θ)
#pragma once

#include "family.h"

namespace fs {

// The modes Lapicque has, as X(NAME, F, mode_name, fs::Mode) entries: kModes
// below is made from it, and code that instantiates per mode with the
// preprocessor (the Metal kernels, whose names carry the mode) expands it.
#define FS_MODES_lapicque(X, NAME, F) X(NAME, F, delayed, kDelayed)
#define FS_RESETS_lapicque FS_RESETS_ALL

struct Lapicque : SavesItsStates<1> {
  static FS_CONST int kStates = 1;   // mem
  static FS_CONST int kOutputStates = kStates;
  static FS_CONST int kParams = 4;   // R, C, time_step, threshold
  static FS_CONST int kConsts = 5;   // R, g = 1/(R C), time_step, k = 1 - Δt/(R C), threshold
  // U_t. The zero reset wipes B_t, so the step's derivatives are
  // recomputed from U_{t-1} and X_t.
  static FS_CONST int kSaves = 1;
  FS_NAMES("mem", "R C time_step threshold")
  static FS_CONST bool kBackwardX = true;
  static FS_CONST unsigned kResets = FS_RESETS_lapicque(FS_RESET_BIT, , , , ) 0u;
  static FS_CONST unsigned kModes = FS_MODES_lapicque(FS_MODE_BIT, , ) 0u;

  static FS_FN constexpr int saves(int) { return 1; }
  static FS_FN constexpr bool fire_reads_prev(int) { return false; }

  static FS_FN Vec<5> prepare(Vec<4> raw) {
    const float rc = raw.v[0] * raw.v[1];
    Vec<5> c;
    c.v[0] = raw.v[0];
    c.v[1] = 1.0f / rc;
    c.v[2] = raw.v[2];
    c.v[3] = 1.0f - raw.v[2] / rc;
    c.v[4] = raw.v[3];
    return c;
  }

  template <int RESET, int MODE>
  static FS_FN Fwd<Lapicque> forward(Vec<1> prev, float x, Vec<5> c) {
    const float th = c.v[4];
    const float r = prev.v[0] > th ? 1.0f : 0.0f;
    const float b = x * c.v[0] * c.v[1] * c.v[2] + c.v[3] * prev.v[0];
    float u = b;
    if (RESET == kSubtract) u = b - r * th;
    if (RESET == kZero) u = b - b * r;
    Fwd<Lapicque> o;
    o.s.v[0] = u;
    o.save.v[0] = u;
    o.spk = u > th ? 1.0f : 0.0f;
    return o;
  }

  template <int RESET, int MODE>
  static FS_FN Fire fire(Vec<1> save, Vec<1>, Vec<5> c) {
    return fire_above(save.v[0], c.v[4]);
  }

  template <int RESET, int MODE>
  static FS_FN Grad<Lapicque> backward(Vec<1>, Vec<1> prev, float x, Vec<5> c, float dspk,
                                       Vec<1> dstate, float sg, bool) {
    const float th = c.v[4];
    const float r = prev.v[0] > th ? 1.0f : 0.0f;
    const float gu = dstate.v[0] + dspk * sg;
    float dth = -dspk * sg;
    float gb = gu;
    if (RESET == kSubtract) dth -= gu * r;
    if (RESET == kZero) gb = gu * (1.0f - r);
    // B = ((x R) g) Δt + k U_{t-1}
    Grad<Lapicque> o;
    o.dprev.v[0] = gb * c.v[3];
    o.dx = gb * c.v[2] * c.v[1] * c.v[0];
    o.dc.v[0] = gb * c.v[2] * c.v[1] * x;
    o.dc.v[1] = gb * c.v[2] * (x * c.v[0]);
    o.dc.v[2] = gb * ((x * c.v[0]) * c.v[1]);
    o.dc.v[3] = gb * prev.v[0];
    o.dc.v[4] = dth;
    return o;
  }

  // g = 1/(R C) and k = 1 - Δt/(R C): dg/dR = -g/R, dg/dC = -g/C,
  // dk/dR = Δt g/R, dk/dC = Δt g/C, dk/dΔt = -g.
  static FS_FN Vec<4> finish(Vec<4> raw, Vec<5> dc) {
    const float R = raw.v[0], C = raw.v[1], dt = raw.v[2];
    const float g = 1.0f / (R * C);
    Vec<4> d;
    d.v[0] = dc.v[0] + (dc.v[3] * dt - dc.v[1]) * g / R;
    d.v[1] = (dc.v[3] * dt - dc.v[1]) * g / C;
    d.v[2] = dc.v[2] - dc.v[3] * g;
    d.v[3] = dc.v[4];
    return d;
  }
};

}  // namespace fs

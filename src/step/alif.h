// ALIF: a Leaky membrane (snnTorch's convention: delayed, detached reset)
// whose threshold rises by b for each unit of a decaying trace A of the
// neuron's own spikes. One step as a family trait (src/step/family.h);
// equations in python/flashsnn/ops/README.md, the independent pure-MLX
// reference in python/flashsnn/reference/alif.py.
//
//   P_t = S_{t-1} = H(U_{t-1} - θ - b A_{t-1})   with its surrogate gradient
//   R_t = P_t                                    detached
//   A_t = ρ A_{t-1} + P_t
//   U_t = (β U_{t-1} + X_t) - R_t θ | β ((1 - R_t) U_{t-1}) + X_t | β U_{t-1} + X_t
//   S_t = H((U_t - θ) - b A_t)                   strict >
//
// The reference recomputes P_t from (U_{t-1}, A_{t-1}); here the previous
// spike is a carried state that is not an output (kOutputStates = 2): the
// same value (the same expression on the same floats), and its cotangent
// from step t+1 (dL/dA_{t+1}, through P_{t+1}) joins dL/dS_t before the
// surrogate, which is the reference's gradient through P. The op computes
// the initial spike P_1 from the initial states in MLX, with the surrogate,
// so that MLX carries its gradient to them, θ and b.
#pragma once

#include "family.h"

namespace fs {

#define FS_MODES_alif(X, NAME, F) X(NAME, F, delayed, kDelayed)
#define FS_RESETS_alif FS_RESETS_ALL

struct ALIF {
  static FS_CONST int kStates = 3;        // mem, adapt, spk (carried, not an output)
  static FS_CONST int kOutputStates = 2;
  static FS_CONST int kParams = 4;        // beta, threshold, rho, b
  static FS_CONST int kConsts = 4;        // beta and rho clamped to [0, 1], threshold, b
  static FS_CONST int kSaves = 2;         // U_t, A_t; S_t is recomputed from them
  FS_NAMES("mem adapt spk", "beta threshold rho b")
  static FS_CONST bool kBackwardX = false;
  static FS_CONST unsigned kResets = FS_RESETS_alif(FS_RESET_BIT, , , , ) 0u;
  static FS_CONST unsigned kModes = FS_MODES_alif(FS_MODE_BIT, , ) 0u;

  static FS_FN constexpr int saves(int) { return 2; }
  static FS_FN constexpr bool fire_reads_prev(int) { return false; }

  static FS_FN Vec<4> prepare(Vec<4> raw) {
    Vec<4> c;
    c.v[0] = clamp_unit(raw.v[0]);
    c.v[1] = raw.v[1];
    c.v[2] = clamp_unit(raw.v[2]);
    c.v[3] = raw.v[3];
    return c;
  }

  // The spike of a step from its membrane and trace: the reference's
  // mem - threshold - b * adapt, in that order.
  static FS_FN Fire spike(float u, float a, Vec<4> c) {
    Fire f;
    f.v = (u - c.v[1]) - c.v[3] * a;
    f.s = f.v > 0.0f ? 1.0f : 0.0f;
    return f;
  }

  template <int RESET, int MODE>
  static FS_FN Fwd<ALIF> forward(Vec<3> prev, float x, Vec<4> c) {
    const float r = prev.v[2];
    const float a = c.v[2] * prev.v[1] + r;
    float u;
    if (RESET == kSubtract) {
      u = (c.v[0] * prev.v[0] + x) - r * c.v[1];
    } else if (RESET == kZero) {
      u = c.v[0] * ((1.0f - r) * prev.v[0]) + x;
    } else {
      u = c.v[0] * prev.v[0] + x;
    }
    const Fire f = spike(u, a, c);
    Fwd<ALIF> o;
    o.s.v[0] = u;
    o.s.v[1] = a;
    o.s.v[2] = f.s;
    o.save.v[0] = u;
    o.save.v[1] = a;
    o.spk = f.s;
    return o;
  }

  template <int RESET, int MODE>
  static FS_FN Vec<3> carried(Vec<2> save, Vec<4> c) {
    Vec<3> p;
    p.v[0] = save.v[0];
    p.v[1] = save.v[1];
    p.v[2] = spike(save.v[0], save.v[1], c).s;
    return p;
  }

  template <int RESET, int MODE>
  static FS_FN Fire fire(Vec<2> save, Vec<3>, Vec<4> c) {
    return spike(save.v[0], save.v[1], c);
  }

  template <int RESET, int MODE>
  static FS_FN Grad<ALIF> backward(Vec<2> save, Vec<3> prev, float, Vec<4> c, float dspk,
                                   Vec<3> dstate, float sg, bool) {
    const float r = prev.v[2];
    // dL/dS_t (the output's and, through P_{t+1}, the next step's trace's),
    // through the surrogate to v = (U_t - θ) - b A_t.
    const float gv = (dspk + dstate.v[2]) * sg;
    const float gu = dstate.v[0] + gv;
    const float ga = dstate.v[1] - gv * c.v[3];
    Grad<ALIF> g;
    // A_t = ρ A_{t-1} + P_t: P_t is S_{t-1}, whose cotangent is ga.
    g.dprev.v[1] = ga * c.v[2];
    g.dprev.v[2] = ga;
    g.dx = gu;
    float dth = -gv;
    if (RESET == kSubtract) {
      g.dprev.v[0] = gu * c.v[0];
      g.dc.v[0] = gu * prev.v[0];
      dth -= gu * r;
    } else if (RESET == kZero) {
      g.dprev.v[0] = gu * c.v[0] * (1.0f - r);
      g.dc.v[0] = gu * ((1.0f - r) * prev.v[0]);
    } else {
      g.dprev.v[0] = gu * c.v[0];
      g.dc.v[0] = gu * prev.v[0];
    }
    g.dc.v[1] = dth;
    g.dc.v[2] = ga * prev.v[1];
    g.dc.v[3] = -gv * save.v[1];
    return g;
  }

  static FS_FN Vec<4> finish(Vec<4> raw, Vec<4> dc) {
    Vec<4> d;
    d.v[0] = dc.v[0] * clamp_unit_mask(raw.v[0]);
    d.v[1] = dc.v[1];
    d.v[2] = dc.v[2] * clamp_unit_mask(raw.v[2]);
    d.v[3] = dc.v[3];
    return d;
  }
};

}  // namespace fs

// Izhikevich (2003): a quadratic membrane v and a recovery variable u, reset
// to c and bumped by d in the step after a spike. One step as a family trait
// (src/step/family.h); equations in python/flashsnn/ops/README.md, the
// independent pure-MLX reference in python/flashsnn/reference/izhikevich.py.
//
//   R_t  = H(v_{t-1} - θ)                >= as the paper, detached
//   v'   = c where R_t, else v_{t-1};    u' = u_{t-1} + R_t d
//   f(v) = ((0.04 v) v + 5 v) + 140 - u' + X_t     (the reference's order)
//   v_h  = v'  + (Δt/2) f(v')
//   v_t  = v_h + (Δt/2) f(v_h)
//   u_t  = u'  + (Δt a)(b v_t - u')
//   S_t  = H(v_t - θ)                    >=
//
// It has one reset (to c), instantiated under the id kSubtract. The forward
// saves v_t and u_t; the backward recovers v', u', v_h from the states
// entering the step and x (kBackwardX).
#pragma once

#include "family.h"

namespace fs {

#define FS_MODES_izhikevich(X, NAME, F) X(NAME, F, delayed, kDelayed)
#define FS_RESETS_izhikevich(X, NAME, F, MN, M) X(NAME, F, subtract, kSubtract, MN, M)

struct Izhikevich : SavesItsStates<2> {
  static FS_CONST int kStates = 2;        // mem (v), u
  static FS_CONST int kOutputStates = 2;
  static FS_CONST int kParams = 6;        // a, b, c, d, threshold, time_step
  static FS_CONST int kConsts = 6;        // Δt a, b, c, d, threshold, Δt / 2
  static FS_CONST int kSaves = 2;         // v_t, u_t
  FS_NAMES("mem u", "a b c d threshold time_step")
  static FS_CONST bool kBackwardX = true;
  static FS_CONST unsigned kResets = FS_RESETS_izhikevich(FS_RESET_BIT, , , , ) 0u;
  static FS_CONST unsigned kModes = FS_MODES_izhikevich(FS_MODE_BIT, , ) 0u;

  static FS_FN constexpr int saves(int) { return 2; }
  static FS_FN constexpr bool fire_reads_prev(int) { return false; }

  static FS_FN Vec<6> prepare(Vec<6> raw) {
    Vec<6> c;
    c.v[0] = raw.v[5] * raw.v[0];  // the reference's dt * a
    c.v[1] = raw.v[1];
    c.v[2] = raw.v[2];
    c.v[3] = raw.v[3];
    c.v[4] = raw.v[4];
    c.v[5] = raw.v[5] * 0.5f;      // the reference's dt * 0.5
    return c;
  }

  static FS_FN float drive(float v, float u, float x) {
    return (((0.04f * v) * v + 5.0f * v) + 140.0f - u) + x;
  }

  static FS_FN Fire spike(float v, float th) {
    Fire f;
    f.v = v - th;
    f.s = v >= th ? 1.0f : 0.0f;
    return f;
  }

  // The states after the reset: v' and u'.
  static FS_FN Vec<2> after_reset(Vec<2> prev, Vec<6> c) {
    const float r = prev.v[0] >= c.v[4] ? 1.0f : 0.0f;
    Vec<2> o;
    o.v[0] = r > 0.0f ? c.v[2] : prev.v[0];
    o.v[1] = prev.v[1] + r * c.v[3];
    return o;
  }

  template <int RESET, int MODE>
  static FS_FN Fwd<Izhikevich> forward(Vec<2> prev, float x, Vec<6> c) {
    const Vec<2> p = after_reset(prev, c);
    const float vh = p.v[0] + c.v[5] * drive(p.v[0], p.v[1], x);
    const float v = vh + c.v[5] * drive(vh, p.v[1], x);
    const float u = p.v[1] + c.v[0] * (c.v[1] * v - p.v[1]);
    Fwd<Izhikevich> o;
    o.s.v[0] = v;
    o.s.v[1] = u;
    o.save = o.s;
    o.spk = spike(v, c.v[4]).s;
    return o;
  }

  template <int RESET, int MODE>
  static FS_FN Fire fire(Vec<2> save, Vec<2>, Vec<6> c) {
    return spike(save.v[0], c.v[4]);
  }

  template <int RESET, int MODE>
  static FS_FN Grad<Izhikevich> backward(Vec<2> save, Vec<2> prev, float x, Vec<6> c,
                                         float dspk, Vec<2> dstate, float sg, bool) {
    const float r = prev.v[0] >= c.v[4] ? 1.0f : 0.0f;
    const Vec<2> p = after_reset(prev, c);
    const float half = c.v[5];
    const float f1 = drive(p.v[0], p.v[1], x);
    const float vh = p.v[0] + half * f1;
    const float f2 = drive(vh, p.v[1], x);
    const float v = save.v[0];
    const float gsv = dspk * sg;
    const float gut = dstate.v[1];
    // u_t = u' + k (b v_t - u'), k = Δt a
    const float gv = dstate.v[0] + gsv + gut * c.v[0] * c.v[1];
    float gu1 = gut * (1.0f - c.v[0]);
    // v_t = v_h + half f(v_h, u'),  f' = 0.08 v + 5
    const float gvh = gv * (1.0f + half * (0.08f * vh + 5.0f));
    // v_h = v' + half f(v', u')
    const float gv1 = gvh * (1.0f + half * (0.08f * p.v[0] + 5.0f));
    gu1 -= (gv + gvh) * half;
    Grad<Izhikevich> g;
    g.dx = (gv + gvh) * half;
    g.dprev.v[0] = gv1 * (1.0f - r);
    g.dprev.v[1] = gu1;
    g.dc.v[0] = gut * (c.v[1] * v - p.v[1]);
    g.dc.v[1] = gut * c.v[0] * v;
    g.dc.v[2] = gv1 * r;
    g.dc.v[3] = gu1 * r;
    g.dc.v[4] = -gsv;
    g.dc.v[5] = gv * f2 + gvh * f1;
    return g;
  }

  // dL/d(a, Δt) from dL/d(Δt a) and dL/d(Δt / 2).
  static FS_FN Vec<6> finish(Vec<6> raw, Vec<6> dc) {
    Vec<6> d;
    d.v[0] = dc.v[0] * raw.v[5];
    d.v[1] = dc.v[1];
    d.v[2] = dc.v[2];
    d.v[3] = dc.v[3];
    d.v[4] = dc.v[4];
    d.v[5] = dc.v[0] * raw.v[0] + dc.v[5] * 0.5f;
    return d;
  }
};

}  // namespace fs

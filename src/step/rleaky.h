// RLeaky (snnTorch's `RLeaky` with one-to-one feedback): a Leaky membrane
// that also receives its own previous spike through V. One step, forward and
// backward, as a family trait (src/step/family.h); the equations are in
// python/flashsnn/ops/README.md, and the pure-MLX reference
// (python/flashsnn/reference/rleaky.py) is written independently.
//
//   R_t = H(U_{t-1} - θ)                 strict >, detached
//   B_t = β U_{t-1} + X_t + V S_{t-1}    (snnTorch's grouping: (βU + X) + S V)
//   h_t = B_t - R_t θ | B_t - B_t R_t | B_t      (subtract | zero | none)
//   S_t = H(h_t - θ)                     fed back with its surrogate gradient
//   U_t = h_t, or with reset_delay=False (kImmediate) h_t - (S_t - R_t) θ
//         (subtract) | h_t - (S_t - R_t) h_t (zero)
//
// The fed-back spike is a state that is not an output (kOutputStates = 1):
// its history is the spike output, its initial value the op's `spk`, and its
// cotangent from step t+1 (V times dL/dB_{t+1}) joins dL/dS_t before the
// surrogate, which is how the gradient reaches U_t through the feedback.
#pragma once

#include "family.h"

namespace fs {

#define FS_MODES_rleaky(X, NAME, F) X(NAME, F, delayed, kDelayed) X(NAME, F, immediate, kImmediate)
#define FS_RESETS_rleaky FS_RESETS_ALL

struct RLeaky {
  static FS_CONST int kStates = 2;        // mem, spk (fed back, not an output)
  static FS_CONST int kOutputStates = 1;
  static FS_CONST int kParams = 3;        // beta, V, threshold
  static FS_CONST int kConsts = 3;        // beta clamped to [0, 1], V, threshold
  // h_t, and for kImmediate U_t too (there U_t != h_t and the spike, h_t > θ,
  // is not recoverable from U_t).
  static FS_CONST int kSaves = 2;
  FS_NAMES("mem spk", "beta V threshold")
  static FS_CONST bool kBackwardX = false;
  static FS_CONST unsigned kResets = FS_RESETS_rleaky(FS_RESET_BIT, , , , ) 0u;
  static FS_CONST unsigned kModes = FS_MODES_rleaky(FS_MODE_BIT, , ) 0u;

  static FS_FN constexpr int saves(int mode) { return mode == kImmediate ? 2 : 1; }
  static FS_FN constexpr bool fire_reads_prev(int) { return false; }

  static FS_FN Vec<3> prepare(Vec<3> raw) {
    Vec<3> c;
    c.v[0] = clamp_unit(raw.v[0]);
    c.v[1] = raw.v[1];
    c.v[2] = raw.v[2];
    return c;
  }

  template <int RESET, int MODE>
  static FS_FN Fwd<RLeaky> forward(Vec<2> prev, float x, Vec<3> c) {
    const float th = c.v[2];
    const float r = prev.v[0] > th ? 1.0f : 0.0f;
    const float b = (c.v[0] * prev.v[0] + x) + prev.v[1] * c.v[1];
    const float h = delayed_reset_charge<RESET>(b, r, th);
    const float s = h > th ? 1.0f : 0.0f;
    Fwd<RLeaky> o;
    o.s.v[0] = immediate_reset<RESET, MODE>(h, s, r, th);
    o.s.v[1] = s;
    o.save.v[0] = h;
    o.save.v[1] = o.s.v[0];
    o.spk = s;
    return o;
  }

  template <int RESET, int MODE>
  static FS_FN Vec<2> carried(Vec<2> save, Vec<3> c) {
    Vec<2> p;
    p.v[0] = MODE == kImmediate ? save.v[1] : save.v[0];
    p.v[1] = save.v[0] > c.v[2] ? 1.0f : 0.0f;
    return p;
  }

  template <int RESET, int MODE>
  static FS_FN Fire fire(Vec<2> save, Vec<2>, Vec<3> c) {
    return fire_above(save.v[0], c.v[2]);
  }

  template <int RESET, int MODE>
  static FS_FN Grad<RLeaky> backward(Vec<2> save, Vec<2> prev, float, Vec<3> c, float dspk,
                                     Vec<2> dstate, float sg, bool) {
    const float th = c.v[2];
    const float r = prev.v[0] > th ? 1.0f : 0.0f;
    const float h = save.v[0];
    const float s = h > th ? 1.0f : 0.0f;
    const float gu = dstate.v[0];
    const ResetGrad p = immediate_reset_grad<RESET, MODE>(h, s, r, th);
    // dL/dS_t: the output's, the next step's feedback, the same-step reset's.
    const float gs = dspk + dstate.v[1] + gu * p.ds;
    const float gh = gu * p.dh + gs * sg;
    float dth = gu * p.dth - gs * sg;
    const ChargeGrad cg = delayed_reset_charge_grad<RESET>(gh, r, dth);
    const float gb = cg.db;
    dth = cg.dth;
    Grad<RLeaky> g;
    g.dprev.v[0] = gb * c.v[0];
    g.dprev.v[1] = gb * c.v[1];
    g.dx = gb;
    g.dc.v[0] = gb * prev.v[0];
    g.dc.v[1] = gb * prev.v[1];
    g.dc.v[2] = dth;
    return g;
  }

  static FS_FN Vec<3> finish(Vec<3> raw, Vec<3> dc) {
    Vec<3> d;
    d.v[0] = dc.v[0] * clamp_unit_mask(raw.v[0]);
    d.v[1] = dc.v[1];
    d.v[2] = dc.v[2];
    return d;
  }
};

}  // namespace fs

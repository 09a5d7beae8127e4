// Synaptic (snnTorch's `Synaptic`): a synaptic current I that decays by
// alpha and feeds a Leaky membrane. One step, forward and backward, as a
// family trait (src/step/family.h); the equations are in
// python/flashsnn/ops/README.md, and the pure-MLX reference
// (python/flashsnn/reference/synaptic.py) is written independently.
//
//   R_t = H(U_{t-1} - θ)                 strict >, detached
//   I_t = α I_{t-1} + X_t
//   B_t = β U_{t-1} + I_t
//   h_t = B_t - R_t θ | B_t - B_t R_t | B_t      (subtract | zero | none)
//   S_t = H(h_t - θ)
//   U_t = h_t, or with reset_delay=False (kImmediate) h_t - (S_t - R_t) θ
//         (subtract) | h_t - (S_t - R_t) h_t (zero)
#pragma once

#include "family.h"

namespace fs {

// The modes Synaptic has, as X(NAME, F, mode_name, fs::Mode) entries: kModes
// below is made from it, and code that instantiates per mode with the
// preprocessor (the Metal kernels, whose names carry the mode) expands it.
#define FS_MODES_synaptic(X, NAME, F) X(NAME, F, delayed, kDelayed) X(NAME, F, immediate, kImmediate)
#define FS_RESETS_synaptic FS_RESETS_ALL

struct Synaptic : SavesItsStates<2> {
  static FS_CONST int kStates = 2;   // syn, mem
  static FS_CONST int kOutputStates = kStates;
  static FS_CONST int kParams = 3;   // alpha, beta, threshold
  static FS_CONST int kConsts = 3;   // alpha and beta clamped to [0, 1], threshold
  // I_t and U_t: the states themselves. h_t (different from U_t only for
  // kImmediate) is recomputed from U_{t-1} and I_t, in the forward's order.
  static FS_CONST int kSaves = 2;
  FS_NAMES("syn mem", "alpha beta threshold")
  static FS_CONST bool kBackwardX = false;
  static FS_CONST unsigned kResets = FS_RESETS_synaptic(FS_RESET_BIT, , , , ) 0u;
  static FS_CONST unsigned kModes = FS_MODES_synaptic(FS_MODE_BIT, , ) 0u;

  static FS_FN constexpr int saves(int) { return 2; }
  static FS_FN constexpr bool fire_reads_prev(int mode) { return mode == kImmediate; }

  static FS_FN Vec<3> prepare(Vec<3> raw) {
    Vec<3> c;
    c.v[0] = clamp_unit(raw.v[0]);
    c.v[1] = clamp_unit(raw.v[1]);
    c.v[2] = raw.v[2];
    return c;
  }

  static FS_FN float delayed_reset(float u_prev, float th) {
    return u_prev > th ? 1.0f : 0.0f;
  }

  // h_t from the membrane before the step and the step's current.
  template <int RESET>
  static FS_FN float charge(float u_prev, float syn, float r, Vec<3> c) {
    return delayed_reset_charge<RESET>(c.v[1] * u_prev + syn, r, c.v[2]);
  }

  template <int RESET, int MODE>
  static FS_FN Fwd<Synaptic> forward(Vec<2> prev, float x, Vec<3> c) {
    const float r = delayed_reset(prev.v[1], c.v[2]);
    const float syn = c.v[0] * prev.v[0] + x;
    const float h = charge<RESET>(prev.v[1], syn, r, c);
    const float s = h > c.v[2] ? 1.0f : 0.0f;
    Fwd<Synaptic> o;
    o.s.v[0] = syn;
    o.s.v[1] = immediate_reset<RESET, MODE>(h, s, r, c.v[2]);
    o.save = o.s;
    o.spk = s;
    return o;
  }

  template <int RESET, int MODE>
  static FS_FN float pre_reset(Vec<2> save, Vec<2> prev, Vec<3> c) {
    if (MODE == kDelayed) return save.v[1];
    return charge<RESET>(prev.v[1], save.v[0], delayed_reset(prev.v[1], c.v[2]), c);
  }

  template <int RESET, int MODE>
  static FS_FN Fire fire(Vec<2> save, Vec<2> prev, Vec<3> c) {
    return fire_above(pre_reset<RESET, MODE>(save, prev, c), c.v[2]);
  }

  template <int RESET, int MODE>
  static FS_FN Grad<Synaptic> backward(Vec<2> save, Vec<2> prev, float, Vec<3> c, float dspk,
                                       Vec<2> dstate, float sg, bool detach) {
    return backward_from_h<RESET, MODE>(pre_reset<RESET, MODE>(save, prev, c), prev, c, dspk,
                                        dstate, sg, detach);
  }

  // The step's backward given h_t, the membrane before any same-step reset
  // (RSynaptic saves it; Synaptic recomputes it). dx is dL/dI_t.
  template <int RESET, int MODE>
  static FS_FN Grad<Synaptic> backward_from_h(float h, Vec<2> prev, Vec<3> c, float dspk,
                                              Vec<2> dstate, float sg, bool) {
    const float th = c.v[2];
    const float r = delayed_reset(prev.v[1], th);
    const float s = h > th ? 1.0f : 0.0f;
    const float gu = dstate.v[1];
    // U_t = immediate_reset(h, S, R): its partials (snnTorch keeps S's
    // surrogate gradient in the same-step reset; no detach option here).
    const ResetGrad p = immediate_reset_grad<RESET, MODE>(h, s, r, th);
    const float gs = dspk + gu * p.ds;
    const float gh = gu * p.dh + gs * sg;
    Grad<Synaptic> g;
    float dth = gu * p.dth - gs * sg;
    // h = charge(B): dh/dB, and the subtract reset's threshold term.
    const ChargeGrad cg = delayed_reset_charge_grad<RESET>(gh, r, dth);
    const float gb = cg.db;
    dth = cg.dth;
    // B = beta U_{t-1} + I_t;  I_t = alpha I_{t-1} + X_t
    const float gsyn = dstate.v[0] + gb;
    g.dprev.v[1] = gb * c.v[1];
    g.dprev.v[0] = gsyn * c.v[0];
    g.dx = gsyn;
    g.dc.v[0] = gsyn * prev.v[0];
    g.dc.v[1] = gb * prev.v[1];
    g.dc.v[2] = dth;
    return g;
  }

  static FS_FN Vec<3> finish(Vec<3> raw, Vec<3> dc) {
    Vec<3> d;
    d.v[0] = dc.v[0] * clamp_unit_mask(raw.v[0]);
    d.v[1] = dc.v[1] * clamp_unit_mask(raw.v[1]);
    d.v[2] = dc.v[2];
    return d;
  }
};

}  // namespace fs

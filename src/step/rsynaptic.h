// RSynaptic (snnTorch's `RSynaptic` with one-to-one feedback): Synaptic whose
// synaptic current also receives the neuron's previous spike through V. One
// step as a family trait (src/step/family.h), on Synaptic's charge and reset
// (synaptic.h); equations in python/flashsnn/ops/README.md, the independent
// pure-MLX reference in python/flashsnn/reference/rsynaptic.py.
//
//   R_t = H(U_{t-1} - θ)                 strict >, detached
//   I_t = α I_{t-1} + X_t + V S_{t-1}    (snnTorch's grouping: (αI + X) + S V)
//   h_t, S_t, U_t as Synaptic's from U_{t-1}, I_t and R_t
//
// The fed-back spike is a carried state, not an output (kOutputStates = 2),
// as in RLeaky (rleaky.h).
#pragma once

#include "synaptic.h"

namespace fs {

#define FS_MODES_rsynaptic(X, NAME, F) X(NAME, F, delayed, kDelayed) X(NAME, F, immediate, kImmediate)
#define FS_RESETS_rsynaptic FS_RESETS_ALL

struct RSynaptic {
  static FS_CONST int kStates = 3;        // syn, mem, spk (fed back, not an output)
  static FS_CONST int kOutputStates = 2;
  static FS_CONST int kParams = 4;        // alpha, beta, V, threshold
  static FS_CONST int kConsts = 4;        // alpha, beta clamped to [0, 1], V, threshold
  // I_t and U_t, and for kImmediate h_t (the spike h_t > θ; U_t has been
  // reset in the same step there).
  static FS_CONST int kSaves = 3;
  FS_NAMES("syn mem spk", "alpha beta V threshold")
  static FS_CONST bool kBackwardX = false;
  static FS_CONST unsigned kResets = FS_RESETS_rsynaptic(FS_RESET_BIT, , , , ) 0u;
  static FS_CONST unsigned kModes = FS_MODES_rsynaptic(FS_MODE_BIT, , ) 0u;

  static FS_FN constexpr int saves(int mode) { return mode == kImmediate ? 3 : 2; }
  static FS_FN constexpr bool fire_reads_prev(int) { return false; }

  // Synaptic's constants (alpha, beta, threshold) out of these.
  static FS_FN Vec<3> synaptic(Vec<4> c) {
    Vec<3> s;
    s.v[0] = c.v[0];
    s.v[1] = c.v[1];
    s.v[2] = c.v[3];
    return s;
  }

  static FS_FN Vec<4> prepare(Vec<4> raw) {
    Vec<4> c;
    c.v[0] = clamp_unit(raw.v[0]);
    c.v[1] = clamp_unit(raw.v[1]);
    c.v[2] = raw.v[2];
    c.v[3] = raw.v[3];
    return c;
  }

  // h_t: the membrane before any same-step reset, from what step t saved.
  template <int MODE>
  static FS_FN float pre_reset(Vec<3> save) {
    return MODE == kImmediate ? save.v[2] : save.v[1];
  }

  template <int RESET, int MODE>
  static FS_FN Fwd<RSynaptic> forward(Vec<3> prev, float x, Vec<4> c) {
    const float th = c.v[3];
    const float r = Synaptic::delayed_reset(prev.v[1], th);
    const float syn = (c.v[0] * prev.v[0] + x) + prev.v[2] * c.v[2];
    const float h = Synaptic::charge<RESET>(prev.v[1], syn, r, synaptic(c));
    const float s = h > th ? 1.0f : 0.0f;
    Fwd<RSynaptic> o;
    o.s.v[0] = syn;
    o.s.v[1] = immediate_reset<RESET, MODE>(h, s, r, th);
    o.s.v[2] = s;
    o.save.v[0] = syn;
    o.save.v[1] = o.s.v[1];
    o.save.v[2] = h;
    o.spk = s;
    return o;
  }

  template <int RESET, int MODE>
  static FS_FN Vec<3> carried(Vec<3> save, Vec<4> c) {
    Vec<3> p;
    p.v[0] = save.v[0];
    p.v[1] = save.v[1];
    p.v[2] = pre_reset<MODE>(save) > c.v[3] ? 1.0f : 0.0f;
    return p;
  }

  template <int RESET, int MODE>
  static FS_FN Fire fire(Vec<3> save, Vec<3>, Vec<4> c) {
    return fire_above(pre_reset<MODE>(save), c.v[3]);
  }

  template <int RESET, int MODE>
  static FS_FN Grad<RSynaptic> backward(Vec<3> save, Vec<3> prev, float, Vec<4> c, float dspk,
                                        Vec<3> dstate, float sg, bool detach) {
    // Synaptic's step with the next step's feedback added to the spike's
    // cotangent; then I_t = (α I + X) + S V carries dL/dI_t to S_{t-1} and V.
    Vec<2> sprev, sd;
    sprev.v[0] = prev.v[0];
    sprev.v[1] = prev.v[1];
    sd.v[0] = dstate.v[0];
    sd.v[1] = dstate.v[1];
    const Grad<Synaptic> sg2 = Synaptic::backward_from_h<RESET, MODE>(
        pre_reset<MODE>(save), sprev, synaptic(c), dspk + dstate.v[2], sd, sg, detach);
    Grad<RSynaptic> g;
    const float gsyn = sg2.dx;
    g.dprev.v[0] = sg2.dprev.v[0];
    g.dprev.v[1] = sg2.dprev.v[1];
    g.dprev.v[2] = gsyn * c.v[2];
    g.dx = gsyn;
    g.dc.v[0] = sg2.dc.v[0];
    g.dc.v[1] = sg2.dc.v[1];
    g.dc.v[2] = gsyn * prev.v[2];
    g.dc.v[3] = sg2.dc.v[2];
    return g;
  }

  static FS_FN Vec<4> finish(Vec<4> raw, Vec<4> dc) {
    Vec<4> d;
    d.v[0] = dc.v[0] * clamp_unit_mask(raw.v[0]);
    d.v[1] = dc.v[1] * clamp_unit_mask(raw.v[1]);
    d.v[2] = dc.v[2];
    d.v[3] = dc.v[3];
    return d;
  }
};

}  // namespace fs

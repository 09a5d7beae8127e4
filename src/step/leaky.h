// Leaky integrate-and-fire: one time step, forward and backward.
// The equations and their derivation are in python/flashsnn/ops/README.md.
// Every Leaky kernel (CPU loop, CUDA, Metal) only loads, converts, calls these
// functions and stores; nothing else in the project computes a Leaky step,
// except the pure-MLX reference, which is written independently on purpose.
#pragma once

#include "family.h"

namespace fs {

struct LeakyStep {
  float h;  // membrane after charging, before any same-step reset (saved)
  float s;  // spike, 0 or 1
  float u;  // membrane carried to the next step (what snnTorch returns)
};

struct LeakyGrad {
  float du_prev;  // dL/d u_{t-1}
  float dx;       // dL/d x_t
  float dbeta;    // contribution to dL/d beta (clamped beta; mask applied later)
  float dth;      // contribution to dL/d threshold
};

template <int MODE>
FS_FN float leaky_fire(float h, float th) {
  if (MODE == kSameStep) return h >= th ? 1.0f : 0.0f;
  return h > th ? 1.0f : 0.0f;
}

// The delayed reset of snnTorch: computed from the previous membrane with a
// strict >, detached. The same-step convention has none.
template <int MODE>
FS_FN float leaky_delayed_reset(float u_prev, float th) {
  if (MODE == kSameStep) return 0.0f;
  return u_prev > th ? 1.0f : 0.0f;
}

// Same-step reset applied after firing (kImmediate, kSameStep); d = s - r.
template <int RESET, int MODE>
FS_FN float leaky_post(float h, float s, float r, float th) {
  if (MODE == kDelayed || RESET == kNone) return h;
  float d = s - r;
  if (RESET == kSubtract) return h - d * th;
  return h - d * h;  // kZero
}

// b is beta already clamped to [0, 1].
template <int RESET, int MODE>
FS_FN LeakyStep leaky_forward(float u_prev, float x, float b, float th) {
  float r = leaky_delayed_reset<MODE>(u_prev, th);
  float h;
  if (MODE != kSameStep && RESET == kSubtract) {
    h = (b * u_prev + x) - r * th;  // snnTorch: beta*mem + x - reset*threshold
  } else if (MODE != kSameStep && RESET == kZero) {
    h = b * ((1.0f - r) * u_prev) + x;  // snnTorch: mem=(1-reset)*mem first
  } else {
    h = b * u_prev + x;
  }
  LeakyStep o;
  o.h = h;
  o.s = leaky_fire<MODE>(h, th);
  o.u = leaky_post<RESET, MODE>(h, o.s, r, th);
  return o;
}

// The membrane carried out of a step, recomputed from the saved h. Exact for
// kDelayed and kSameStep (r = 0); kImmediate needs the delayed reset r, which
// depends on the step before, so its kernels save u as well.
template <int RESET, int MODE>
FS_FN float leaky_carried(float h, float th) {
  return leaky_post<RESET, MODE>(h, leaky_fire<MODE>(h, th), 0.0f, th);
}

// d spike_t / d h_t, recomputed from the saved h exactly as the forward fired.
template <int MODE>
FS_FN float leaky_slope(Surrogate g, float h, float th) {
  return surrogate_grad(g, h - th, leaky_fire<MODE>(h, th));
}

// One reverse step. h: saved membrane of step t; u_prev: membrane carried
// into step t; ds: dL/d spike_t; du: dL/d u_t (from step t+1 and from a
// membrane output at t); sg: leaky_slope at step t (a separate function so
// that the CPU loop can hoist the surrogate switch out of its inner loop).
// detach: no gradient through the same-step reset.
template <int RESET, int MODE>
FS_FN LeakyGrad leaky_backward(float h, float u_prev, float b, float th,
                               float ds, float du, float sg, bool detach) {
  float r = leaky_delayed_reset<MODE>(u_prev, th);
  float s = leaky_fire<MODE>(h, th);

  // u = post(h, s(h, th), r, th): partials of the same-step reset.
  float dpost_dh = 1.0f, dpost_ds = 0.0f, dpost_dth = 0.0f;
  if (MODE != kDelayed && RESET != kNone) {
    float d = s - r;
    if (RESET == kSubtract) {
      dpost_ds = -th;
      dpost_dth = -d;
    } else {
      dpost_dh = 1.0f - d;
      dpost_ds = -h;
    }
    if (detach) dpost_ds = 0.0f;
  }
  float ds_total = ds + du * dpost_ds;
  float dh = du * dpost_dh + ds_total * sg;

  LeakyGrad o;
  o.dth = du * dpost_dth - ds_total * sg;
  o.dx = dh;
  if (MODE != kSameStep && RESET == kSubtract) {
    o.du_prev = dh * b;
    o.dbeta = dh * u_prev;
    o.dth -= dh * r;
  } else if (MODE != kSameStep && RESET == kZero) {
    float keep = 1.0f - r;
    o.du_prev = dh * (b * keep);
    o.dbeta = dh * (keep * u_prev);
  } else {
    o.du_prev = dh * b;
    o.dbeta = dh * u_prev;
  }
  return o;
}

}  // namespace fs

namespace fs {

// The family trait (src/step/family.h). Saves h, the membrane before any
// same-step reset: it determines the step's derivatives, and the membrane
// carried out of the step is post(h) (leaky_carried), so the backward reads
// one [T, N] array. kImmediate's carried membrane also depends on the
// delayed reset of the step before, so that mode saves u as well.
// The modes Leaky has, as X(NAME, F, mode_name, fs::Mode) entries: kModes
// below is made from it, and code that instantiates per mode with the
// preprocessor (the Metal kernels, whose names carry the mode) expands it.
#define FS_MODES_leaky(X, NAME, F) \
  X(NAME, F, delayed, kDelayed) X(NAME, F, immediate, kImmediate) X(NAME, F, same_step, kSameStep)
#define FS_RESETS_leaky FS_RESETS_ALL

struct Leaky {
  static FS_CONST int kStates = 1;   // u
  static FS_CONST int kOutputStates = kStates;
  static FS_CONST int kParams = 2;   // beta, threshold
  static FS_CONST int kConsts = 2;   // beta clamped to [0, 1], threshold
  static FS_CONST int kSaves = 2;    // h, and u for kImmediate
  FS_NAMES("mem", "beta threshold")
  static FS_CONST bool kBackwardX = false;
  static FS_CONST unsigned kResets = FS_RESETS_leaky(FS_RESET_BIT, , , , ) 0u;
  static FS_CONST unsigned kModes = FS_MODES_leaky(FS_MODE_BIT, , ) 0u;

  static FS_FN constexpr int saves(int mode) { return mode == kImmediate ? 2 : 1; }
  static FS_FN constexpr bool fire_reads_prev(int) { return false; }

  static FS_FN Vec<2> prepare(Vec<2> raw) {
    Vec<2> c;
    c.v[0] = clamp_unit(raw.v[0]);
    c.v[1] = raw.v[1];
    return c;
  }

  template <int RESET, int MODE>
  static FS_FN Fwd<Leaky> forward(Vec<1> prev, float x, Vec<2> c) {
    const LeakyStep r = leaky_forward<RESET, MODE>(prev.v[0], x, c.v[0], c.v[1]);
    Fwd<Leaky> o;
    o.s.v[0] = r.u;
    o.save.v[0] = r.h;
    o.save.v[1] = r.u;
    o.spk = r.s;
    return o;
  }

  template <int RESET, int MODE>
  static FS_FN Vec<1> carried(Vec<2> save, Vec<2> c) {
    Vec<1> s;
    s.v[0] = MODE == kImmediate ? save.v[1] : leaky_carried<RESET, MODE>(save.v[0], c.v[1]);
    return s;
  }

  template <int RESET, int MODE>
  static FS_FN Fire fire(Vec<2> save, Vec<1>, Vec<2> c) {
    Fire f;
    f.v = save.v[0] - c.v[1];
    f.s = leaky_fire<MODE>(save.v[0], c.v[1]);
    return f;
  }

  template <int RESET, int MODE>
  static FS_FN Grad<Leaky> backward(Vec<2> save, Vec<1> prev, float, Vec<2> c, float dspk,
                                    Vec<1> dstate, float sg, bool detach) {
    const LeakyGrad r = leaky_backward<RESET, MODE>(save.v[0], prev.v[0], c.v[0], c.v[1], dspk,
                                                    dstate.v[0], sg, detach);
    Grad<Leaky> g;
    g.dprev.v[0] = r.du_prev;
    g.dx = r.dx;
    g.dc.v[0] = r.dbeta;
    g.dc.v[1] = r.dth;
    return g;
  }

  static FS_FN Vec<2> finish(Vec<2> raw, Vec<2> dc) {
    Vec<2> d;
    d.v[0] = dc.v[0] * clamp_unit_mask(raw.v[0]);
    d.v[1] = dc.v[1];
    return d;
  }
};

}  // namespace fs

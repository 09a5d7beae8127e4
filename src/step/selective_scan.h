// Mamba-1's selective scan: the math of one position for one (channel,
// state) pair, forward and backward, for every backend's kernel. The
// equations and the derivation of the backward are in
// python/flashsnn/ops/README.md ("Selective scan"); the pure-MLX reference
// (flashsnn/reference/selective_scan.py) is written independently.
//
//   dt  = softplus(delta + bias)        (or delta + bias)
//   a   = exp(dt * A[d, n])             the decay of state n of channel d
//   h_l = a * h_{l-1} + (dt * u) * B_l[n]
//   y_l = sum_n h_l C_l[n] + D[d] u     out = y * silu(z)   (z given)
#pragma once

#include "common.h"

#if defined(__METAL_VERSION__)
#define FS_LOG1PF(v) metal::precise::log(1.0f + (v))
#elif defined(__CUDACC__)
#define FS_LOG1PF(v) log1pf(v)
#else
#define FS_LOG1PF(v) ::fs::scan::log1p_unit(v)
#endif

// Two namespace blocks, not `fs::scan`: MSL 3 is C++14 (tests/metal's lint).
namespace fs {
namespace scan {

#if !defined(__METAL_VERSION__) && !defined(__CUDACC__)
// log(1 + e) for e in [0, 1], the only range softplus asks for, in a form
// GCC vectorizes (libm's log1pf is a call: 44 ns per softplus, 18 of the 63
// ms of a CPU forward at B=32 L=100 D=256 N=16). With s = e / (2 + e) in
// [0, 1/3], log(1 + e) = 2 atanh(s) = 2 (s + s^3/3 + s^5/5 + ...); the
// terms to s^15 leave under 5e-9 of the sum.
FS_FN float log1p_unit(float e) {
  const float s = e / (2.0f + e), q = s * s;
  float p = 1.0f / 15.0f;
  p = p * q + 1.0f / 13.0f;
  p = p * q + 1.0f / 11.0f;
  p = p * q + 1.0f / 9.0f;
  p = p * q + 1.0f / 7.0f;
  p = p * q + 1.0f / 5.0f;
  p = p * q + 1.0f / 3.0f;
  p = p * q + 1.0f;
  return 2.0f * (s * p);
}
#endif

// log(1 + e^x) without overflow: max(x, 0) + log1p(e^-|x|), as the reference.
FS_FN float softplus(float x) {
  return (x > 0.0f ? x : 0.0f) + FS_LOG1PF(FS_EXPF(-FS_FABSF(x)));
}

// d softplus / dx, and the SiLU gate's sigmoid.
FS_FN float sigmoid(float x) {
  return 1.0f / (1.0f + FS_EXPF(-x));
}

// The step size of channel d at one position, from delta (plus the bias).
FS_FN float step_size(float delta, float bias, bool use_softplus) {
  const float v = delta + bias;
  return use_softplus ? softplus(v) : v;
}

// One state's update; dtu = dt * u of the position.
FS_FN float state_update(float h_prev, float a, float dtu, float b) {
  return a * h_prev + dtu * b;
}

// The output gate: y * silu(z) = y * z * sigmoid(z).
FS_FN float gate(float y, float z) {
  return y * (z * sigmoid(z));
}

struct GateGrad {
  float dy;  // dL/dy
  float dz;  // dL/dz
};

// d(y * z * s(z)) = dout * z s(z) dy + dout * y * s(z) (1 + z (1 - s(z))) dz
FS_FN GateGrad gate_grad(float dout, float y, float z) {
  const float s = sigmoid(z);
  GateGrad g;
  g.dy = dout * (z * s);
  g.dz = dout * y * (s * (1.0f + z * (1.0f - s)));
  return g;
}

// Reverse step of one (channel, state) pair at one position. gh: dL/dh_l in
// full (what flows back from h_{l+1} plus C_l[n] dL/dy_l). Returns the
// gradient carried to h_{l-1}; adds this pair's terms to the position's
// dL/d dt and dL/du (summed over n by the caller's loop) and returns those
// of A[d, n] and B_l[n] through dA, dB.
struct StateGrad {
  float dh_prev;  // dL/dh_{l-1}
  float ddt;      // this state's share of dL/d dt
  float du;       // this state's share of dL/du
  float dA;       // dL/dA[d, n] at this position
  float dB;       // dL/dB_l[n] from this channel
};

FS_FN StateGrad state_grad(float gh, float h_prev, float a, float A, float b, float dt, float u) {
  StateGrad g;
  const float gha = gh * a;
  g.dh_prev = gha;
  // d a / d dt = A a;  d a / d A = dt a;  d(dt u B)/d dt = u B
  g.ddt = gha * A * h_prev + gh * (u * b);
  g.dA = gha * dt * h_prev;
  g.dB = gh * (dt * u);
  g.du = gh * (dt * b);
  return g;
}

}  // namespace scan
}  // namespace fs

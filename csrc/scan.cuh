// The selective scan on CUDA: the kernels' per-thread code, and the
// warp-level sums it needs. Per-position math: src/step/selective_scan.h,
// shared with the CPU and Metal kernels; work split and loop shapes:
// scan.h; the design and its measurements: docs/cuda.md. Only nvcc reads
// this file (FS_FN is __host__ __device__ there); the cross-lane operations
// go through a `Sync` template argument (the block's barrier, an xor shuffle
// and a shuffle from a lane), so tests/cuda/host_scan.cu runs this same code
// on the CPU with one OS thread per GPU thread.
//
// A channel's N states are spread over P lanes of a warp, SPL per lane (B D
// P threads; P and SPL are template arguments, so the lane sums unroll).
//  forward   each lane updates its states and adds its share of y = sum_n
//            h C, loading a group of positions' inputs first (ScanAhead). A
//            span's per-channel work (ScanSpan: 16 positions at P = 16) is
//            shared out one position to a lane (ScanOwn): the owner alone
//            loads u, delta, z, computes the step size, finishes and stores
//            y; the others get dt and dt u by a shuffle, and a group's y sums
//            reach the owners as one scatter (scan_lane_scatter).
//  backward  one block per (batch row, kScanBlock / P channels). Per chunk,
//            last first: each lane recomputes its states from the forward's
//            checkpoint into a scratch [Bt, D, K+1, N] (its own column: no
//            barrier), then walks the chunk backwards, per span the gate's
//            gradient first (y again), then the states'. dt's and u's
//            gradients are scattered lane sums; the per-step dB_l, dC_l sum
//            over the warp's channels by butterfly, over the block's warps in
//            shared memory once per round of 256 / (P SPL) positions, in a
//            fixed order, and a last kernel (scan_sum) adds the blocks'
//            partials (and dA, dD, dbias over batch rows): no atomics.
// Spans inside a chunk (and a round) take a path without bounds checks
// (`kDense`: constant offsets, nothing predicated) when the whole block
// allows (every thread has a channel, N = P SPL, B and C vary per step);
// the rest runs the same code with the checks, in spans of one group.
#pragma once

#include <cstdint>

#include "../src/step/selective_scan.h"
#include "memory.cuh"
#include "scan.h"

namespace flashsnn::cuda {

template <typename T>
FS_FN float scan_load(const void* p, int64_t i) {
  return to_float(static_cast<const T*>(p)[i]);
}
template <typename T>
FS_FN void scan_store(void* p, int64_t i, float v) {
  static_cast<T*>(p)[i] = from_float<T>(v);
}

// The groups of a span one after the other (`#pragma unroll 1`, device pass
// only): unrolled, nvcc moved later groups' loads ahead of earlier groups'
// work, and the backward spilled at P = 16 (52 bytes at 128 registers).
// Spans of several groups own one position per lane (own[0]: a constant
// index).
#if defined(__CUDA_ARCH__)
#define FS_SCAN_GROUPS _Pragma("unroll 1")
#else
#define FS_SCAN_GROUPS
#endif

// sum of v over the lanes whose index differs from this one's only in the
// bits LO .. HI/2 (powers of two), as an xor butterfly: every lane of a
// group ends with the same bits (a + b == b + a at every level).
template <int LO, int HI, class Sync>
FS_FN float scan_lane_sum(Sync& sync, float v) {
FS_UNROLL
  for (int k = 0; k < scan_log2(HI) - scan_log2(LO); ++k) v += sync.shfl_xor(v, LO << k);
  return v;
}

// The sums over a channel's P lanes of v[0 .. G), this lane's shares of a
// group's G values, scattered to their owners: lane j ends with the sum of
// value j + k P in v[k] (k < G / P), and with P > G lanes j,
// j + G, j + 2G ... with value j's. Each addition is one of G butterflies'
// (scan_lane_sum over 1 .. P/2): the same pairs of lanes, 1, 2, 4 ... apart
// in that order, so the same bits; but at each level a lane sends its
// partner the half of its values the partner keeps: at most G - 1 shuffles
// (then log2(P / G) when P > G), two selects each, where G butterflies take
// G log2(P): 15 against 64 for 16 positions over 16 lanes. (LV: the level
// to do next; callers pass 0.)
template <int LV, int P, int G, class Sync>
FS_FN void scan_lane_scatter(Sync& sync, float (&v)[G], int j) {
  constexpr int M = P < G ? P : G;
  if constexpr ((1 << LV) < M) {
    const bool odd = (j >> LV) & 1;  // this lane keeps the odd value of each pair
FS_UNROLL
    for (int k = 0; k < (G >> (LV + 1)); ++k) {
      const float e = v[2 * k], o = v[2 * k + 1];
      const float keep = odd ? o : e, send = odd ? e : o;
      v[k] = keep + sync.shfl_xor(send, 1 << LV);
    }
    scan_lane_scatter<LV + 1, P, G>(sync, v, j);
  } else if constexpr (P > G) {
    v[0] = scan_lane_sum<G, P>(sync, v[0]);
  }
}
// exp(dt A) for the states' decays, dt A <= 0 in Mamba's use: on the GPU
// MUFU's ex2 of dt (A log2(e)), within 2 ulp (the scan is checked within a
// tolerance, docs/cuda.md): a multiply and the ex2 per state and position,
// where expf took about 20, (dt A) log2(e) a multiply more and ex2 without
// `.ftz` three more (decays under 2^-126 flush to zero: under 1.2e-38 |h|).
// The host emulation uses expf(dt A).
FS_FN float scan_decay(float dt, float A, float A2) {
#if defined(__CUDA_ARCH__)
  (void)A;
  float r;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(dt * A2));
  return r;
#else
  (void)A2;
  return FS_EXPF(dt * A);
#endif
}

// B_l[n] (kB) and C_l[n] (kC) of this lane's states at a group's positions
// l0 + dir i, i < G; `crow` indexes B_l0[j] ((b L + l0) N + j). Zeros past
// the n positions in range, past N and in lanes past the last channel; a
// time-invariant B / C gives its fixed value. kDense: all in range and
// varying, and N = P SPL, so that every offset is a constant.
template <bool kDense, bool kB, bool kC, typename T, int P, int SPL, int G>
FS_FN void scan_coefs(const ScanParams& p, const ScanStates<P, SPL>& st, const ScanLane& w,
                      int64_t crow, int dir, int n, float (&b)[G][SPL], float (&c)[G][SPL]) {
  if constexpr (kDense) {
    constexpr int S = P * SPL;
    const T* pb = static_cast<const T*>(p.B) + crow;
    const T* pc = static_cast<const T*>(p.C) + crow;
FS_UNROLL
    for (int i = 0; i < G; ++i)
FS_UNROLL
      for (int s = 0; s < SPL; ++s) {
        b[i][s] = kB ? to_float(pb[dir * i * S + s * P]) : 0.0f;
        c[i][s] = kC ? to_float(pc[dir * i * S + s * P]) : 0.0f;
      }
  } else {
    const int N = int(p.N);
FS_UNROLL
    for (int i = 0; i < G; ++i)
FS_UNROLL
      for (int s = 0; s < SPL; ++s) {
        const bool in = w.on && i < n && w.j + s * P < N;
        const int64_t at = crow + (dir * i * N + s * P);
        b[i][s] = !in || !kB ? 0.0f : p.B_varies ? scan_load<T>(p.B, at) : st.Bf[s];
        c[i][s] = !in || !kC ? 0.0f : p.C_varies ? scan_load<T>(p.C, at) : st.Cf[s];
      }
  }
}

// A position's per-channel values, computed by the lane that owns it and
// handed to the channel's other lanes by shuffles: u, delta + bias, dt,
// dt u, z; in the backward's walk also gy (dout, then the gate's gradient
// applied).
struct ScanOwn {
  bool on;
  float u, raw, dt, dtu, z, gy;
};

// The owned positions of a span of W positions l0 + dir si (`row` indexes
// l0 of this channel in u; ns of them in range): loads (z when `with_z`,
// dout when `grad`) and step size.
template <bool kDense, typename T, int P, int W>
FS_FN void scan_own_span(const ScanParams& p, float bias, const ScanLane& w, int64_t row, int dir,
                         int ns, bool with_z, bool grad,
                         ScanOwn (&own)[scan_owned(P, W)]) {
FS_UNROLL
  for (int k = 0; k < scan_owned(P, W); ++k) {
    const int si = w.j + k * P;
    ScanOwn& o = own[k];
    o.on = (P <= W || si < W) && (kDense || (w.on && si < ns));
    const int64_t at = row + int64_t(dir * si) * p.D;
    o.u = o.on ? scan_load<T>(p.u, at) : 0.0f;
    o.raw = (o.on ? scan_load<T>(p.delta, at) : 0.0f) + bias;
    o.dt = p.softplus ? fs::scan::softplus(o.raw) : o.raw;
    o.dtu = o.dt * o.u;
    o.z = o.on && with_z && p.has_z ? scan_load<T>(p.z, at) : 0.0f;
    o.gy = o.on && grad ? scan_load<T>(p.dout, at) : 0.0f;
  }
}

// Span position si's value v from its owner, lane si % P of the channel
// (v: that lane's value of own[si / P]; own[0] with one owned position, a
// constant where the groups' loop does not unroll).
template <int P, class Sync>
FS_FN float scan_from_owner(Sync& sync, float v, int si) {
  if constexpr (P == 1) {
    return v;
  } else {
    return sync.shfl(v, si % P, P);
  }
}

// After scan_lane_scatter of group q (G positions, span positions q G + i)
// of a span of W: the values this lane owns, into o (scan_owned(P, W)).
template <int P, int G, int W>
FS_FN void scan_keep(const float (&v)[G], int q, int j, float (&o)[scan_owned(P, W)]) {
  if constexpr (P >= G) {
    // value j % G of the group, span position q G + j % G: owned by lane
    // (q G) % P + j % G, in its slot q G / P (0 when W <= P)
    if (j / G == q % (P / G)) o[W <= P ? 0 : q / (P / G)] = v[0];
  } else {
    // values j + k P, span positions q G + j + k P: this lane's, in slots
    // q G / P + k
FS_UNROLL
    for (int k = 0; k < G / P; ++k) o[q * (G / P) + k] = v[k];
  }
}

// One span of the forward (kFwd: it loads C too, and sums y and finishes it
// in the owners) or of the backward's recomputation (the state after span
// position si stored at out + si N, this lane's scratch column): positions
// l0 .. l0 + ns - 1 (the whole span when kDense) from states h; `row` and
// `crow` index position l0 in u and B. Groups of G positions: loads, then
// the states' updates, then (forward) the y sums scattered to the owners.
template <bool kDense, bool kFwd, typename T, int P, int SPL, class Sync>
FS_FN void scan_advance_span(const ScanParams& p, const ScanStates<P, SPL>& st,
                             const ScanLane& w, int64_t row, int64_t crow, float* out, int ns,
                             float (&h)[SPL], Sync& sync) {
  using Sp = ScanSpan<P, SPL, kDense>;
  constexpr int W = kFwd ? Sp::fwd : Sp::recompute, G = kFwd ? Sp::fwd_group : Sp::recompute_group;
  constexpr int O = scan_owned(P, W);
  const int64_t cstep = kDense ? P * SPL : p.N;  // B's row and the scratch slot
  ScanOwn own[O];
  scan_own_span<kDense, T, P, W>(p, st.bias, w, row, 1, ns, kFwd, false, own);
  float yo[O];
FS_UNROLL
  for (int k = 0; k < O; ++k) yo[k] = 0.0f;
FS_SCAN_GROUPS
  for (int q = 0; q < W / G; ++q) {
    if (!kDense && q * G >= ns) break;  // the same ns in every lane: uniform
    float b[G][SPL], c[G][SPL], y[G];
    scan_coefs<kDense, true, kFwd, T, P, SPL, G>(p, st, w, crow + q * G * cstep, 1, ns - q * G, b,
                                                 c);
    float* o = out + q * G * cstep;  // after the group's first position
FS_UNROLL
    for (int i = 0; i < G; ++i) y[i] = 0.0f;
FS_UNROLL
    for (int i = 0; i < G; ++i) {
      const int si = q * G + i;
      if (!kDense && si >= ns) break;
      const ScanOwn& ow = own[O == 1 ? 0 : si / P];
      const float dt = scan_from_owner<P>(sync, ow.dt, si);
      const float dtu = scan_from_owner<P>(sync, ow.dtu, si);
FS_UNROLL
      for (int s = 0; s < SPL; ++s) {
        h[s] = fs::scan::state_update(h[s], scan_decay(dt, st.A[s], st.A2[s]), dtu, b[i][s]);
        if constexpr (kFwd) {
          y[i] = s == 0 ? h[s] * c[i][s] : y[i] + h[s] * c[i][s];
        } else if (kDense || (w.on && w.j + s * P < p.N)) {
          o[i * cstep + s * P] = h[s];
        }
      }
    }
    if constexpr (kFwd) {
      scan_lane_scatter<0, P, G>(sync, y, w.j);
      scan_keep<P, G, W>(y, q, w.j, yo);
    }
  }
  if constexpr (kFwd) {
FS_UNROLL
    for (int k = 0; k < O; ++k) {  // the owners finish y: D u, the gate
      if (!own[k].on) continue;
      float v = yo[k] + st.Dd * own[k].u;
      if (p.has_z) v = fs::scan::gate(v, own[k].z);
      scan_store<T>(p.out, row + (w.j + k * P) * p.D, v);
    }
  }
}

// The forward of thread `t` of block `blk` (scan_block_threads(false) per
// block, scan_forward_row_blocks per batch row; lanes of a channel are
// neighbours, channels never straddle a warp since P | 32). Spans never
// straddle a chunk: the checkpoint is stored between two. Spans wholly
// inside a chunk take the kDense path when every thread of the block has a
// channel, N = P SPL and B, C vary per step (block-uniform); the chunk's
// last positions run in checked groups.
template <typename T, int P, int SPL, class Sync>
FS_FN void scan_forward_thread(const ScanParams& p, int64_t blk, int t, Sync& sync) {
  constexpr int W = ScanSpan<P, SPL, true>::fwd, G = ScanSpan<P, SPL, false>::fwd;
  constexpr int CB = int(kScanForwardBlock) / P;  // channels per block
  const int64_t N = p.N, D = p.D, L = p.L, K = p.K;
  // scan_forward_row_blocks(D, N), with P known here
  const unsigned rb = unsigned((D + CB - 1) / CB), b = unsigned(blk) / rb;
  const int64_t d = int64_t(unsigned(blk) - b * rb) * CB + t / P;
  const ScanLane w{b, d, t % P, d < D};
  const bool dense = d - t / P + CB <= D && N == P * SPL && p.B_varies && p.C_varies;
  ScanStates<P, SPL> st;
  st.load(p, w);
  float h[SPL];
  for (int s = 0; s < SPL; ++s) {
    const int64_t n = w.j + int64_t(s) * P;
    h[s] = w.on && n < N && p.has_h0 ? p.h0[(w.b * D + w.d) * N + n] : 0.0f;
  }
  const int64_t row = w.b * L * D + w.d, crow = w.b * L * N + w.j;  // position 0
  for (int64_t l0 = 0, ci = 0; l0 < L; l0 += K, ++ci) {
    if (w.on) {
      float* ck = p.chk + ((w.b * p.nchk + ci) * D + w.d) * N;
      for (int s = 0; s < SPL; ++s)
        if (w.j + s * P < N) ck[w.j + s * P] = h[s];
    }
    const int64_t l1 = l0 + K < L ? l0 + K : L;
    for (int64_t g = l0; g < l1;) {
      const bool whole = dense && l1 - g >= W;
      const int ns = whole ? W : l1 - g < G ? int(l1 - g) : G;
      if (whole) {
        scan_advance_span<true, true, T, P, SPL>(p, st, w, row + g * D, crow + g * N, nullptr, W,
                                                 h, sync);
      } else {
        scan_advance_span<false, true, T, P, SPL>(p, st, w, row + g * D, crow + g * N, nullptr, ns,
                                                  h, sync);
      }
      g += whole ? W : G;
    }
  }
  if (!w.on) return;
  for (int s = 0; s < SPL; ++s)
    if (w.j + s * P < N) p.last[(w.b * D + w.d) * N + w.j + s * P] = h[s];
}

// One span of the backward's walk: positions top, top - 1, ...,
// top - ns + 1 (`row`, `crow` index top as in the forward; `hs` is this
// lane's scratch slot of the state entering top, the one after it at
// hs + N). First the gate's gradient (y again, from the states), then the
// walk in groups of G; the per-step dB, dC of span position si go to red
// row `red` - 2 si (B, then C at + 1; a row holds kScanBlock / 32 warps' S =
// P SPL floats), from the lanes of the warp's first channel.
template <bool kDense, typename T, int P, int SPL, class Sync>
FS_FN void scan_walk_span(const ScanParams& p, const ScanStates<P, SPL>& st, const ScanLane& w,
                          int64_t row, int64_t crow, const float* hs, int ns, float* red,
                          bool red_lane, ScanGrads<SPL>& a, Sync& sync) {
  constexpr int W = ScanSpan<P, SPL, kDense>::walk, G = ScanSpan<P, SPL, kDense>::walk_group;
  constexpr int O = scan_owned(P, W);
  constexpr int S = P * SPL, kRow = int(kScanBlock / 32) * S;
  const int64_t cstep = kDense ? S : p.N;  // B's row and the scratch slot
  ScanOwn own[O];
  scan_own_span<kDense, T, P, W>(p, st.bias, w, row, -1, ns, true, true, own);
  // The states after each position (hc) of a group, and before its last
  // one (hq): this lane's own scratch column, written by the
  // recomputation; a position's state before is the next one's after.
  const auto states = [&](int q, int n, float(&hc)[G][SPL], float(&hq)[SPL]) {
    const float* after = hs + (1 - q * G) * cstep;  // the state after group q's first position
FS_UNROLL
    for (int i = 0; i < G; ++i)
FS_UNROLL
      for (int s = 0; s < SPL; ++s) {
        const bool in = kDense || (w.on && i < n && w.j + s * P < p.N);
        hc[i][s] = in ? after[-i * cstep + s * P] : 0.0f;
      }
    const int last = kDense ? G : (n < G ? n : G);
FS_UNROLL
    for (int s = 0; s < SPL; ++s) {
      const bool in = kDense || (w.on && w.j + s * P < p.N);
      hq[s] = in ? after[-last * cstep + s * P] : 0.0f;
    }
  };
  if (p.has_z) {  // y again, for the gate's gradient, which the owner applies to gy
    float yo[O];
FS_UNROLL
    for (int k = 0; k < O; ++k) yo[k] = 0.0f;
FS_SCAN_GROUPS
    for (int q = 0; q < W / G; ++q) {
      if (!kDense && q * G >= ns) break;
      float unused[G][SPL], c[G][SPL], hc[G][SPL], hq[SPL], y[G];
      scan_coefs<kDense, false, true, T, P, SPL, G>(p, st, w, crow - q * G * cstep, -1,
                                                    ns - q * G, unused, c);
      states(q, ns - q * G, hc, hq);
FS_UNROLL
      for (int i = 0; i < G; ++i) {
        y[i] = 0.0f;
        if (!kDense && q * G + i >= ns) continue;
FS_UNROLL
        for (int s = 0; s < SPL; ++s)
          y[i] = s == 0 ? hc[i][s] * c[i][s] : y[i] + hc[i][s] * c[i][s];
      }
      scan_lane_scatter<0, P, G>(sync, y, w.j);
      scan_keep<P, G, W>(y, q, w.j, yo);
    }
FS_UNROLL
    for (int k = 0; k < O; ++k) {
      if (!own[k].on) continue;
      const auto gg = fs::scan::gate_grad(own[k].gy, yo[k] + st.Dd * own[k].u, own[k].z);
      own[k].gy = gg.dy;
      scan_store<T>(p.dz, row - (w.j + k * P) * p.D, gg.dz);
    }
  }
  float ddto[O], duo[O];
FS_UNROLL
  for (int k = 0; k < O; ++k) ddto[k] = duo[k] = 0.0f;
FS_SCAN_GROUPS
  for (int q = 0; q < W / G; ++q) {
    if (!kDense && q * G >= ns) break;  // the same ns in every lane: uniform
    const int n = ns - q * G;           // positions of this group in range (G or more if kDense)
    float b[G][SPL], c[G][SPL], hc[G][SPL], hq[SPL], ddt[G], du[G];
    scan_coefs<kDense, true, true, T, P, SPL, G>(p, st, w, crow - q * G * cstep, -1, n, b, c);
    states(q, n, hc, hq);
FS_UNROLL
    for (int i = 0; i < G; ++i) ddt[i] = du[i] = 0.0f;
FS_UNROLL
    for (int i = 0; i < G; ++i) {
      const int si = q * G + i;
      if (!kDense && i >= n) break;
      const ScanOwn& o = own[O == 1 ? 0 : si / P];
      const float dt = scan_from_owner<P>(sync, o.dt, si), u = scan_from_owner<P>(sync, o.u, si);
      const float gy = scan_from_owner<P>(sync, o.gy, si);
      float xb[SPL], xc[SPL];
FS_UNROLL
      for (int s = 0; s < SPL; ++s) {
        const bool last = kDense ? i + 1 == G : i + 1 >= n;
        const float hp = last ? hq[s] : hc[i + 1 < G ? i + 1 : i][s];
        const float gn = a.gh[s] + c[i][s] * gy;
        const auto sg = fs::scan::state_grad(gn, hp, scan_decay(dt, st.A[s], st.A2[s]), st.A[s],
                                             b[i][s], dt, u);
        ddt[i] = s == 0 ? sg.ddt : ddt[i] + sg.ddt;
        du[i] = s == 0 ? sg.du : du[i] + sg.du;
        a.dA[s] += sg.dA;
        a.gh[s] = kDense || (w.on && w.j + s * P < p.N) ? sg.dh_prev : 0.0f;
        xb[s] = sg.dB;
        xc[s] = hc[i][s] * gy;
        if (!kDense && !p.B_varies) a.dBf[s] += xb[s];
        if (!kDense && !p.C_varies) a.dCf[s] += xc[s];
      }
      // dB_l, dC_l over the warp's channels (lanes P apart), then the warp's
      // first channel leaves them for the block's sum.
FS_UNROLL
      for (int s = 0; s < SPL; ++s) {
        if (kDense || p.B_varies) xb[s] = scan_lane_sum<P, 32>(sync, xb[s]);
        if (kDense || p.C_varies) xc[s] = scan_lane_sum<P, 32>(sync, xc[s]);
        if (red_lane) {
          red[-2 * si * kRow + s * P] = xb[s];
          red[(1 - 2 * si) * kRow + s * P] = xc[s];
        }
      }
    }
    scan_lane_scatter<0, P, G>(sync, ddt, w.j);
    scan_lane_scatter<0, P, G>(sync, du, w.j);
    scan_keep<P, G, W>(ddt, q, w.j, ddto);
    scan_keep<P, G, W>(du, q, w.j, duo);
  }
  // The owners finish: softplus's gradient, the stores of du and ddelta,
  // the position's terms of dbias and dD.
  float tbias[O], tD[O];
FS_UNROLL
  for (int k = 0; k < O; ++k) {
    tbias[k] = tD[k] = 0.0f;
    if (!own[k].on) continue;
    const int64_t at = row - (w.j + k * P) * p.D;
    tbias[k] = p.softplus ? ddto[k] * fs::scan::sigmoid(own[k].raw) : ddto[k];
    tD[k] = own[k].gy * own[k].u;
    scan_store<T>(p.du, at, st.Dd * own[k].gy + duo[k]);
    scan_store<T>(p.ddelta, at, tbias[k]);
  }
  // dbias and dD add up per lane in the partition of the owners of the
  // walk's groups before spans (lane si % GP of span position si, lane 0 for
  // all when P < GP), so that their sums keep their bits: a shuffle from the
  // span's owner where that differs.
  constexpr int GP = ScanAhead<SPL>::walk;
  if constexpr (P == 1 || (P >= GP && W == GP)) {
FS_UNROLL
    for (int k = 0; k < O; ++k)
      if (own[k].on) {
        a.dbias += tbias[k];
        a.dD += tD[k];
      }
  } else if constexpr (P < GP) {
FS_UNROLL
    for (int si = 0; si < W; ++si) {
      if (!kDense && si >= ns) break;
      const float vb = scan_from_owner<P>(sync, tbias[si / P], si);
      const float vD = scan_from_owner<P>(sync, tD[si / P], si);
      if (w.j == 0) {
        a.dbias += vb;
        a.dD += vD;
      }
    }
  } else {  // W <= P: span position si is lane si's
FS_UNROLL
    for (int q = 0; q < W / GP; ++q) {
      if (!kDense && q * GP >= ns) break;
      const float vb = sync.shfl(tbias[0], w.j % GP + q * GP, P);
      const float vD = sync.shfl(tD[0], w.j % GP + q * GP, P);
      if (w.j < GP && (kDense || q * GP + w.j < ns)) {
        a.dbias += vb;
        a.dD += vD;
      }
    }
  }
}

// The backward of block `blk` = (batch row b, channel group g), thread `t`
// of kScanBlock; `red` is the block's shared buffer (scan_shared_bytes,
// [round position][B|C][warp][S = SPL P]).
template <typename T, int P, int SPL, class Sync>
FS_FN void scan_backward_block(const ScanParams& p, int64_t blk, int t, float* red, Sync& sync) {
  constexpr int CB = int(kScanBlock) / P, S = SPL * P, R = 256 / S;
  constexpr int kWarps = int(kScanBlock / 32);
  constexpr int WF = ScanSpan<P, SPL, true>::recompute, GF = ScanSpan<P, SPL, false>::recompute;
  constexpr int WB = ScanSpan<P, SPL, true>::walk, GB = ScanSpan<P, SPL, false>::walk;
  // 32-bit: the 64-bit division is a call (blocks are under 2^31)
  const unsigned groups = unsigned((p.D + CB - 1) / CB), bu = unsigned(blk) / groups;
  const int64_t b = bu, g = unsigned(blk) - bu * groups, N = p.N, D = p.D, L = p.L, K = p.K;
  const int64_t d = g * CB + t / P;
  const ScanLane w{b, d, t % P, d < D};
  const int warp = t / 32;
  const bool red_lane = t % 32 < P;  // the warp's first channel
  const bool dense = (g + 1) * CB <= D && N == S && p.B_varies && p.C_varies;  // block-uniform
  ScanStates<P, SPL> st;
  st.load(p, w);
  ScanGrads<SPL> a;
  a.dD = a.dbias = 0.0f;
  for (int s = 0; s < SPL; ++s) {
    const int64_t n = w.j + int64_t(s) * P;
    a.gh[s] = w.on && n < N ? p.dlast[(b * D + d) * N + n] : 0.0f;
    a.dA[s] = a.dBf[s] = a.dCf[s] = 0.0f;
  }
  // The scratch, [Bt][D][K + 1][N]: this channel's K + 1 slots of N, this
  // lane's column. A channel's slots are neighbours, so that a position's
  // is a constant offset from the next one's in the kDense path.
  float* hs = p.hs + (b * D + d) * (K + 1) * N + w.j;
  const int64_t row = b * L * D + d, crow = b * L * N + w.j;  // position 0
  for (int64_t c = p.nchk - 1; c >= 0; --c) {
    const int64_t l0 = c * K, l1 = l0 + K < L ? l0 + K : L;
    {  // the chunk's states, recomputed: slot 0 enters the chunk
      float h[SPL];
      const float* c0 = p.chk_in + ((b * p.nchk + c) * D + d) * N + w.j;
      for (int s = 0; s < SPL; ++s) {
        const bool n_in = w.on && w.j + s * P < N;
        h[s] = n_in ? c0[s * P] : 0.0f;
        if (n_in) hs[s * P] = h[s];
      }
      for (int64_t g0 = l0; g0 < l1;) {
        const bool whole = dense && l1 - g0 >= WF;
        const int ns = whole ? WF : l1 - g0 < GF ? int(l1 - g0) : GF;
        float* out = hs + (g0 - l0 + 1) * N;
        if (whole) {
          scan_advance_span<true, false, T, P, SPL>(p, st, w, row + g0 * D, crow + g0 * N, out,
                                                    WF, h, sync);
        } else {
          scan_advance_span<false, false, T, P, SPL>(p, st, w, row + g0 * D, crow + g0 * N, out,
                                                     ns, h, sync);
        }
        g0 += whole ? WF : GF;
      }
    }
    for (int64_t hi = l1; hi > l0; hi -= R) {
      const int64_t lo = hi - R > l0 ? hi - R : l0;
      // Spans from the round's top: dense ones (WB positions, a multiple of
      // GB) while they fit, then checked groups of GB.
      for (int64_t top = hi - 1; top >= lo;) {
        const bool whole = dense && top - lo + 1 >= WB;
        const int ns = whole ? WB : top - lo + 1 < GB ? int(top - lo + 1) : GB;
        float* r = red + (int(top - lo) * 2 * kWarps + warp) * S + w.j;
        const float* h = hs + (top - l0) * N;
        if (whole) {
          scan_walk_span<true, T, P, SPL>(p, st, w, row + top * D, crow + top * N, h, ns, r,
                                          red_lane, a, sync);
        } else {
          scan_walk_span<false, T, P, SPL>(p, st, w, row + top * D, crow + top * N, h, ns, r,
                                           red_lane, a, sync);
        }
        top -= whole ? WB : GB;
      }
      if (!p.B_varies && !p.C_varies) continue;  // uniform: no per-step sums
      sync.barrier();
      // The round's sums over the block's warps, one (position, B|C, n) per
      // thread at a time, warps in order.
      const int items = int(hi - lo) * 2 * S;
      for (int k = t; k < items; k += int(kScanBlock)) {
        const int pos = k / (2 * S), n = k % S;
        const bool isC = (k / S) % 2 == 1;
        if (n >= N || (isC ? !p.C_varies : !p.B_varies)) continue;
        float acc = 0.0f;
        for (int v = 0; v < kWarps; ++v)
          acc += red[((pos * 2 + (isC ? 1 : 0)) * kWarps + v) * S + n];  // lane n % P, state n / P
        (isC ? p.pC : p.pB)[((g * p.Bt + b) * L + lo + pos) * N + n] = acc;
      }
      sync.barrier();  // the next round overwrites red
    }
  }
  // dD and dbias: each lane holds the sums over its own positions, or lane
  // 0 over all of them (P < the walk's group).
  const float dD = scan_lane_sum<1, P>(sync, a.dD);
  const float dbias = scan_lane_sum<1, P>(sync, a.dbias);
  if (!w.on) return;
  for (int s = 0; s < SPL; ++s) {
    const int64_t n = w.j + int64_t(s) * P;
    if (n < N) {
      const int64_t i = (b * D + d) * N + n;
      p.pA[i] = a.dA[s];
      if (!p.B_varies) p.pB[i] = a.dBf[s];
      if (!p.C_varies) p.pC[i] = a.dCf[s];
      if (p.has_h0) p.dh0[i] = a.gh[s];
    }
  }
  if (w.j == 0) {
    p.pD[b * D + d] = dD;
    p.pbias[b * D + d] = dbias;
  }
}

}  // namespace flashsnn::cuda

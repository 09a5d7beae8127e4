// The selective scan on CUDA: the kernels' per-thread code, and the
// warp-level sums it needs. Per-position math: src/step/selective_scan.h,
// shared with the CPU and Metal kernels. Only nvcc reads this file (FS_FN is
// __host__ __device__ there); the cross-lane operations go through a `Sync`
// template argument (the block's barrier and an xor shuffle), so
// tests/cuda/host_scan.cu runs this same code on the CPU with one OS thread
// per GPU thread.
//
// Work split (csrc/scan.h; layout src/ops/scan.h, channels-last): a
// channel's N states are spread over P lanes of a warp, SPL per lane, so a
// layer of batch B and D channels runs B D P threads (131,072 at the
// Mamba-Spike recipe's B=32, D=256, N=16), not B D: one thread per channel
// with 16 states in registers left 2 warps per SM and every position waiting
// on its own loads.
//  forward   each lane updates its states; y = sum_n h C is an xor-butterfly
//            sum over the channel's P lanes (every lane gets the same bits).
//            B_l and C_l are one coalesced row. A lane loads a group of
//            positions' inputs before computing them (ScanAhead); with
//            enough lanes, each position's per-channel work (u, delta, z,
//            softplus, the output) is one owner lane's (ScanOwn).
//  backward  one block per (batch row, group of kScanBlock / P channels).
//            Per chunk, last first: each lane recomputes its states from
//            the forward's checkpoint into a scratch [Bt, K+1, D, N] (its own
//            column: no barrier), then walks the chunk backwards. dt's and
//            u's gradients are butterfly sums over the channel's lanes; the
//            per-step dB_l, dC_l sum over every channel: over a warp's
//            channels by butterfly, over the block's warps in shared memory
//            after a barrier, once per round of scan_round(N) positions, in
//            a fixed order; a last kernel (scan_sum) adds the blocks'
//            partials, and dA, dD, dbias and time-invariant dB / dC over
//            batch rows. No atomics: the same bits on every run. Owner
//            lanes and loads ahead as the forward's.
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

// sum of v over the lanes whose index differs from this one's only in the
// bits lo .. hi/2 (lo, hi powers of two), as an xor butterfly: every lane of
// a group ends with the same bits (a + b == b + a at every level).
template <class Sync>
FS_FN float scan_lane_sum(Sync& sync, float v, int lo, int hi) {
  for (int off = lo; off < hi; off *= 2) v += sync.shfl_xor(v, off);
  return v;
}

// Where a thread works: batch row b, channel d, lane j of the channel's P;
// `on` is false past the last channel (such a thread runs every loop and
// every cross-lane operation with zeros, and touches no memory but shared).
struct ScanLane {
  int64_t b, d;
  int j, P;
  bool on;
};

// One position's per-channel values: u, the step size and its input.
struct ScanPos {
  float u, raw, dt, dtu;
};

FS_FN ScanPos scan_pos_of(float u, float delta, float bias, bool softplus) {
  ScanPos s;
  s.u = u;
  s.raw = delta + bias;
  s.dt = softplus ? fs::scan::softplus(s.raw) : s.raw;
  s.dtu = s.dt * s.u;
  return s;
}

// What a lane loads once: A, a time-invariant B / C of its states, D and
// the bias of its channel.
template <int SPL>
struct ScanStates {
  float A[SPL], Bf[SPL], Cf[SPL];
  float Dd, bias;

  FS_FN void load(const ScanParams& p, const ScanLane& w) {
    for (int s = 0; s < SPL; ++s) {
      const int64_t n = w.j + int64_t(s) * w.P;
      const bool in = w.on && n < p.N;
      A[s] = in ? p.A[w.d * p.N + n] : 0.0f;
      Bf[s] = in && !p.B_varies ? static_cast<const float*>(p.B)[w.d * p.N + n] : 0.0f;
      Cf[s] = in && !p.C_varies ? static_cast<const float*>(p.C)[w.d * p.N + n] : 0.0f;
    }
    Dd = w.on && p.has_D ? p.Dv[w.d] : 0.0f;
    bias = w.on && p.has_bias ? p.bias[w.d] : 0.0f;
  }
};

// This lane's B_l[n] / C_l[n] (row crow = (b L + l) N), or its fixed value.
template <typename T, int SPL>
FS_FN float scan_coef(const ScanParams& p, const void* ptr, bool varies, int64_t crow,
                      const float (&fixed)[SPL], const ScanLane& w, int s) {
  const int64_t n = w.j + int64_t(s) * w.P;
  if (!w.on || n >= p.N) return 0.0f;
  return varies ? scan_load<T>(ptr, crow + n) : fixed[s];
}

// Positions whose inputs a lane loads before it computes any of them. One
// position per iteration waited on its own loads: 1.2 us a position on an
// H200 at batch 2, L = 4096, D = 256 (4.95 ms, 19x the byte floor), the
// latency of a global load with 2 warps per SM to hide it; nvcc cannot move
// the next position's loads above this one's store of `out` by itself.
// Registers: (3 + 2 SPL) per position ahead in the forward, (2 + SPL) in the
// backward's recomputation, (4 + 4 SPL) in its walk; more than these made
// ptxas spill (the build refuses local memory) within the backward's 128
// registers (scan_kernels.cuh).
template <int SPL>
struct ScanAhead {
  static constexpr int fwd = SPL == 1 ? 16 : 8;
  static constexpr int recompute = SPL == 1 ? 4 : 2;
  static constexpr int walk = SPL == 1 ? 4 : 2;
};

// A group of G positions' inputs, l, l + step, ..., loaded together; zeros
// outside [lo, hi) and in lanes past the last channel (whose results are
// never stored). z and C only when `full` (the backward's recomputation
// needs neither); u, delta and z only when `per_pos` (not when each
// position's values come from its own lane).
template <int G, int SPL>
struct ScanGroup {
  float u[G], delta[G], z[G], b[G][SPL], c[G][SPL];

  template <typename T>
  FS_FN void load(const ScanParams& p, const ScanStates<SPL>& st, const ScanLane& w, int64_t l,
                  int step, int64_t lo, int64_t hi, bool full, bool per_pos = true) {
FS_UNROLL
    for (int i = 0; i < G; ++i, l += step) {
      const bool in = w.on && l >= lo && l < hi, pos = in && per_pos;
      const int64_t row = (w.b * p.L + l) * p.D + w.d, crow = (w.b * p.L + l) * p.N;
      u[i] = pos ? scan_load<T>(p.u, row) : 0.0f;
      delta[i] = pos ? scan_load<T>(p.delta, row) : 0.0f;
      z[i] = pos && full && p.has_z ? scan_load<T>(p.z, row) : 0.0f;
FS_UNROLL
      for (int s = 0; s < SPL; ++s) {
        b[i][s] = in ? scan_coef<T, SPL>(p, p.B, p.B_varies, crow, st.Bf, w, s) : 0.0f;
        c[i][s] = in && full ? scan_coef<T, SPL>(p, p.C, p.C_varies, crow, st.Cf, w, s) : 0.0f;
      }
    }
  }
};

// exp(x) for the states' decays, x = dt A <= 0 in Mamba's use: on the GPU
// MUFU's ex2 (two instructions; expf's IEEE-accurate sequence was about a
// fifth of a position's work), within 2 ulp over x*log2(e)'s rounding; the
// scan is checked against the reference within a tolerance, not for equal
// bits across backends (docs/cuda.md). The host emulation uses expf.
FS_FN float scan_decay(float x) {
#if defined(__CUDA_ARCH__)
  float r;
  asm("ex2.approx.f32 %0, %1;" : "=f"(r) : "f"(x * 1.4426950408889634f));
  return r;
#else
  return FS_EXPF(x);
#endif
}

// A position's per-channel values, computed by the lane that owns it
// (`spread`; see scan_forward_thread) and handed to the channel's other
// lanes by shuffles: u, delta + bias, dt, z; in the backward's walk
// (`grad`) also dout (gy once the gate's gradient is applied).
struct ScanOwn {
  bool on;
  float u, raw, dt, gy, z;

  template <class Sync>
  FS_FN ScanPos at(Sync& sync, int lane) const {
    ScanPos s;
    s.u = sync.shfl(u, lane);
    s.dt = sync.shfl(dt, lane);
    s.raw = 0.0f;  // the owner applies softplus's gradient
    s.dtu = s.dt * s.u;
    return s;
  }
};

// Lane j of a group of G positions owns position l (l0 + j forward, top - j
// in the walk) when j < G and l lies in [lo, hi).
template <typename T, int SPL>
FS_FN ScanOwn scan_own(const ScanParams& p, const ScanStates<SPL>& st, const ScanLane& w,
                       bool spread, int G, int64_t l, int64_t lo, int64_t hi, bool with_z,
                       bool grad) {
  ScanOwn o{spread && w.on && w.j < G && l >= lo && l < hi, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
  const int64_t row = (w.b * p.L + l) * p.D + w.d;
  const ScanPos ps = scan_pos_of(o.on ? scan_load<T>(p.u, row) : 0.0f,
                                 o.on ? scan_load<T>(p.delta, row) : 0.0f, st.bias,
                                 p.softplus && spread);
  o.u = ps.u;
  o.raw = ps.raw;
  o.dt = ps.dt;
  if (o.on && with_z && p.has_z) o.z = scan_load<T>(p.z, row);
  if (o.on && grad) o.gy = scan_load<T>(p.dout, row);
  return o;
}

// The forward of global thread `tid` (scan_block_threads(false) per block;
// lanes of a channel are neighbours, channels never straddle a warp since
// P | 32). When the channel has at least as many lanes as a group has
// positions (P >= G: N >= 9 at one state per lane), lane j owns position j
// of each group: it alone loads u, delta and z there, computes the step size
// (softplus: two transcendentals, done by every lane before) and finishes
// and stores y; the others get dt and u by a shuffle. Below that, every
// lane computes every position's values, as before.
template <typename T, int SPL, class Sync>
FS_FN void scan_forward_thread(const ScanParams& p, int64_t tid, Sync& sync) {
  constexpr int G = ScanAhead<SPL>::fwd;
  const int P = scan_lanes(p.N);
  const int64_t c = tid / P, N = p.N, D = p.D, L = p.L;
  ScanLane w{c / D, c % D, int(tid % P), P, c < p.Bt * D};
  const bool spread = P >= G;
  const int base = int(tid % 32) - w.j;  // the channel's first lane in the warp
  ScanStates<SPL> st;
  st.load(p, w);
  float h[SPL];
  for (int s = 0; s < SPL; ++s) {
    const int64_t n = w.j + int64_t(s) * P;
    h[s] = w.on && n < N && p.has_h0 ? p.h0[(w.b * D + w.d) * N + n] : 0.0f;
  }
  int64_t kc = 0;  // position within the checkpoint's chunk
  for (int64_t l0 = 0; l0 < L; l0 += G) {
    ScanGroup<G, SPL> in;
    in.template load<T>(p, st, w, l0, 1, 0, L, true, !spread);
    const ScanOwn own = scan_own<T>(p, st, w, spread, G, l0 + w.j, 0, L, true, false);
    float yj = 0.0f;
FS_UNROLL
    for (int i = 0; i < G; ++i) {
      const int64_t l = l0 + i;
      if (l >= L) break;  // the same l in every lane: uniform
      if (kc == 0 && w.on) {
        float* ck = p.chk + ((w.b * p.nchk + l / p.K) * D + w.d) * N;
        for (int s = 0; s < SPL; ++s)
          if (w.j + s * P < N) ck[w.j + s * P] = h[s];
      }
      kc = kc + 1 == p.K ? 0 : kc + 1;
      ScanPos ps{0.0f, 0.0f, 0.0f, 0.0f};
      if (spread) {
        ps = own.at(sync, base + i);
      } else {
        ps = scan_pos_of(in.u[i], in.delta[i], st.bias, p.softplus);
      }
      float y = 0.0f;
FS_UNROLL
      for (int s = 0; s < SPL; ++s) {
        h[s] = fs::scan::state_update(h[s], scan_decay(ps.dt * st.A[s]), ps.dtu, in.b[i][s]);
        y += h[s] * in.c[i][s];
      }
      y = scan_lane_sum(sync, y, 1, P);
      if (spread) {
        yj = w.j == i ? y : yj;
      } else if (w.on && w.j == 0) {
        y += st.Dd * ps.u;
        if (p.has_z) y = fs::scan::gate(y, in.z[i]);
        scan_store<T>(p.out, (w.b * L + l) * D + w.d, y);
      }
    }
    if (own.on) {
      yj += st.Dd * own.u;
      if (p.has_z) yj = fs::scan::gate(yj, own.z);
      scan_store<T>(p.out, (w.b * L + l0 + w.j) * D + w.d, yj);
    }
  }
  if (!w.on) return;
  for (int s = 0; s < SPL; ++s)
    if (w.j + s * P < N) p.last[(w.b * D + w.d) * N + w.j + s * P] = h[s];
}

// The backward of block `blk` = (batch row b, channel group g), thread `t`
// of kScanBlock; `red` is the block's shared buffer (scan_shared_bytes,
// [round position][B|C][warp][SPL P]).
template <typename T, int SPL, class Sync>
FS_FN void scan_backward_block(const ScanParams& p, int64_t blk, int t, float* red, Sync& sync) {
  const int P = scan_lanes(p.N), R = scan_round(p.N);
  const int64_t CB = scan_block_channels(p.N), G = scan_groups(p.D, p.N);
  const int64_t b = blk / G, g = blk % G, N = p.N, D = p.D, L = p.L, K = p.K;
  const int64_t d = g * CB + t / P;
  ScanLane w{b, d, t % P, P, d < D};
  constexpr int kWarps = int(kScanBlock / 32);
  const int warp = t / 32, S = SPL * P;  // S: a warp's row of states in red
  constexpr int GF = ScanAhead<SPL>::recompute, GB = ScanAhead<SPL>::walk;
  static_assert(GF == GB, "one owner lane per position in both loops");
  const bool spread = P >= GB;  // as the forward's
  const int base = t % 32 - w.j;
  ScanStates<SPL> st;
  st.load(p, w);
  float gh[SPL], dA[SPL], dBf[SPL], dCf[SPL];
  float dD = 0.0f, dbias = 0.0f;
  for (int s = 0; s < SPL; ++s) {
    const int64_t n = w.j + int64_t(s) * P;
    gh[s] = w.on && n < N ? p.dlast[(b * D + d) * N + n] : 0.0f;
    dA[s] = dBf[s] = dCf[s] = 0.0f;
  }
  // Scratch slot k of this batch row: [k][D][N]; this lane's column.
  float* hs = p.hs + b * (K + 1) * D * N + d * N + w.j;
  const int64_t slot = D * N;
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
      for (int64_t g0 = l0; g0 < l1; g0 += GF) {
        ScanGroup<GF, SPL> in;
        in.template load<T>(p, st, w, g0, 1, l0, l1, false, !spread);
        const ScanOwn own = scan_own<T>(p, st, w, spread, GF, g0 + w.j, l0, l1, false, false);
FS_UNROLL
        for (int i = 0; i < GF; ++i) {
          const int64_t l = g0 + i;
          if (l >= l1) break;
          const ScanPos ps = spread ? own.at(sync, base + i)
                                    : scan_pos_of(in.u[i], in.delta[i], st.bias, p.softplus);
          float* out = hs + (l - l0 + 1) * slot;
FS_UNROLL
          for (int s = 0; s < SPL; ++s) {
            h[s] = fs::scan::state_update(h[s], scan_decay(ps.dt * st.A[s]), ps.dtu, in.b[i][s]);
            if (w.on && w.j + s * P < N) out[s * P] = h[s];
          }
        }
      }
    }
    for (int64_t hi = l1; hi > l0; hi -= R) {
      const int64_t lo = hi - R > l0 ? hi - R : l0;
      for (int64_t top = hi - 1; top >= lo; top -= GB) {
        ScanGroup<GB, SPL> in;
        in.template load<T>(p, st, w, top, -1, lo, hi, true, !spread);
        // dout, and the states before and after each position (this lane's
        // own scratch column, written above).
        float go[GB], hp[GB][SPL], hc[GB][SPL];
FS_UNROLL
        for (int i = 0; i < GB; ++i) {
          const int64_t l = top - i;
          const bool on = w.on && l >= lo;
          go[i] = on && !spread ? scan_load<T>(p.dout, (b * L + l) * D + d) : 0.0f;
FS_UNROLL
          for (int s = 0; s < SPL; ++s) {
            const bool n_in = on && w.j + s * P < N;
            hp[i][s] = n_in ? hs[(l - l0) * slot + s * P] : 0.0f;
            hc[i][s] = n_in ? hs[(l - l0 + 1) * slot + s * P] : 0.0f;
          }
        }
        // Spread: lane j owns position top - j; its y (for the gate's
        // gradient) is summed here for every position of the group first,
        // so the owner can finish the gate before the walk needs gy.
        const int64_t lj = top - w.j;
        ScanOwn own = scan_own<T>(p, st, w, spread, GB, lj, lo, hi, true, true);
        if (spread && p.has_z) {
          float yj = 0.0f;
FS_UNROLL
          for (int i = 0; i < GB; ++i) {
            if (top - i < lo) break;
            float y = 0.0f;
            for (int s = 0; s < SPL; ++s) y += hc[i][s] * in.c[i][s];
            y = scan_lane_sum(sync, y, 1, P);
            yj = w.j == i ? y : yj;
          }
          if (own.on) {
            const auto gg = fs::scan::gate_grad(own.gy, yj + st.Dd * own.u, own.z);
            own.gy = gg.dy;
            scan_store<T>(p.dz, (b * L + lj) * D + d, gg.dz);
          }
        }
        float ddt_j = 0.0f, du_j = 0.0f;
FS_UNROLL
        for (int i = 0; i < GB; ++i) {
          const int64_t l = top - i;
          if (l < lo) break;  // the same l in every lane: uniform
          const int64_t row = (b * L + l) * D + d;
          ScanPos ps{0.0f, 0.0f, 0.0f, 0.0f};
          float gy = 0.0f;
          if (spread) {
            ps = own.at(sync, base + i);
            gy = sync.shfl(own.gy, base + i);
          } else {
            ps = scan_pos_of(in.u[i], in.delta[i], st.bias, p.softplus);
            gy = go[i];
            if (p.has_z) {  // y again, for the gate's gradient
              float y = 0.0f;
              for (int s = 0; s < SPL; ++s) y += hc[i][s] * in.c[i][s];
              y = scan_lane_sum(sync, y, 1, P);
              const auto gg = fs::scan::gate_grad(go[i], y + st.Dd * ps.u, in.z[i]);
              gy = gg.dy;
              if (w.on && w.j == 0) scan_store<T>(p.dz, row, gg.dz);
            }
          }
          float du = 0.0f, ddt = 0.0f, xb[SPL], xc[SPL];
FS_UNROLL
          for (int s = 0; s < SPL; ++s) {
            const float gn = gh[s] + in.c[i][s] * gy;
            const auto sg = fs::scan::state_grad(gn, hp[i][s], scan_decay(ps.dt * st.A[s]),
                                                 st.A[s], in.b[i][s], ps.dt, ps.u);
            ddt += sg.ddt;
            du += sg.du;
            dA[s] += sg.dA;
            gh[s] = w.on && w.j + s * P < N ? sg.dh_prev : 0.0f;
            xb[s] = sg.dB;
            xc[s] = hc[i][s] * gy;
            if (!p.B_varies) dBf[s] += xb[s];
            if (!p.C_varies) dCf[s] += xc[s];
          }
          ddt = scan_lane_sum(sync, ddt, 1, P);
          du = scan_lane_sum(sync, du, 1, P);
          if (spread) {
            ddt_j = w.j == i ? ddt : ddt_j;
            du_j = w.j == i ? du : du_j;
          } else if (w.on && w.j == 0) {
            if (p.softplus) ddt *= fs::scan::sigmoid(ps.raw);
            dbias += ddt;
            dD += gy * ps.u;
            scan_store<T>(p.du, row, st.Dd * gy + du);
            scan_store<T>(p.ddelta, row, ddt);
          }
          // dB_l, dC_l over the warp's channels (lanes P apart), then the
          // warp's first channel leaves them for the block's sum.
FS_UNROLL
          for (int s = 0; s < SPL; ++s) {
            if (p.B_varies) xb[s] = scan_lane_sum(sync, xb[s], P, 32);
            if (p.C_varies) xc[s] = scan_lane_sum(sync, xc[s], P, 32);
            if (t % 32 < P) {
              float* r = red + ((l - lo) * 2 * kWarps + warp) * S + s * P + w.j;
              r[0] = xb[s];
              r[kWarps * S] = xc[s];
            }
          }
        }
        if (own.on) {  // the owner finishes its position
          if (p.softplus) ddt_j *= fs::scan::sigmoid(own.raw);
          dbias += ddt_j;
          dD += own.gy * own.u;
          const int64_t row = (b * L + lj) * D + d;
          scan_store<T>(p.du, row, st.Dd * own.gy + du_j);
          scan_store<T>(p.ddelta, row, ddt_j);
        }
      }
      if (!p.B_varies && !p.C_varies) continue;  // uniform: no per-step sums
      sync.barrier();
      // The round's sums over the block's warps, one (position, B|C, n) per
      // thread at a time, warps in order.
      const int64_t items = (hi - lo) * 2 * N;
      for (int64_t k = t; k < items; k += kScanBlock) {
        const int64_t pos = k / (2 * N), n = k % N;
        const bool isC = (k / N) % 2 == 1;
        if (isC ? !p.C_varies : !p.B_varies) continue;
        float acc = 0.0f;
        for (int v = 0; v < kWarps; ++v)
          acc += red[((pos * 2 + (isC ? 1 : 0)) * kWarps + v) * S + n];  // lane n % P, state n / P
        (isC ? p.pC : p.pB)[((g * p.Bt + b) * L + lo + pos) * N + n] = acc;
      }
      sync.barrier();  // the next round overwrites red
    }
  }
  // dD and dbias: each lane holds the sums over its own positions (spread)
  // or lane 0 over all of them.
  dD = scan_lane_sum(sync, dD, 1, P);
  dbias = scan_lane_sum(sync, dbias, 1, P);
  if (!w.on) return;
  for (int s = 0; s < SPL; ++s) {
    const int64_t n = w.j + int64_t(s) * P;
    if (n < N) {
      const int64_t i = (b * D + d) * N + n;
      p.pA[i] = dA[s];
      if (!p.B_varies) p.pB[i] = dBf[s];
      if (!p.C_varies) p.pC[i] = dCf[s];
      if (p.has_h0) p.dh0[i] = gh[s];
    }
  }
  if (w.j == 0) {
    p.pD[b * D + d] = dD;
    p.pbias[b * D + d] = dbias;
  }
}

// One (src, dst) pair of ScanSumParams per thread column j.
FS_FN void scan_sum_thread(const ScanSumParams& p, int job, int64_t j) {
  if (job >= p.jobs || j >= p.n[job]) return;
  float acc = 0.0f;
  for (int64_t k = 0; k < p.parts[job]; ++k) acc += p.src[job][k * p.n[job] + j];
  p.dst[job][j] = acc;
}

}  // namespace flashsnn::cuda

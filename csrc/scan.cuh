// The selective scan on CUDA: the kernels' per-thread (forward) and
// per-block (backward) code, and the launch geometry both the kernels
// (scan.cu) and the host checks (tests/cuda/host_scan.cu) use. Per-position
// math: src/step/selective_scan.h, shared with the CPU and Metal kernels.
// Only nvcc reads this file; FS_FN is __host__ __device__ there, and the
// backward's barrier is a template argument, so tests/cuda runs this same
// code on the CPU with one OS thread per GPU thread.
//
// Work split (layout: src/ops/scan.h, channels-last):
//  forward   one thread per (batch row b, channel d), its N states in
//            registers for all L positions; y = sum_n h C in the thread, in
//            n order as the CPU. Neighbouring threads are neighbouring
//            channels: u, delta, z, out are read and written coalesced, and
//            B_l, C_l (one row per (b, l)) are one broadcast load per warp.
//  backward  one block of kScanChannels threads per (b, group of channels).
//            Per chunk, in reverse: each thread recomputes its chunk's
//            states from the forward's checkpoint into a scratch column
//            [Bt, K+1, N, D] (its own: no barrier), then walks the chunk
//            backwards. A per-step dB_l / dC_l is a sum over every channel:
//            each thread leaves its N terms in shared memory for a round of
//            `scan_round(N)` positions, the block sums them over its
//            channels in a fixed order after a barrier, and writes one
//            partial per (group, b, l, n). A last kernel (scan_sum) adds the
//            partials over groups, and dA, dD, dbias and time-invariant
//            dB / dC over batch rows, in a fixed order: no atomics, the same
//            bits on every run.
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

// What both directions load once per (b, d): A's row, a time-invariant B /
// C row, D and the bias.
template <int NMAX>
struct ScanChannel {
  float A[NMAX], Bf[NMAX], Cf[NMAX];
  float Dd, bias;

  FS_FN void load(const ScanParams& p, int64_t d) {
    FS_UNROLL for (int n = 0; n < NMAX; ++n) {
      const bool on = n < p.N;
      A[n] = on ? p.A[d * p.N + n] : 0.0f;
      Bf[n] = on && !p.B_varies ? static_cast<const float*>(p.B)[d * p.N + n] : 0.0f;
      Cf[n] = on && !p.C_varies ? static_cast<const float*>(p.C)[d * p.N + n] : 0.0f;
    }
    Dd = p.has_D ? p.Dv[d] : 0.0f;
    bias = p.has_bias ? p.bias[d] : 0.0f;
  }
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

template <typename T, int NMAX>
FS_FN ScanPos scan_pos(const ScanParams& p, const ScanChannel<NMAX>& ch, int64_t row) {
  return scan_pos_of(scan_load<T>(p.u, row), scan_load<T>(p.delta, row), ch.bias, p.softplus);
}

// B_l[n] / C_l[n] of row (b, l) (crow = (b L + l) N), or the channel's fixed value.
template <typename T, int NMAX>
FS_FN float scan_coef(const void* p, bool varies, int64_t crow, const float (&fixed)[NMAX], int n) {
  return varies ? scan_load<T>(p, crow + n) : fixed[n];
}

// h <- the states after position l (y: sum_n h C, when asked).
template <typename T, int NMAX>
FS_FN float scan_advance(const ScanParams& p, const ScanChannel<NMAX>& ch, const ScanPos& s,
                         int64_t crow, float (&h)[NMAX], bool want_y) {
  float y = 0.0f;
  FS_UNROLL for (int n = 0; n < NMAX; ++n) {
    if (n < p.N) {
      const float bn = scan_coef<T, NMAX>(p.B, p.B_varies, crow, ch.Bf, n);
      h[n] = fs::scan::state_update(h[n], FS_EXPF(s.dt * ch.A[n]), s.dtu, bn);
      if (want_y) y += h[n] * scan_coef<T, NMAX>(p.C, p.C_varies, crow, ch.Cf, n);
    }
  }
  return y;
}

// The forward of channel d of batch row b (thread b * D + d). Position l+1's
// u, delta and z are loaded before position l is computed and stored: the
// compiler cannot move those loads above the store of out itself (out and
// the inputs are untyped pointers it must assume may alias), and a thread
// with one position in flight waits out a full memory latency per position.
template <typename T, int NMAX>
FS_FN void scan_forward_thread(const ScanParams& p, int64_t tid) {
  if (tid >= p.Bt * p.D) return;
  const int64_t b = tid / p.D, d = tid % p.D, N = p.N, D = p.D, L = p.L;
  ScanChannel<NMAX> ch;
  ch.load(p, d);
  float h[NMAX];
  FS_UNROLL for (int n = 0; n < NMAX; ++n)
    h[n] = n < N && p.has_h0 ? p.h0[(b * D + d) * N + n] : 0.0f;
  const int64_t row0 = b * L * D + d;
  float u_next = 0.0f, delta_next = 0.0f, z_next = 0.0f;
  if (L > 0) {
    u_next = scan_load<T>(p.u, row0);
    delta_next = scan_load<T>(p.delta, row0);
    if (p.has_z) z_next = scan_load<T>(p.z, row0);
  }
  for (int64_t l = 0; l < L; ++l) {
    if (l % p.K == 0) {
      float* c = p.chk + ((b * p.nchk + l / p.K) * D + d) * N;
      FS_UNROLL for (int n = 0; n < NMAX; ++n) if (n < N) c[n] = h[n];
    }
    const int64_t row = row0 + l * D;
    const ScanPos s = scan_pos_of(u_next, delta_next, ch.bias, p.softplus);
    const float z = z_next;
    if (l + 1 < L) {
      u_next = scan_load<T>(p.u, row + D);
      delta_next = scan_load<T>(p.delta, row + D);
      if (p.has_z) z_next = scan_load<T>(p.z, row + D);
    }
    float y = scan_advance<T, NMAX>(p, ch, s, (b * L + l) * N, h, true);
    y += ch.Dd * s.u;
    if (p.has_z) y = fs::scan::gate(y, z);
    scan_store<T>(p.out, row, y);
  }
  FS_UNROLL for (int n = 0; n < NMAX; ++n) if (n < N) p.last[(b * D + d) * N + n] = h[n];
}

// The backward of block `blk` = (batch row b, channel group g), thread `t`
// of kScanChannels; `red` is the block's shared buffer (scan_shared_bytes),
// `sync.barrier()` the block's barrier. Every thread of the block reaches
// every barrier: a thread past the last channel runs the loops with zero
// terms and touches no memory but `red`.
template <typename T, int NMAX, class Sync>
FS_FN void scan_backward_block(const ScanParams& p, int64_t blk, int t, float* red, Sync& sync) {
  const int64_t G = scan_groups(p.D), b = blk / G, g = blk % G;
  const int64_t d = g * kScanChannels + t, N = p.N, D = p.D, L = p.L, K = p.K;
  const bool on = d < D;
  constexpr int W = kScanChannels + 1;  // padded: the sums read a column without bank conflicts
  const int S = scan_round(N);
  ScanChannel<NMAX> ch;
  float gh[NMAX], dA[NMAX], dBf[NMAX], dCf[NMAX];
  float dD = 0.0f, dbias = 0.0f;
  if (on) ch.load(p, d);
  FS_UNROLL for (int n = 0; n < NMAX; ++n) {
    gh[n] = on && n < N ? p.dlast[(b * D + d) * N + n] : 0.0f;
    dA[n] = dBf[n] = dCf[n] = 0.0f;
  }
  // This thread's scratch column: slot j, state n at hs[(j N + n) D].
  float* hs = p.hs + b * (K + 1) * N * D + d;
  for (int64_t c = p.nchk - 1; c >= 0; --c) {
    const int64_t l0 = c * K, l1 = l0 + K < L ? l0 + K : L;
    if (on) {  // the chunk's states, recomputed: slot 0 enters the chunk
      float h[NMAX];
      const float* c0 = p.chk_in + ((b * p.nchk + c) * D + d) * N;
      FS_UNROLL for (int n = 0; n < NMAX; ++n) {
        h[n] = n < N ? c0[n] : 0.0f;
        if (n < N) hs[n * D] = h[n];
      }
      for (int64_t l = l0; l < l1; ++l) {
        const ScanPos s = scan_pos<T, NMAX>(p, ch, (b * L + l) * D + d);
        scan_advance<T, NMAX>(p, ch, s, (b * L + l) * N, h, false);
        float* slot = hs + (l - l0 + 1) * N * D;
        FS_UNROLL for (int n = 0; n < NMAX; ++n) if (n < N) slot[n * D] = h[n];
      }
    }
    for (int64_t hi = l1; hi > l0; hi -= S) {
      const int64_t lo = hi - S > l0 ? hi - S : l0;
      for (int64_t l = hi - 1; l >= lo; --l) {
        float* rb = red + (l - lo) * 2 * N * W + t;  // this position's dB terms; dC's follow
        if (!on) {
          for (int64_t k = 0; k < 2 * N; ++k) rb[k * W] = 0.0f;
          continue;
        }
        const int64_t row = (b * L + l) * D + d, crow = (b * L + l) * N;
        const ScanPos s = scan_pos<T, NMAX>(p, ch, row);
        const float* prev = hs + (l - l0) * N * D;
        const float* cur = prev + N * D;
        const float g_out = scan_load<T>(p.dout, row);
        float gy = g_out;
        if (p.has_z) {  // y again, for the gate's gradient
          float y = 0.0f;
          FS_UNROLL for (int n = 0; n < NMAX; ++n)
            if (n < N) y += cur[n * D] * scan_coef<T, NMAX>(p.C, p.C_varies, crow, ch.Cf, n);
          const auto gg = fs::scan::gate_grad(g_out, y + ch.Dd * s.u, scan_load<T>(p.z, row));
          gy = gg.dy;
          scan_store<T>(p.dz, row, gg.dz);
        }
        float du = ch.Dd * gy, ddt = 0.0f;
        dD += gy * s.u;
        FS_UNROLL for (int n = 0; n < NMAX; ++n) {
          if (n < N) {
            const float bn = scan_coef<T, NMAX>(p.B, p.B_varies, crow, ch.Bf, n);
            const float cn = scan_coef<T, NMAX>(p.C, p.C_varies, crow, ch.Cf, n);
            const float hp = prev[n * D];
            const float gn = gh[n] + cn * gy;
            const auto sg = fs::scan::state_grad(gn, hp, FS_EXPF(s.dt * ch.A[n]), ch.A[n], bn,
                                                 s.dt, s.u);
            const float xc = cur[n * D] * gy;
            ddt += sg.ddt;
            du += sg.du;
            dA[n] += sg.dA;
            gh[n] = sg.dh_prev;
            if (p.B_varies) rb[n * W] = sg.dB; else dBf[n] += sg.dB;
            if (p.C_varies) rb[(N + n) * W] = xc; else dCf[n] += xc;
          }
        }
        if (p.softplus) ddt *= fs::scan::sigmoid(s.raw);
        dbias += ddt;
        scan_store<T>(p.du, row, du);
        scan_store<T>(p.ddelta, row, ddt);
      }
      if (!p.B_varies && !p.C_varies) continue;  // uniform: no per-step sums
      sync.barrier();
      // The round's sums over the block's channels, one (position, B|C, n)
      // per thread at a time, channels in order.
      const int64_t items = (hi - lo) * 2 * N;
      for (int64_t k = t; k < items; k += kScanChannels) {
        const int64_t pos = k / (2 * N), n = k % N;
        const bool isC = (k / N) % 2 == 1;
        if (isC ? !p.C_varies : !p.B_varies) continue;
        float acc = 0.0f;
        for (int j = 0; j < int(kScanChannels); ++j) acc += red[k * W + j];
        (isC ? p.pC : p.pB)[((g * p.Bt + b) * L + lo + pos) * N + n] = acc;
      }
      sync.barrier();  // the next round overwrites red
    }
  }
  if (!on) return;
  FS_UNROLL for (int n = 0; n < NMAX; ++n) {
    if (n < N) {
      const int64_t i = (b * D + d) * N + n;
      p.pA[i] = dA[n];
      if (!p.B_varies) p.pB[i] = dBf[n];
      if (!p.C_varies) p.pC[i] = dCf[n];
      if (p.has_h0) p.dh0[i] = gh[n];
    }
  }
  p.pD[b * D + d] = dD;
  p.pbias[b * D + d] = dbias;
}

// One (src, dst) pair of ScanSumParams per thread column j.
FS_FN void scan_sum_thread(const ScanSumParams& p, int job, int64_t j) {
  if (job >= p.jobs || j >= p.n[job]) return;
  float acc = 0.0f;
  for (int64_t k = 0; k < p.parts[job]; ++k) acc += p.src[job][k * p.n[job] + j];
  p.dst[job][j] = acc;
}

}  // namespace flashsnn::cuda

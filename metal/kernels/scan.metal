// Mamba-1's selective scan on Apple GPUs: a port of the CUDA backend's first
// design (one thread per channel; docs/metal.md, "The selective scan", says
// how CUDA differs now); per-position math from src/step/selective_scan.h,
// shared with the CPU and CUDA kernels. Layout: src/ops/scan.h, channels-last.
//
//  scan_fwd_<dtype>_n<NMAX>  one thread per (batch row b, channel d), its N
//                            states in registers for all L positions; y =
//                            sum_n h C in n order. Writes the state entering
//                            every chunk of K positions.
//  scan_bwd_<dtype>_n<NMAX>  one threadgroup of 32 threads per (b, group of
//                            32 channels). Per chunk, in reverse: each thread
//                            recomputes its chunk's states into its own
//                            column of a device scratch [Bt, K+1, N, D], then
//                            walks the chunk backwards; per-step dB / dC
//                            terms go to threadgroup memory for a round of
//                            positions and, after a barrier, are summed over
//                            the group's channels in channel order.
//  scan_sum                  the partials summed over channel groups or batch
//                            rows, k in order: no atomics, the same bits on
//                            every run.
//
// Buffer and function-constant indices: scan_layout.h, which the launch
// plans (metal/scan.h) read too. tests/metal compiles this file as C++ and
// runs those plans over it, barriers included.

// Metal may contract a*b+c into an FMA even in safe math mode
// (src/step/common.h); every backend rounds each operation.
#pragma METAL fp contract(off)

#include <metal_stdlib>

#include "../../src/step/selective_scan.h"
#include "scan_layout.h"

using namespace metal;

// A kernel-scope threadgroup array. The emulator's shim defines its own
// first: a NaN-poisoned arena per threadgroup (clang rejects an automatic
// variable in an address space, and the lint forbids `static`).
#ifndef FS_THREADGROUP_ARRAY
#define FS_THREADGROUP_ARRAY(T, name, n) threadgroup T name[n]
#endif

constant bool fs_has_D [[function_constant(0)]];
static_assert(fs::scan_layout::kFcHasD == 0, "scan_layout.h");
constant bool fs_has_z [[function_constant(1)]];
static_assert(fs::scan_layout::kFcHasZ == 1, "scan_layout.h");
constant bool fs_has_bias [[function_constant(2)]];
static_assert(fs::scan_layout::kFcHasBias == 2, "scan_layout.h");
constant bool fs_has_h0 [[function_constant(3)]];
static_assert(fs::scan_layout::kFcHasH0 == 3, "scan_layout.h");
constant bool fs_softplus [[function_constant(4)]];
static_assert(fs::scan_layout::kFcSoftplus == 4, "scan_layout.h");
constant bool fs_B_step [[function_constant(5)]];
static_assert(fs::scan_layout::kFcBStep == 5, "scan_layout.h");
constant bool fs_B_fixed [[function_constant(6)]];
static_assert(fs::scan_layout::kFcBFixed == 6, "scan_layout.h");
constant bool fs_C_step [[function_constant(7)]];
static_assert(fs::scan_layout::kFcCStep == 7, "scan_layout.h");
constant bool fs_C_fixed [[function_constant(8)]];
static_assert(fs::scan_layout::kFcCFixed == 8 && fs::scan_layout::kNumFunctionConstants == 9,
              "scan_layout.h");

// What every scan kernel reads (compiled-out arguments are null and never
// touched), and the sizes from the dims array.
template <typename T>
struct ScanIn {
  const device T* u;
  const device T* delta;
  const device float* A;
  const device T* Bs;  // per step [Bt, L, N], or null
  const device float* Bf;  // fixed [D, N], or null
  const device T* Cs;
  const device float* Cf;
  const device float* Dv;
  const device T* z;
  const device float* bias;
  int Bt, L, D, N, K, nchk;
};

template <typename T>
inline ScanIn<T> scan_in(const device T* u, const device T* delta, const device float* A,
                         const device T* Bs, const device float* Bf, const device T* Cs,
                         const device float* Cf, const device float* Dv, const device T* z,
                         const device float* bias, constant uint* dims) {
  namespace SL = fs::scan_layout;
  ScanIn<T> p;
  p.u = u;
  p.delta = delta;
  p.A = A;
  p.Bs = fs_B_step ? Bs : nullptr;
  p.Bf = fs_B_fixed ? Bf : nullptr;
  p.Cs = fs_C_step ? Cs : nullptr;
  p.Cf = fs_C_fixed ? Cf : nullptr;
  p.Dv = fs_has_D ? Dv : nullptr;
  p.z = fs_has_z ? z : nullptr;
  p.bias = fs_has_bias ? bias : nullptr;
  p.Bt = int(dims[SL::dims_Bt()]);
  p.L = int(dims[SL::dims_L()]);
  p.D = int(dims[SL::dims_D()]);
  p.N = int(dims[SL::dims_N()]);
  p.K = int(dims[SL::dims_K()]);
  p.nchk = int(dims[SL::dims_nchk()]);
  return p;
}

// What both directions load once per channel d: A's row, a fixed B / C
// row, D and the bias (zero where absent; lanes past N zero).
template <int NMAX>
struct ScanChannel {
  float A[NMAX], Bf[NMAX], Cf[NMAX];
  float Dd, bias;
};

template <typename T, int NMAX>
inline void scan_load_channel(thread ScanChannel<NMAX>& ch, ScanIn<T> p, int d) {
  for (int n = 0; n < NMAX; ++n) {
    const bool on = n < p.N;
    const long i = long(d) * p.N + n;
    ch.A[n] = on ? p.A[i] : 0.0f;
    ch.Bf[n] = on && fs_B_fixed ? p.Bf[i] : 0.0f;
    ch.Cf[n] = on && fs_C_fixed ? p.Cf[i] : 0.0f;
  }
  ch.Dd = fs_has_D ? p.Dv[d] : 0.0f;
  ch.bias = fs_has_bias ? p.bias[d] : 0.0f;
}

// One position's per-channel values: u, the step size and its input.
struct ScanPos {
  float u, raw, dt, dtu;
};

template <typename T, int NMAX>
inline ScanPos scan_pos(ScanIn<T> p, thread const ScanChannel<NMAX>& ch, long row) {
  ScanPos s;
  s.u = static_cast<float>(p.u[row]);
  s.raw = static_cast<float>(p.delta[row]) + ch.bias;
  s.dt = fs_softplus ? fs::scan::softplus(s.raw) : s.raw;
  s.dtu = s.dt * s.u;
  return s;
}

// B_l[n] / C_l[n] of row (b, l) (crow = (b L + l) N), or the channel's fixed value.
template <typename T, int NMAX>
inline float scan_b(ScanIn<T> p, thread const ScanChannel<NMAX>& ch, long crow, int n) {
  return fs_B_step ? static_cast<float>(p.Bs[crow + n]) : ch.Bf[n];
}
template <typename T, int NMAX>
inline float scan_c(ScanIn<T> p, thread const ScanChannel<NMAX>& ch, long crow, int n) {
  return fs_C_step ? static_cast<float>(p.Cs[crow + n]) : ch.Cf[n];
}

// h <- the states after the position (returns y = sum_n h C when asked).
template <typename T, int NMAX>
inline float scan_advance(ScanIn<T> p, thread const ScanChannel<NMAX>& ch, ScanPos s, long crow,
                          thread float* h, bool want_y) {
  float y = 0.0f;
  for (int n = 0; n < NMAX; ++n) {
    if (n < p.N) {
      h[n] = fs::scan::state_update(h[n], FS_EXPF(s.dt * ch.A[n]), s.dtu, scan_b<T, NMAX>(p, ch, crow, n));
      if (want_y) y += h[n] * scan_c<T, NMAX>(p, ch, crow, n);
    }
  }
  return y;
}

template <typename T>
struct ScanFwdOut {
  const device float* h0;
  device T* out;
  device float* last;
  device float* chk;
};

// The forward of channel d of batch row b (thread b D + d).
template <typename T, int NMAX>
void scan_forward_thread(ScanIn<T> p, ScanFwdOut<T> o, uint tid) {
  if (long(tid) >= long(p.Bt) * p.D) return;
  const int b = int(tid / uint(p.D)), d = int(tid % uint(p.D)), N = p.N, D = p.D;
  ScanChannel<NMAX> ch;
  scan_load_channel<T, NMAX>(ch, p, d);
  const long state = (long(b) * D + d) * N;  // [Bt, D, N] row of (b, d)
  float h[NMAX];
  for (int n = 0; n < NMAX; ++n) h[n] = n < N && fs_has_h0 ? o.h0[state + n] : 0.0f;
  for (int l = 0; l < p.L; ++l) {
    if (l % p.K == 0) {
      device float* c = o.chk + ((long(b) * p.nchk + l / p.K) * D + d) * N;
      for (int n = 0; n < NMAX; ++n) {
        if (n < N) c[n] = h[n];
      }
    }
    const long row = (long(b) * p.L + l) * D + d;
    const ScanPos s = scan_pos<T, NMAX>(p, ch, row);
    float y = scan_advance<T, NMAX>(p, ch, s, (long(b) * p.L + l) * N, h, true);
    y += ch.Dd * s.u;
    if (fs_has_z) y = fs::scan::gate(y, static_cast<float>(p.z[row]));
    o.out[row] = static_cast<T>(y);
  }
  for (int n = 0; n < NMAX; ++n) {
    if (n < N) o.last[state + n] = h[n];
  }
}

template <typename T>
struct ScanBwdIo {
  const device float* chk;
  const device T* dout;
  const device float* dlast;
  device T* du;
  device T* ddelta;
  device T* dz;
  device float* dh0;
  device float* hs;     // [Bt, K + 1, N, D]: one chunk's states
  device float* pA;     // [Bt, D, N]
  device float* pB;     // [groups, Bt, L, N] per step, or [Bt, D, N]
  device float* pC;
  device float* pD;     // [Bt, D]
  device float* pbias;  // [Bt, D]
};

// The backward of threadgroup `blk` = (batch row b, channel group g), thread
// t of 32; `red` the threadgroup's reduction buffer. Every thread reaches
// every barrier: one past the last channel runs the loops with zero terms
// and touches no memory but `red` (barriers in uniform control flow only).
template <typename T, int NMAX>
void scan_backward_block(ScanIn<T> p, ScanBwdIo<T> o, uint blk, int t, threadgroup float* red) {
  namespace SL = fs::scan_layout;
  const int CH = SL::channels();
  const int G = (p.D + CH - 1) / CH, b = int(blk / uint(G)), g = int(blk % uint(G));
  const int d = g * CH + t, N = p.N, D = p.D, L = p.L, K = p.K;
  const bool on = d < D;
  const int W = SL::pitch(NMAX);
  const int S = SL::round_positions(N);
  ScanChannel<NMAX> ch;
  float gh[NMAX], dA[NMAX], dBf[NMAX], dCf[NMAX];
  float dD = 0.0f, dbias = 0.0f;
  if (on) scan_load_channel<T, NMAX>(ch, p, d);
  const long state = (long(b) * D + d) * N;
  for (int n = 0; n < NMAX; ++n) {
    gh[n] = on && n < N ? o.dlast[state + n] : 0.0f;
    dA[n] = 0.0f;
    dBf[n] = 0.0f;
    dCf[n] = 0.0f;
  }
  // This thread's scratch column: slot j, state n at hs[(j N + n) D].
  device float* hs = o.hs + long(b) * (K + 1) * N * D + d;
  for (int c = p.nchk - 1; c >= 0; --c) {
    const int l0 = c * K, l1 = l0 + K < L ? l0 + K : L;
    if (on) {  // the chunk's states, recomputed: slot 0 enters the chunk
      float h[NMAX];
      const device float* c0 = o.chk + ((long(b) * p.nchk + c) * D + d) * N;
      for (int n = 0; n < NMAX; ++n) {
        h[n] = n < N ? c0[n] : 0.0f;
        if (n < N) hs[long(n) * D] = h[n];
      }
      for (int l = l0; l < l1; ++l) {
        const ScanPos s = scan_pos<T, NMAX>(p, ch, (long(b) * L + l) * D + d);
        scan_advance<T, NMAX>(p, ch, s, (long(b) * L + l) * N, h, false);
        device float* slot = hs + long(l - l0 + 1) * N * D;
        for (int n = 0; n < NMAX; ++n) {
          if (n < N) slot[long(n) * D] = h[n];
        }
      }
    }
    for (int hi = l1; hi > l0; hi -= S) {
      const int lo = hi - S > l0 ? hi - S : l0;
      for (int l = hi - 1; l >= lo; --l) {
        threadgroup float* rb = red + (l - lo) * 2 * N * W + t;  // dB terms; dC's follow
        if (!on) {
          for (int k = 0; k < 2 * N; ++k) rb[k * W] = 0.0f;
          continue;
        }
        const long row = (long(b) * L + l) * D + d, crow = (long(b) * L + l) * N;
        const ScanPos s = scan_pos<T, NMAX>(p, ch, row);
        const device float* prev = hs + long(l - l0) * N * D;
        const device float* cur = prev + long(N) * D;
        const float g_out = static_cast<float>(o.dout[row]);
        float gy = g_out;
        if (fs_has_z) {  // y again, for the gate's gradient
          float y = 0.0f;
          for (int n = 0; n < NMAX; ++n) {
            if (n < N) y += cur[long(n) * D] * scan_c<T, NMAX>(p, ch, crow, n);
          }
          const fs::scan::GateGrad gg =
              fs::scan::gate_grad(g_out, y + ch.Dd * s.u, static_cast<float>(p.z[row]));
          gy = gg.dy;
          o.dz[row] = static_cast<T>(gg.dz);
        }
        float du = ch.Dd * gy, ddt = 0.0f;
        dD += gy * s.u;
        for (int n = 0; n < NMAX; ++n) {
          if (n < N) {
            const float bn = scan_b<T, NMAX>(p, ch, crow, n);
            const float cn = scan_c<T, NMAX>(p, ch, crow, n);
            const float hp = prev[long(n) * D];
            const float gn = gh[n] + cn * gy;
            const fs::scan::StateGrad sg =
                fs::scan::state_grad(gn, hp, FS_EXPF(s.dt * ch.A[n]), ch.A[n], bn, s.dt, s.u);
            const float xc = cur[long(n) * D] * gy;
            ddt += sg.ddt;
            du += sg.du;
            dA[n] += sg.dA;
            gh[n] = sg.dh_prev;
            if (fs_B_step) rb[n * W] = sg.dB; else dBf[n] += sg.dB;
            if (fs_C_step) rb[(N + n) * W] = xc; else dCf[n] += xc;
          }
        }
        if (fs_softplus) ddt *= fs::scan::sigmoid(s.raw);
        dbias += ddt;
        o.du[row] = static_cast<T>(du);
        o.ddelta[row] = static_cast<T>(ddt);
      }
      if (!fs_B_step && !fs_C_step) continue;  // a function constant: uniform
      threadgroup_barrier(mem_flags::mem_threadgroup);
      // The round's sums over the threadgroup's channels, one (position,
      // B|C, n) per thread at a time, channels in order.
      const int items = (hi - lo) * 2 * N;
      for (int k = t; k < items; k += CH) {
        const int pos = k / (2 * N), n = k % N;
        const bool isC = (k / N) % 2 == 1;
        if (isC ? !fs_C_step : !fs_B_step) continue;
        float acc = 0.0f;
        for (int j = 0; j < CH; ++j) acc += red[k * W + j];
        device float* dst = isC ? o.pC : o.pB;
        dst[((long(g) * p.Bt + b) * L + lo + pos) * N + n] = acc;
      }
      threadgroup_barrier(mem_flags::mem_threadgroup);  // the next round overwrites red
    }
  }
  if (!on) return;
  for (int n = 0; n < NMAX; ++n) {
    if (n < N) {
      o.pA[state + n] = dA[n];
      if (fs_B_fixed) o.pB[state + n] = dBf[n];
      if (fs_C_fixed) o.pC[state + n] = dCf[n];
      if (fs_has_h0) o.dh0[state + n] = gh[n];
    }
  }
  if (fs_has_D) o.pD[long(b) * D + d] = dD;
  if (fs_has_bias) o.pbias[long(b) * D + d] = dbias;
}

// The last kernel of the backward: dst[j] = sum over k < parts of
// src[k n + j], k in order (dims = {parts, n}).
[[kernel]] void scan_sum(const device float* src [[buffer(fs::scan_layout::sum_src())]],
                         device float* dst [[buffer(fs::scan_layout::sum_dst())]],
                         constant uint* dims [[buffer(fs::scan_layout::sum_dims())]],
                         uint j [[thread_position_in_grid]]) {
  const uint parts = dims[0], n = dims[1];
  if (j >= n) return;
  float acc = 0.0f;
  for (uint k = 0; k < parts; ++k) acc += src[ulong(k) * n + j];
  dst[j] = acc;
}

#define FS_GATED(GATE, NAME) (GATE ? NAME : nullptr)
#define FS_SCAN_INPUTS(T)                                                                          \
  const device T* u [[buffer(fs::scan_layout::in_u())]],                                           \
      const device T* delta [[buffer(fs::scan_layout::in_delta())]],                               \
      const device float* A [[buffer(fs::scan_layout::in_A())]],                                   \
      const device T* Bs [[buffer(fs::scan_layout::in_B_step()), function_constant(fs_B_step)]],   \
      const device float* Bf [[buffer(fs::scan_layout::in_B_fixed()), function_constant(fs_B_fixed)]], \
      const device T* Cs [[buffer(fs::scan_layout::in_C_step()), function_constant(fs_C_step)]],   \
      const device float* Cf [[buffer(fs::scan_layout::in_C_fixed()), function_constant(fs_C_fixed)]], \
      const device float* Dv [[buffer(fs::scan_layout::in_D()), function_constant(fs_has_D)]],     \
      const device T* z [[buffer(fs::scan_layout::in_z()), function_constant(fs_has_z)]],          \
      const device float* bias [[buffer(fs::scan_layout::in_bias()), function_constant(fs_has_bias)]]
#define FS_SCAN_IN(T)                                                                              \
  scan_in<T>(u, delta, A, FS_GATED(fs_B_step, Bs), FS_GATED(fs_B_fixed, Bf), FS_GATED(fs_C_step, Cs), \
             FS_GATED(fs_C_fixed, Cf), FS_GATED(fs_has_D, Dv), FS_GATED(fs_has_z, z),              \
             FS_GATED(fs_has_bias, bias), dims)

// One forward / backward pair per (dtype, NMAX): scan_fwd_float32_n16, ...
// Concrete [[kernel]] wrappers rather than `template [[host_name(..)]]`
// lines, which clang rejects, so that the emulator compiles this text.
#define FS_SCAN_KERNELS(TN, T, M)                                                                  \
  [[kernel]] void scan_fwd_##TN##_n##M(                                                            \
      FS_SCAN_INPUTS(T),                                                                           \
      const device float* h0 [[buffer(fs::scan_layout::fwd_h0()), function_constant(fs_has_h0)]],  \
      device T* out [[buffer(fs::scan_layout::fwd_out())]],                                        \
      device float* last [[buffer(fs::scan_layout::fwd_last())]],                                  \
      device float* chk [[buffer(fs::scan_layout::fwd_chk())]],                                    \
      constant uint* dims [[buffer(fs::scan_layout::fwd_dims())]],                                 \
      uint tid [[thread_position_in_grid]]) {                                                      \
    ScanFwdOut<T> o;                                                                               \
    o.h0 = FS_GATED(fs_has_h0, h0);                                                                \
    o.out = out;                                                                                   \
    o.last = last;                                                                                 \
    o.chk = chk;                                                                                   \
    scan_forward_thread<T, M>(FS_SCAN_IN(T), o, tid);                                              \
  }                                                                                                \
  [[kernel]] void scan_bwd_##TN##_n##M(                                                            \
      FS_SCAN_INPUTS(T),                                                                           \
      const device float* chk [[buffer(fs::scan_layout::bwd_chk())]],                              \
      const device T* dout [[buffer(fs::scan_layout::bwd_dout())]],                                \
      const device float* dlast [[buffer(fs::scan_layout::bwd_dlast())]],                          \
      device T* du [[buffer(fs::scan_layout::bwd_du())]],                                          \
      device T* ddelta [[buffer(fs::scan_layout::bwd_ddelta())]],                                  \
      device T* dz [[buffer(fs::scan_layout::bwd_dz()), function_constant(fs_has_z)]],             \
      device float* dh0 [[buffer(fs::scan_layout::bwd_dh0()), function_constant(fs_has_h0)]],      \
      device float* hs [[buffer(fs::scan_layout::bwd_hs())]],                                      \
      device float* pA [[buffer(fs::scan_layout::bwd_pA())]],                                      \
      device float* pB [[buffer(fs::scan_layout::bwd_pB())]],                                      \
      device float* pC [[buffer(fs::scan_layout::bwd_pC())]],                                      \
      device float* pD [[buffer(fs::scan_layout::bwd_pD()), function_constant(fs_has_D)]],         \
      device float* pbias [[buffer(fs::scan_layout::bwd_pbias()), function_constant(fs_has_bias)]], \
      constant uint* dims [[buffer(fs::scan_layout::bwd_dims())]],                                 \
      uint tid [[thread_position_in_grid]]) {                                                      \
    FS_THREADGROUP_ARRAY(float, red, fs::scan_layout::red_floats(M));                              \
    ScanBwdIo<T> o;                                                                                \
    o.chk = chk;                                                                                   \
    o.dout = dout;                                                                                 \
    o.dlast = dlast;                                                                               \
    o.du = du;                                                                                     \
    o.ddelta = ddelta;                                                                             \
    o.dz = FS_GATED(fs_has_z, dz);                                                                 \
    o.dh0 = FS_GATED(fs_has_h0, dh0);                                                              \
    o.hs = hs;                                                                                     \
    o.pA = pA;                                                                                     \
    o.pB = pB;                                                                                     \
    o.pC = pC;                                                                                     \
    o.pD = FS_GATED(fs_has_D, pD);                                                                 \
    o.pbias = FS_GATED(fs_has_bias, pbias);                                                        \
    /* threadgroups of exactly 32 threads (the plan's), so gid / 32 is the */                      \
    /* threadgroup and gid % 32 the thread in it */                                                \
    scan_backward_block<T, M>(FS_SCAN_IN(T), o, tid / uint(fs::scan_layout::channels()),           \
                              int(tid % uint(fs::scan_layout::channels())), red);                  \
  }

#define FS_SCAN_NMAX_KERNELS(TN, T) \
  FS_SCAN_KERNELS(TN, T, 16) FS_SCAN_KERNELS(TN, T, 32) FS_SCAN_KERNELS(TN, T, 64) FS_SCAN_KERNELS(TN, T, 128)

FS_SCAN_NMAX_KERNELS(float32, float)
FS_SCAN_NMAX_KERNELS(float16, half)
FS_SCAN_NMAX_KERNELS(bfloat16, bfloat)

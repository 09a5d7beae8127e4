// The selective scan on the CPU: eval_cpu of both primitives and their loops.
// One work item is (batch row b, a group of kScanGroup channels): its states
// [N][group] stay in a small local array for all L positions, each position
// reads the group's channels contiguously, and B_l / C_l are converted once
// per position for the whole group. Items run in parallel (parallel.h); dB
// and dC are summed over a group's channels here and over groups by the op,
// so no two threads write one value and the result does not depend on the
// thread count. Per-position math: src/step/selective_scan.h.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "mlx/backend/cpu/encoder.h"

#include "../ops/buffers.h"
#include "../ops/common.h"
#include "../ops/scan.h"
#include "../step/selective_scan.h"
#include "parallel.h"

namespace flashsnn {

namespace {

template <typename T>
struct ScanPtrs {
  const T* u;
  const T* delta;
  const float* A;
  const void* B;  // T when it varies per step, else float
  const void* C;
  const float* Dv;
  const T* z;
  const float* bias;
  const float* h0;
  const float* chk_in;  // backward: the forward's chunk states
  const T* dout;
  const float* dlast;
  // outputs
  T* out;
  float* last;
  float* chk;
  T* du;
  T* ddelta;
  float* dA;
  float* dB;
  float* dC;
  float* dD;
  T* dz;
  float* dbias;
  float* dh0;
  int64_t Bt, L, D, N, K, nchk;
};

constexpr int64_t W = kScanGroup;  // lanes of a work item: its channels

// One work item's view: batch row b, channels d0 .. d0 + w - 1, w <= W.
// Every per-channel array below has W lanes, the ones past w zero, so that
// the loops over lanes have a fixed trip count and vectorize (the inner
// loop over N with a sum into y did not: 80 ms for the forward at B=32
// L=100 D=256 N=16, 8x the reference). [n][lane] layouts: lane-contiguous.
struct Item {
  int64_t b, d0, w;
};

// A [D, N] float32 array's rows d0.. as [N][W] (zero past w).
inline void transpose_in(const float* src, const Item& it, int64_t N, float* dst) {
  std::fill(dst, dst + N * W, 0.0f);
  for (int64_t j = 0; j < it.w; ++j)
    for (int64_t n = 0; n < N; ++n) dst[n * W + j] = src[(it.d0 + j) * N + n];
}

// [N][W] back to the rows d0.. of a [.., D, N] array at `dst`.
inline void transpose_out(const float* src, const Item& it, int64_t N, float* dst) {
  for (int64_t j = 0; j < it.w; ++j)
    for (int64_t n = 0; n < N; ++n) dst[(it.d0 + j) * N + n] = src[n * W + j];
}

// dt = softplus(raw) and dtu = dt * u over a work item's W lanes, compiled
// for AVX-512, AVX2 and the baseline as advance (inline in Lanes::load it
// ran as 4-wide SSE: 31% of a forward at B=32 L=100 D=256 N=16, perf).
__attribute__((target_clones("avx512f", "avx2", "default")))
void step_sizes(const float* __restrict raw, const float* __restrict u, bool softplus,
                float* __restrict dt, float* __restrict dtu) {
  if (softplus) {
    for (int64_t j = 0; j < W; ++j) dt[j] = fs::scan::softplus(raw[j]);
  } else {
    for (int64_t j = 0; j < W; ++j) dt[j] = raw[j];
  }
  for (int64_t j = 0; j < W; ++j) dtu[j] = dt[j] * u[j];
}

// dst[j] = src[j] as float for j < w, dst[j] = 0 past it; the full-width case
// (every group but a layer's last) with a fixed trip count, which GCC
// vectorizes (the loop to a runtime w ran one element at a time).
template <typename S>
inline void load_lanes(const S* src, int64_t w, float* dst) {
  if (w == W) {
    for (int64_t j = 0; j < W; ++j) dst[j] = static_cast<float>(src[j]);
    return;
  }
  for (int64_t j = 0; j < W; ++j) dst[j] = j < w ? static_cast<float>(src[j]) : 0.0f;
}

// src[j] as T into dst for j < w (the item's channels), a fixed trip count
// when the item is full width (vectorizes, as load_lanes).
template <typename T>
inline void store_lanes(const float* src, int64_t w, T* dst) {
  if (w == W) {
    for (int64_t j = 0; j < W; ++j) dst[j] = static_cast<T>(src[j]);
    return;
  }
  for (int64_t j = 0; j < w; ++j) dst[j] = static_cast<T>(src[j]);
}

// The backward's per-lane steps around reverse_position, compiled for
// AVX-512, AVX2 and the baseline (inline in scan_backward's loop, at 4-wide
// SSE, that loop's own code was 21% of a forward+backward, perf): the
// gate's gradient (gy, dz from dout, y + D u and z) and softplus's
// (ddt *= sigmoid(raw)).
__attribute__((target_clones("avx512f", "avx2", "default")))
void gate_lanes(const float* __restrict g, const float* __restrict y,
                const float* __restrict Dl, const float* __restrict u,
                const float* __restrict z, float* __restrict gy, float* __restrict dz) {
  for (int64_t j = 0; j < W; ++j) {
    const auto gg = fs::scan::gate_grad(g[j], y[j] + Dl[j] * u[j], z[j]);
    gy[j] = gg.dy;
    dz[j] = gg.dz;
  }
}

// The forward's output: y + D u, through the gate when z is given.
__attribute__((target_clones("avx512f", "avx2", "default")))
void finish_y(float* __restrict y, const float* __restrict Dl, const float* __restrict u,
              const float* __restrict z, bool has_z) {
  for (int64_t j = 0; j < W; ++j) y[j] += Dl[j] * u[j];
  if (has_z)
    for (int64_t j = 0; j < W; ++j) y[j] = fs::scan::gate(y[j], z[j]);
}

__attribute__((target_clones("avx512f", "avx2", "default")))
void sigmoid_scale(float* __restrict x, const float* __restrict raw) {
  for (int64_t j = 0; j < W; ++j) x[j] *= fs::scan::sigmoid(raw[j]);
}

// Per-position values of the item's channels: u, delta, step size, z, dout.
template <typename T>
struct Lanes {
  alignas(32) float u[W], raw[W], dt[W], dtu[W], z[W], g[W], Dl[W], tmp[W];
  // The item's D (zero past w, and without D).
  void load_D(const ScanOptions& o, const ScanPtrs<T>& a, const Item& it) {
    std::fill(Dl, Dl + W, 0.0f);
    if (o.has_D) std::copy(a.Dv + it.d0, a.Dv + it.d0 + it.w, Dl);
  }
  // Lanes past w stay zero (u, delta, z, dout; A too, in the item's
  // transpose), so they carry zero states and add nothing to any sum.
  void load(const ScanOptions& o, const ScanPtrs<T>& a, const Item& it, int64_t l, bool grad) {
    const int64_t row = (it.b * a.L + l) * a.D + it.d0;
    load_lanes(a.u + row, it.w, u);
    load_lanes(a.delta + row, it.w, raw);
    if (o.has_bias) {
      load_lanes(a.bias + it.d0, it.w, tmp);
      for (int64_t j = 0; j < W; ++j) raw[j] += tmp[j];
    }
    if (o.has_z) load_lanes(a.z + row, it.w, z);
    if (grad) load_lanes(a.dout + row, it.w, g);
    step_sizes(raw, u, o.softplus, dt, dtu);
  }
};

// B or C at position l, state n, lane j: a per-step row (one value for every
// lane) or the item's [N][W] transpose of a time-invariant [D, N].
struct Coef {
  const float* row;  // [N] of this position, or null
  const float* fixed;  // [N][W]
  // The W lanes of state n: the fixed [N][W] row, or the step's value
  // broadcast into buf.
  const float* lanes(int64_t n, float* buf) const {
    if (!row) return fixed + n * W;
    std::fill(buf, buf + W, row[n]);
    return buf;
  }
};

template <typename T>
const float* step_row(bool varies, const void* p, int64_t b, int64_t l, int64_t L, int64_t N,
                      float* buf) {
  if (!varies) return nullptr;
  const T* r = static_cast<const T*>(p) + (b * L + l) * N;
  for (int64_t n = 0; n < N; ++n) buf[n] = static_cast<float>(r[n]);
  return buf;
}

// y[j] += sum_n h[n][j] C_n[j], four states per pass: y is loaded and stored
// once per four states (summed one state at a time, each add waited on the
// store of the last: 22% of a forward at B=32 L=100 D=256 N=16, perf).
__attribute__((target_clones("avx512f", "avx2", "default")))
void add_readout(const float* __restrict h, Coef C, float* __restrict y, int64_t N) {
  alignas(64) float b0[W], b1[W], b2[W], b3[W];
  int64_t n = 0;
  for (; n + 4 <= N; n += 4) {
    const float *c0 = C.lanes(n, b0), *c1 = C.lanes(n + 1, b1), *c2 = C.lanes(n + 2, b2),
                *c3 = C.lanes(n + 3, b3);
    const float *h0 = h + n * W, *h1 = h0 + W, *h2 = h1 + W, *h3 = h2 + W;
    for (int64_t j = 0; j < W; ++j)
      y[j] += (h0[j] * c0[j] + h1[j] * c1[j]) + (h2[j] * c2[j] + h3[j] * c3[j]);
  }
  for (; n < N; ++n) {
    const float* c = C.lanes(n, b0);
    for (int64_t j = 0; j < W; ++j) y[j] += h[n * W + j] * c[j];
  }
}

// The states after position l from those before (prev -> cur, [N][W],
// distinct buffers); y (if not null) gets sum_n h C (add_readout); decay (if
// not null) keeps each state's exp(dt A) for the backward's walk, which
// then computes no exp of its own (the walk's exps were about a third of
// reverse_position, itself 27% of a forward+backward at B=32 L=100 D=256
// N=16, perf). In place, GCC's runtime alias check failed and the scalar
// loop ran (restrict and two buffers).
__attribute__((target_clones("avx512f", "avx2", "default")))
void advance(const float* __restrict prev, float* __restrict cur,
                    const float* __restrict At, const float* __restrict dt,
                    const float* __restrict dtu, Coef B, Coef C, float* __restrict y,
                    float* __restrict decay, int64_t N) {
  alignas(64) float local[W];
  for (int64_t n = 0; n < N; ++n) {
    const float* An = At + n * W;
    const float* p = prev + n * W;
    float* h = cur + n * W;
    float* a = decay ? decay + n * W : local;
    for (int64_t j = 0; j < W; ++j) a[j] = FS_EXPF(dt[j] * An[j]);
    if (B.row) {
      const float bn = B.row[n];
      for (int64_t j = 0; j < W; ++j) h[j] = fs::scan::state_update(p[j], a[j], dtu[j], bn);
    } else {
      const float* Bn = B.fixed + n * W;
      for (int64_t j = 0; j < W; ++j) h[j] = fs::scan::state_update(p[j], a[j], dtu[j], Bn[j]);
    }
  }
  if (y) add_readout(cur, C, y, N);
}

// sum_j x[j] in a fixed order through 8 lanes (vectorizes; deterministic).
inline float lane_sum(const float* x) {
  float acc[8] = {};
  for (int64_t j = 0; j < W; j += 8)
    for (int k = 0; k < 8; ++k) acc[k] += x[j + k];
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

// y = sum_n h[n] C[n] (the forward's sum, for the gate's gradient in the
// backward; the same order as the forward's).
void readout(const float* __restrict h, Coef C, float* __restrict y, int64_t N) {
  std::fill(y, y + W, 0.0f);
  add_readout(h, C, y, N);
}

// One position of the reverse scan for the item's lanes and every state n:
// gh (dL/dh, [N][W]) goes from after the position to before it; ddt, du and
// dA gain this position's terms; dB and dC go to the step's rows pB / pC
// (summed over lanes, lane_sum) when B / C vary, else to dBf / dCf [N][W].
// Compiled for AVX-512, AVX2 and the baseline, picked at load (as advance).
__attribute__((target_clones("avx512f", "avx2", "default")))
void reverse_position(const float* __restrict prev, const float* __restrict cur,
                      const float* __restrict At, const float* __restrict decay,
                      const float* __restrict dt,
                      const float* __restrict u, const float* __restrict gy, Coef B, Coef C,
                      float* __restrict gh, float* __restrict dA, float* __restrict dBf,
                      float* __restrict dCf, float* __restrict ddt, float* __restrict du,
                      float* pB, float* pC, int64_t N) {
  alignas(64) float bb[W], cb[W], xb[W], xc[W];
  for (int64_t n = 0; n < N; ++n) {
    const float* Bn = B.lanes(n, bb);
    const float* Cn = C.lanes(n, cb);
    const float* An = At + n * W;
    const float* hp = prev + n * W;
    const float* hc = cur + n * W;
    float* ghn = gh + n * W;
    float* dAn = dA + n * W;
    for (int64_t j = 0; j < W; ++j) {
      const float gn = ghn[j] + Cn[j] * gy[j];
      const auto sg = fs::scan::state_grad(gn, hp[j], decay[n * W + j], An[j], Bn[j], dt[j],
                                           u[j]);
      xc[j] = hc[j] * gy[j];
      xb[j] = sg.dB;
      ddt[j] += sg.ddt;
      du[j] += sg.du;
      dAn[j] += sg.dA;
      ghn[j] = sg.dh_prev;
    }
    if (pC) pC[n] = lane_sum(xc);
    else for (int64_t j = 0; j < W; ++j) dCf[n * W + j] += xc[j];
    if (pB) pB[n] = lane_sum(xb);
    else for (int64_t j = 0; j < W; ++j) dBf[n * W + j] += xb[j];
  }
}

template <typename T>
void scan_forward(const ScanOptions& o, const ScanPtrs<T>& a) {
  const int64_t G = (a.D + W - 1) / W, N = a.N, L = a.L;
  cpu::parallel_for(a.Bt * G, L * W * N, [&](int64_t i0, int64_t i1) {
    std::vector<float> h(N * W), h2(N * W), At(N * W), Bf(N * W), Cf(N * W), brow(N), crow(N);
    Lanes<T> v;
    alignas(32) float y[W];
    for (int64_t ii = i0; ii < i1; ++ii) {
      const Item it{ii / G, (ii % G) * W, std::min(W, a.D - (ii % G) * W)};
      transpose_in(a.A, it, N, At.data());
      if (!o.B_varies) transpose_in(static_cast<const float*>(a.B), it, N, Bf.data());
      if (!o.C_varies) transpose_in(static_cast<const float*>(a.C), it, N, Cf.data());
      v.load_D(o, a, it);
      if (o.has_h0) transpose_in(a.h0 + it.b * a.D * N, it, N, h.data());
      else std::fill(h.begin(), h.end(), 0.0f);
      for (int64_t l = 0; l < L; ++l) {
        if (l % a.K == 0) transpose_out(h.data(), it, N, a.chk + (it.b * a.nchk + l / a.K) * a.D * N);
        v.load(o, a, it, l, false);
        const Coef B{step_row<T>(o.B_varies, a.B, it.b, l, L, N, brow.data()), Bf.data()};
        const Coef C{step_row<T>(o.C_varies, a.C, it.b, l, L, N, crow.data()), Cf.data()};
        std::fill(y, y + W, 0.0f);
        advance(h.data(), h2.data(), At.data(), v.dt, v.dtu, B, C, y, nullptr, N);
        h.swap(h2);
        const int64_t row = (it.b * L + l) * a.D + it.d0;
        finish_y(y, v.Dl, v.u, v.z, o.has_z);
        store_lanes(y, it.w, a.out + row);
      }
      transpose_out(h.data(), it, N, a.last + it.b * a.D * N);
    }
  }, /*align=*/1);
}

// dst[j] = sum over k < parts of src[k * n + j], in k order: the partial
// sums of the items reduced in a fixed order, whatever the thread count.
void sum_parts(float* dst, const std::vector<float>& src, int64_t parts, int64_t n) {
  cpu::parallel_for(n, parts, [&](int64_t j0, int64_t j1) {
    for (int64_t j = j0; j < j1; ++j) {
      float acc = 0.0f;
      for (int64_t k = 0; k < parts; ++k) acc += src[k * n + j];
      dst[j] = acc;
    }
  });
}

// The reverse scan. Each item writes its partial sums (dA, dD, dbias over
// its positions; dB, dC over its channels) to scratch, and the sums over
// items follow in a fixed order (sum_parts): the op's outputs are final, so
// no MLX reduction follows the primitive.
template <typename T>
void scan_backward(const ScanOptions& o, const ScanPtrs<T>& a) {
  const int64_t G = (a.D + W - 1) / W, N = a.N, L = a.L, K = a.K, Bt = a.Bt, DN = a.D * N;
  std::vector<float> pA(Bt * DN), pB(o.B_varies ? G * Bt * L * N : Bt * DN),
      pC(o.C_varies ? G * Bt * L * N : Bt * DN), pD(Bt * a.D), pbias(Bt * a.D);
  cpu::parallel_for(Bt * G, 3 * L * W * N, [&](int64_t i0, int64_t i1) {
    const int64_t S = N * W;
    std::vector<float> hs(K * S), as(K * S), h_in(S), gh(S), At(S), Bf(S), Cf(S), dA(S),
        dBf(S), dCf(S), brow(N), crow(N);
    Lanes<T> v;
    alignas(32) float y[W], gy[W], du[W], ddt[W], dD[W], dbias[W];
    for (int64_t ii = i0; ii < i1; ++ii) {
      const int64_t g = ii % G;
      const Item it{ii / G, g * W, std::min(W, a.D - g * W)};
      transpose_in(a.A, it, N, At.data());
      if (!o.B_varies) transpose_in(static_cast<const float*>(a.B), it, N, Bf.data());
      if (!o.C_varies) transpose_in(static_cast<const float*>(a.C), it, N, Cf.data());
      transpose_in(a.dlast + it.b * a.D * N, it, N, gh.data());
      v.load_D(o, a, it);
      for (auto* x : {&dA, &dBf, &dCf}) std::fill(x->begin(), x->end(), 0.0f);
      std::fill(dD, dD + W, 0.0f);
      std::fill(dbias, dbias + W, 0.0f);
      for (int64_t c = a.nchk - 1; c >= 0; --c) {
        const int64_t l0 = c * K, l1 = std::min(L, l0 + K);
        transpose_in(a.chk_in + (it.b * a.nchk + c) * a.D * N, it, N, h_in.data());
        for (int64_t l = l0; l < l1; ++l) {  // the chunk's states, recomputed
          v.load(o, a, it, l, false);
          const Coef B{step_row<T>(o.B_varies, a.B, it.b, l, L, N, brow.data()), Bf.data()};
          advance(l == l0 ? h_in.data() : hs.data() + (l - l0 - 1) * S, hs.data() + (l - l0) * S,
                  At.data(), v.dt, v.dtu, B, Coef{nullptr, Cf.data()}, nullptr,
                  as.data() + (l - l0) * S, N);
        }
        for (int64_t l = l1 - 1; l >= l0; --l) {
          const float* prev = l == l0 ? h_in.data() : hs.data() + (l - l0 - 1) * S;
          const float* cur = hs.data() + (l - l0) * S;
          v.load(o, a, it, l, true);
          const Coef B{step_row<T>(o.B_varies, a.B, it.b, l, L, N, brow.data()), Bf.data()};
          const Coef C{step_row<T>(o.C_varies, a.C, it.b, l, L, N, crow.data()), Cf.data()};
          const int64_t row = (it.b * L + l) * a.D + it.d0;
          if (o.has_z) {  // y again, for the gate's gradient
            readout(cur, C, y, N);
            gate_lanes(v.g, y, v.Dl, v.u, v.z, gy, v.tmp);
            store_lanes(v.tmp, it.w, a.dz + row);
          } else {
            std::copy(v.g, v.g + W, gy);
          }
          for (int64_t j = 0; j < W; ++j) {
            du[j] = v.Dl[j] * gy[j];
            dD[j] += gy[j] * v.u[j];
            ddt[j] = 0.0f;
          }
          reverse_position(prev, cur, At.data(), as.data() + (l - l0) * S, v.dt, v.u, gy, B, C,
                           gh.data(), dA.data(), dBf.data(), dCf.data(), ddt, du,
                           B.row ? pB.data() + ((g * Bt + it.b) * L + l) * N : nullptr,
                           C.row ? pC.data() + ((g * Bt + it.b) * L + l) * N : nullptr, N);
          if (o.softplus) sigmoid_scale(ddt, v.raw);
          for (int64_t j = 0; j < W; ++j) dbias[j] += ddt[j];
          store_lanes(du, it.w, a.du + row);
          store_lanes(ddt, it.w, a.ddelta + row);
        }
      }
      transpose_out(dA.data(), it, N, pA.data() + it.b * DN);
      if (!o.B_varies) transpose_out(dBf.data(), it, N, pB.data() + it.b * DN);
      if (!o.C_varies) transpose_out(dCf.data(), it, N, pC.data() + it.b * DN);
      if (o.has_h0) transpose_out(gh.data(), it, N, a.dh0 + it.b * DN);
      for (int64_t j = 0; j < it.w; ++j) {
        pD[it.b * a.D + it.d0 + j] = dD[j];
        pbias[it.b * a.D + it.d0 + j] = dbias[j];
      }
    }
  }, /*align=*/1);
  sum_parts(a.dA, pA, Bt, DN);
  sum_parts(a.dB, pB, o.B_varies ? G : Bt, o.B_varies ? Bt * L * N : DN);
  sum_parts(a.dC, pC, o.C_varies ? G : Bt, o.C_varies ? Bt * L * N : DN);
  if (o.has_D) sum_parts(a.dD, pD, Bt, a.D);
  if (o.has_bias) sum_parts(a.dbias, pbias, Bt, a.D);
}

template <typename T>
ScanPtrs<T> inputs_of(const ScanOptions& o, const std::vector<mx::array>& in) {
  const ScanLayout lay{o};
  ScanPtrs<T> a{};
  a.u = in[0].data<T>();
  a.delta = in[1].data<T>();
  a.A = in[2].data<float>();
  a.B = in[3].data<void>();
  a.C = in[4].data<void>();
  a.Dv = o.has_D ? in[lay.D()].data<float>() : nullptr;
  a.z = o.has_z ? in[lay.z()].data<T>() : nullptr;
  a.bias = o.has_bias ? in[lay.bias()].data<float>() : nullptr;
  a.h0 = o.has_h0 ? in[lay.h0()].data<float>() : nullptr;
  a.Bt = in[0].shape(0);
  a.L = in[0].shape(1);
  a.D = in[0].shape(2);
  a.N = in[2].shape(1);
  a.K = o.chunk;
  a.nchk = (a.L + a.K - 1) / a.K;
  return a;
}

void encode(const mx::Stream& s, const std::vector<mx::array>& inputs,
            std::vector<mx::array>& outputs) {
  for (const auto& in : inputs) check_row_contiguous("selective_scan", in);
  for (auto& o : outputs) alloc_output(o, s);
  auto& enc = mx::cpu::get_command_encoder(s);
  for (const auto& in : inputs) enc.set_input_array(in);
  for (auto& out : outputs) enc.set_output_array(out);
}

}  // namespace

void ScanForward::eval_cpu(const std::vector<mx::array>& inputs,
                           std::vector<mx::array>& outputs) {
  encode(stream(), inputs, outputs);
  auto& enc = mx::cpu::get_command_encoder(stream());
  const ScanOptions o = o_;
  dispatch_kernel_dtype("selective_scan", inputs[0].dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    ScanPtrs<T> a = inputs_of<T>(o, inputs);
    a.out = outputs[0].data<T>();
    a.last = outputs[1].data<float>();
    a.chk = outputs[2].data<float>();
    enc.dispatch([o, a]() { scan_forward<T>(o, a); });
  });
}

void ScanBackward::eval_cpu(const std::vector<mx::array>& inputs,
                            std::vector<mx::array>& outputs) {
  encode(stream(), inputs, outputs);
  auto& enc = mx::cpu::get_command_encoder(stream());
  const ScanOptions o = o_;
  const int n = ScanLayout{o}.inputs();
  dispatch_kernel_dtype("selective_scan", inputs[0].dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    ScanPtrs<T> a = inputs_of<T>(o, inputs);
    a.chk_in = inputs[n].data<float>();
    a.dout = inputs[n + 1].data<T>();
    a.dlast = inputs[n + 2].data<float>();
    a.du = outputs[0].data<T>();
    a.ddelta = outputs[1].data<T>();
    a.dA = outputs[2].data<float>();
    a.dB = outputs[3].data<float>();
    a.dC = outputs[4].data<float>();
    a.dD = o.has_D ? outputs[5].data<float>() : nullptr;
    a.dz = o.has_z ? outputs[6].data<T>() : nullptr;
    a.dbias = o.has_bias ? outputs[7].data<float>() : nullptr;
    a.dh0 = o.has_h0 ? outputs[8].data<float>() : nullptr;
    enc.dispatch([o, a]() { scan_backward<T>(o, a); });
  });
}

}  // namespace flashsnn

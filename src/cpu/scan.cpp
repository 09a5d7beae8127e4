// The selective scan on the CPU: eval_cpu of both primitives and their loops.
// One work item is (batch row b, a group of kScanGroup channels): its states
// [group, N] stay in a small local array for all L positions, each position
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

// Row l of a per-step B or C of batch b as float (n values), or null for a
// time-invariant one (read per channel instead).
template <typename T>
const float* step_row(const ScanOptions&, bool varies, const void* p, int64_t b, int64_t l,
                      int64_t L, int64_t N, float* buf) {
  if (!varies) return nullptr;
  const T* r = static_cast<const T*>(p) + (b * L + l) * N;
  for (int64_t n = 0; n < N; ++n) buf[n] = static_cast<float>(r[n]);
  return buf;
}

// The coefficient row of channel d: the step's row, or [D, N]'s row d.
inline const float* coef(const float* row, const void* p, int64_t d, int64_t N) {
  return row ? row : static_cast<const float*>(p) + d * N;
}

template <typename T>
void scan_forward(const ScanOptions& o, const ScanPtrs<T>& a) {
  const int64_t G = (a.D + kScanGroup - 1) / kScanGroup, N = a.N, L = a.L;
  cpu::parallel_for(a.Bt * G, L * kScanGroup * N, [&](int64_t i0, int64_t i1) {
    std::vector<float> h(kScanGroup * N), brow(N), crow(N);
    for (int64_t it = i0; it < i1; ++it) {
      const int64_t b = it / G, d0 = (it % G) * kScanGroup, d1 = std::min(a.D, d0 + kScanGroup);
      for (int64_t d = d0; d < d1; ++d)
        for (int64_t n = 0; n < N; ++n)
          h[(d - d0) * N + n] = o.has_h0 ? a.h0[(b * a.D + d) * N + n] : 0.0f;
      for (int64_t l = 0; l < L; ++l) {
        if (l % a.K == 0) {
          float* c = a.chk + ((b * a.nchk + l / a.K) * a.D + d0) * N;
          std::copy(h.begin(), h.begin() + (d1 - d0) * N, c);
        }
        const float* br = step_row<T>(o, o.B_varies, a.B, b, l, L, N, brow.data());
        const float* cr = step_row<T>(o, o.C_varies, a.C, b, l, L, N, crow.data());
        const int64_t row = (b * L + l) * a.D;
        for (int64_t d = d0; d < d1; ++d) {
          const float uu = static_cast<float>(a.u[row + d]);
          const float dt = fs::scan::step_size(static_cast<float>(a.delta[row + d]),
                                               o.has_bias ? a.bias[d] : 0.0f, o.softplus);
          const float dtu = dt * uu;
          const float* Ad = a.A + d * N;
          const float* Bd = coef(br, a.B, d, N);
          const float* Cd = coef(cr, a.C, d, N);
          float* hd = h.data() + (d - d0) * N;
          float y = 0.0f;
          for (int64_t n = 0; n < N; ++n) {
            hd[n] = fs::scan::state_update(hd[n], FS_EXPF(dt * Ad[n]), dtu, Bd[n]);
            y += hd[n] * Cd[n];
          }
          if (o.has_D) y += a.Dv[d] * uu;
          if (o.has_z) y = fs::scan::gate(y, static_cast<float>(a.z[row + d]));
          a.out[row + d] = static_cast<T>(y);
        }
      }
      for (int64_t d = d0; d < d1; ++d)
        std::copy(h.begin() + (d - d0) * N, h.begin() + (d - d0 + 1) * N,
                  a.last + (b * a.D + d) * N);
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
// its positions; dB, dC over its channels) to scratch `p`, and the sums over
// items follow in a fixed order (sum_parts): the op's outputs are final, so
// no MLX reduction follows the primitive.
template <typename T>
void scan_backward(const ScanOptions& o, ScanPtrs<T> out) {
  const int64_t G = (out.D + kScanGroup - 1) / kScanGroup, N = out.N, L = out.L, K = out.K;
  const int64_t Bt = out.Bt, DN = out.D * N;
  std::vector<float> pA(Bt * DN), pB(o.B_varies ? G * Bt * L * N : Bt * DN),
      pC(o.C_varies ? G * Bt * L * N : Bt * DN), pD(Bt * out.D), pbias(Bt * out.D);
  ScanPtrs<T> a = out;
  a.dA = pA.data();
  a.dB = pB.data();
  a.dC = pC.data();
  a.dD = pD.data();
  a.dbias = pbias.data();
  cpu::parallel_for(a.Bt * G, 3 * L * kScanGroup * N, [&](int64_t i0, int64_t i1) {
    const int64_t S = kScanGroup * N;
    std::vector<float> hs(K * S), gh(S), dA(S), dBi(S), dCi(S), brow(N), crow(N),
        dbrow(N), dcrow(N), dD(kScanGroup), dbias(kScanGroup);
    for (int64_t it = i0; it < i1; ++it) {
      const int64_t g = it % G, b = it / G, d0 = g * kScanGroup;
      const int64_t d1 = std::min(a.D, d0 + kScanGroup), w = (d1 - d0) * N;
      std::copy(a.dlast + (b * a.D + d0) * N, a.dlast + (b * a.D + d0) * N + w, gh.begin());
      std::fill(dA.begin(), dA.end(), 0.0f);
      std::fill(dBi.begin(), dBi.end(), 0.0f);
      std::fill(dCi.begin(), dCi.end(), 0.0f);
      std::fill(dD.begin(), dD.end(), 0.0f);
      std::fill(dbias.begin(), dbias.end(), 0.0f);
      for (int64_t c = a.nchk - 1; c >= 0; --c) {
        const int64_t l0 = c * K, l1 = std::min(L, l0 + K);
        const float* h_in = a.chk_in + ((b * a.nchk + c) * a.D + d0) * N;
        // The states of the chunk's positions, recomputed from its entry.
        for (int64_t l = l0; l < l1; ++l) {
          const float* prev = l == l0 ? h_in : hs.data() + (l - l0 - 1) * S;
          float* cur = hs.data() + (l - l0) * S;
          const float* br = step_row<T>(o, o.B_varies, a.B, b, l, L, N, brow.data());
          const int64_t row = (b * L + l) * a.D;
          for (int64_t d = d0; d < d1; ++d) {
            const float dt = fs::scan::step_size(static_cast<float>(a.delta[row + d]),
                                                 o.has_bias ? a.bias[d] : 0.0f, o.softplus);
            const float dtu = dt * static_cast<float>(a.u[row + d]);
            const float* Bd = coef(br, a.B, d, N);
            const int64_t k = (d - d0) * N;
            for (int64_t n = 0; n < N; ++n)
              cur[k + n] = fs::scan::state_update(prev[k + n], FS_EXPF(dt * a.A[d * N + n]), dtu,
                                                  Bd[n]);
          }
        }
        for (int64_t l = l1 - 1; l >= l0; --l) {
          const float* prev = l == l0 ? h_in : hs.data() + (l - l0 - 1) * S;
          const float* cur = hs.data() + (l - l0) * S;
          const float* br = step_row<T>(o, o.B_varies, a.B, b, l, L, N, brow.data());
          const float* cr = step_row<T>(o, o.C_varies, a.C, b, l, L, N, crow.data());
          std::fill(dbrow.begin(), dbrow.end(), 0.0f);
          std::fill(dcrow.begin(), dcrow.end(), 0.0f);
          const int64_t row = (b * L + l) * a.D;
          for (int64_t d = d0; d < d1; ++d) {
            const float raw = static_cast<float>(a.delta[row + d]) + (o.has_bias ? a.bias[d] : 0.0f);
            const float dt = o.softplus ? fs::scan::softplus(raw) : raw;
            const float uu = static_cast<float>(a.u[row + d]);
            const float* Ad = a.A + d * N;
            const float* Bd = coef(br, a.B, d, N);
            const float* Cd = coef(cr, a.C, d, N);
            const int64_t k = (d - d0) * N;
            const float gout = static_cast<float>(a.dout[row + d]);
            float gy = gout;
            if (o.has_z) {
              float y = 0.0f;
              for (int64_t n = 0; n < N; ++n) y += cur[k + n] * Cd[n];
              if (o.has_D) y += a.Dv[d] * uu;
              const auto gg = fs::scan::gate_grad(gout, y, static_cast<float>(a.z[row + d]));
              gy = gg.dy;
              a.dz[row + d] = static_cast<T>(gg.dz);
            }
            float du = 0.0f, ddt = 0.0f;
            if (o.has_D) {
              du = a.Dv[d] * gy;
              dD[d - d0] += gy * uu;
            }
            for (int64_t n = 0; n < N; ++n) {
              const float g_n = gh[k + n] + Cd[n] * gy;
              const float dc = cur[k + n] * gy;
              const auto sg = fs::scan::state_grad(g_n, prev[k + n], FS_EXPF(dt * Ad[n]), Ad[n],
                                                   Bd[n], dt, uu);
              if (cr) dcrow[n] += dc; else dCi[k + n] += dc;
              if (br) dbrow[n] += sg.dB; else dBi[k + n] += sg.dB;
              ddt += sg.ddt;
              du += sg.du;
              dA[k + n] += sg.dA;
              gh[k + n] = sg.dh_prev;
            }
            const float draw = o.softplus ? ddt * fs::scan::sigmoid(raw) : ddt;
            dbias[d - d0] += draw;
            a.du[row + d] = static_cast<T>(du);
            a.ddelta[row + d] = static_cast<T>(draw);
          }
          if (br) std::copy(dbrow.begin(), dbrow.end(), a.dB + ((g * a.Bt + b) * L + l) * N);
          if (cr) std::copy(dcrow.begin(), dcrow.end(), a.dC + ((g * a.Bt + b) * L + l) * N);
        }
      }
      const int64_t off = (b * a.D + d0) * N;
      std::copy(dA.begin(), dA.begin() + w, a.dA + off);
      if (!o.B_varies) std::copy(dBi.begin(), dBi.begin() + w, a.dB + off);
      if (!o.C_varies) std::copy(dCi.begin(), dCi.begin() + w, a.dC + off);
      if (o.has_h0) std::copy(gh.begin(), gh.begin() + w, a.dh0 + off);
      for (int64_t d = d0; d < d1; ++d) {
        if (o.has_D) a.dD[b * a.D + d] = dD[d - d0];
        if (o.has_bias) a.dbias[b * a.D + d] = dbias[d - d0];
      }
    }
  }, /*align=*/1);
  sum_parts(out.dA, pA, Bt, DN);
  sum_parts(out.dB, pB, o.B_varies ? G : Bt, o.B_varies ? Bt * L * N : DN);
  sum_parts(out.dC, pC, o.C_varies ? G : Bt, o.C_varies ? Bt * L * N : DN);
  if (o.has_D) sum_parts(out.dD, pD, Bt, out.D);
  if (o.has_bias) sum_parts(out.dbias, pbias, Bt, out.D);
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

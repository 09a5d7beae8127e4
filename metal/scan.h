// Launch plans of the selective scan's Metal kernels (metal/kernels/scan.metal):
// kernel and pipeline names, function constants, buffer bindings in the
// primitives' array order (src/ops/scan.h: ScanLayout), grids, threadgroup
// sizes and memory, and the backward's scratch buffers. Plain C++, no Metal
// or MLX: used by metal/scan.cpp on macOS and by the Linux emulator
// (tests/metal), so only the encoder calls go untested off Apple hardware.
#pragma once

#include <climits>

#include "kernels/scan_layout.h"
#include "launch.h"

namespace flashsnn::metal {

// Everything a launch depends on, copied from ScanOptions and the inputs'
// shapes so that this header needs no MLX.
struct ScanLaunch {
  int64_t Bt = 0, L = 0, D = 0, N = 0;
  int64_t chunk = 64;
  bool has_D = false, has_z = false, has_bias = false, has_h0 = false, softplus = false;
  bool B_varies = true, C_varies = true;  // [Bt, L, N] in u's dtype, else [D, N] float32
  Dtype dtype = Dtype::kFloat32;

  int64_t nchk() const { return chunk > 0 ? (L + chunk - 1) / chunk : 0; }
  int64_t groups() const {
    return (D + fs::scan_layout::channels() - 1) / fs::scan_layout::channels();
  }
  // The primitives' inputs: u, delta, A, B, C, [D], [z], [bias], [h0], and
  // the backward's chk, dout, dlast after them.
  int in_D() const { return 5; }
  int in_z() const { return 5 + has_D; }
  int in_bias() const { return in_z() + has_z; }
  int in_h0() const { return in_bias() + has_bias; }
  int inputs() const { return in_h0() + has_h0; }
};

namespace scan_detail {

namespace SL = fs::scan_layout;
constexpr const char* kOp = "selective_scan";

// A size the kernels index with int: 0 .. 2^31 - 1.
inline uint32_t int_size(const char* what, int64_t v) {
  if (v < 0 || v > int64_t(INT_MAX)) {
    throw std::invalid_argument(std::string("[") + kOp + "] " + what + " = " + std::to_string(v) +
                                " is outside what the Metal kernels index (0 .. 2^31-1)");
  }
  return uint32_t(v);
}

inline void check(const ScanLaunch& l) {
  if (l.N < 1 || l.N > SL::max_states()) {
    throw std::invalid_argument(std::string("[") + kOp + "] N = " + std::to_string(l.N) +
                                " states: the Metal kernels hold 1 .. " +
                                std::to_string(SL::max_states()) + " per thread");
  }
  if (l.chunk < 1) throw std::invalid_argument(std::string("[") + kOp + "] internal: chunk < 1");
  // Offsets are 64-bit; every count, and the grids, must be int.
  int_size("batch", l.Bt);
  int_size("L", l.L);
  int_size("D", l.D);
  int_size("chunk", l.chunk);
  int_size("batch x groups x 32 (backward threads)", l.Bt * l.groups() * SL::channels());
}

inline std::vector<uint32_t> dims(const ScanLaunch& l) {
  std::vector<uint32_t> d(SL::dims_size(), 0u);
  d[SL::dims_Bt()] = uint32_t(l.Bt);
  d[SL::dims_L()] = uint32_t(l.L);
  d[SL::dims_D()] = uint32_t(l.D);
  d[SL::dims_N()] = uint32_t(l.N);
  d[SL::dims_K()] = uint32_t(l.chunk);
  d[SL::dims_nchk()] = uint32_t(l.nchk());
  return d;
}

inline std::string kernel_name(const char* dir, const ScanLaunch& l) {
  return std::string("scan_") + dir + "_" + dtype_name(l.dtype) + "_n" +
      std::to_string(SL::nmax(int(l.N)));
}

// The function constants, and the pipeline name that carries them all.
inline void options(Plan& p, const ScanLaunch& l) {
  p.constants = {FunctionConstant::boolean(SL::kFcHasD, l.has_D),
                 FunctionConstant::boolean(SL::kFcHasZ, l.has_z),
                 FunctionConstant::boolean(SL::kFcHasBias, l.has_bias),
                 FunctionConstant::boolean(SL::kFcHasH0, l.has_h0),
                 FunctionConstant::boolean(SL::kFcSoftplus, l.softplus),
                 FunctionConstant::boolean(SL::kFcBStep, l.B_varies),
                 FunctionConstant::boolean(SL::kFcBFixed, !l.B_varies),
                 FunctionConstant::boolean(SL::kFcCStep, l.C_varies),
                 FunctionConstant::boolean(SL::kFcCFixed, !l.C_varies)};
  p.pipeline = p.kernel + "_D" + std::to_string(int(l.has_D)) + "z" + std::to_string(int(l.has_z)) +
      "b" + std::to_string(int(l.has_bias)) + "h" + std::to_string(int(l.has_h0)) + "sp" +
      std::to_string(int(l.softplus)) + (l.B_varies ? "_Bstep" : "_Bfixed") +
      (l.C_varies ? "_Cstep" : "_Cfixed");
}

// u, delta, A, B, C and the optional D, z, bias: the same buffers in both
// directions, at the primitive's positions.
inline void bind_inputs(Plan& p, const ScanLaunch& l) {
  p.bindings.push_back(Binding::input(SL::in_u(), 0));
  p.bindings.push_back(Binding::input(SL::in_delta(), 1));
  p.bindings.push_back(Binding::input(SL::in_A(), 2));
  p.bindings.push_back(Binding::input(l.B_varies ? SL::in_B_step() : SL::in_B_fixed(), 3));
  p.bindings.push_back(Binding::input(l.C_varies ? SL::in_C_step() : SL::in_C_fixed(), 4));
  if (l.has_D) p.bindings.push_back(Binding::input(SL::in_D(), l.in_D()));
  if (l.has_z) p.bindings.push_back(Binding::input(SL::in_z(), l.in_z()));
  if (l.has_bias) p.bindings.push_back(Binding::input(SL::in_bias(), l.in_bias()));
}

}  // namespace scan_detail

// ScanForward: inputs u, delta, A, B, C, [D], [z], [bias], [h0]; outputs
// out, last, chk. One thread per (b, d); no dispatch without a channel.
inline PlanSet scan_forward_plans(const ScanLaunch& l) {
  namespace SL = fs::scan_layout;
  scan_detail::check(l);
  PlanSet s;
  if (l.Bt * l.D == 0) return s;
  Plan p;
  p.kernel = scan_detail::kernel_name("fwd", l);
  scan_detail::options(p, l);
  scan_detail::bind_inputs(p, l);
  if (l.has_h0) p.bindings.push_back(Binding::input(SL::fwd_h0(), l.in_h0()));
  p.bindings.push_back(Binding::output(SL::fwd_out(), 0));
  p.bindings.push_back(Binding::output(SL::fwd_last(), 1));
  p.bindings.push_back(Binding::output(SL::fwd_chk(), 2));
  p.bindings.push_back(Binding::u32s(SL::fwd_dims(), scan_detail::dims(l)));
  p.grid = uint64_t(l.Bt * l.D);
  s.plans.push_back(std::move(p));
  return s;
}

// ScanBackward: inputs the forward's, chk, dout, dlast; outputs du, ddelta,
// dA, dB, dC, dD, dz, dbias, dh0 (absent inputs' empty). The per-group
// backward, then one scan_sum per gradient that is a sum of partials
// (dA, dB, dC, dD, dbias) over batch rows or channel groups.
inline PlanSet scan_backward_plans(const ScanLaunch& l) {
  namespace SL = fs::scan_layout;
  scan_detail::check(l);
  const int64_t Bt = l.Bt, L = l.L, D = l.D, N = l.N, G = l.groups();
  const int n = l.inputs();
  PlanSet s;
  auto scratch = [&s](int64_t floats) {
    s.scratch.push_back(floats > 1 ? floats : 1);
    return int(s.scratch.size()) - 1;
  };
  const int hs = scratch(Bt * (l.chunk + 1) * N * D), pA = scratch(Bt * D * N);
  const int pB = scratch(l.B_varies ? G * Bt * L * N : Bt * D * N);
  const int pC = scratch(l.C_varies ? G * Bt * L * N : Bt * D * N);
  const int pD = l.has_D ? scratch(Bt * D) : -1;
  const int pbias = l.has_bias ? scratch(Bt * D) : -1;
  if (Bt * D > 0) {  // L = 0 too: dh0 = dlast, zero partials
    Plan p;
    p.kernel = scan_detail::kernel_name("bwd", l);
    scan_detail::options(p, l);
    scan_detail::bind_inputs(p, l);
    p.bindings.push_back(Binding::input(SL::bwd_chk(), n));
    p.bindings.push_back(Binding::input(SL::bwd_dout(), n + 1));
    p.bindings.push_back(Binding::input(SL::bwd_dlast(), n + 2));
    p.bindings.push_back(Binding::output(SL::bwd_du(), 0));
    p.bindings.push_back(Binding::output(SL::bwd_ddelta(), 1));
    if (l.has_z) p.bindings.push_back(Binding::output(SL::bwd_dz(), 6));
    if (l.has_h0) p.bindings.push_back(Binding::output(SL::bwd_dh0(), 8));
    p.bindings.push_back(Binding::scratch(SL::bwd_hs(), hs));
    p.bindings.push_back(Binding::scratch(SL::bwd_pA(), pA));
    p.bindings.push_back(Binding::scratch(SL::bwd_pB(), pB));
    p.bindings.push_back(Binding::scratch(SL::bwd_pC(), pC));
    if (l.has_D) p.bindings.push_back(Binding::scratch(SL::bwd_pD(), pD));
    if (l.has_bias) p.bindings.push_back(Binding::scratch(SL::bwd_pbias(), pbias));
    p.bindings.push_back(Binding::u32s(SL::bwd_dims(), scan_detail::dims(l)));
    p.grid = uint64_t(Bt * G * SL::channels());
    p.group = uint32_t(SL::channels());
    p.threadgroup_bytes = uint32_t(SL::red_floats(SL::nmax(int(N))) * sizeof(float));
    s.plans.push_back(std::move(p));
  }
  // With no batch row or channel, zero parts give zeros.
  auto sum = [&s](int src, int output, int64_t parts, int64_t size) {
    if (size == 0) return;
    Plan p;
    p.kernel = p.pipeline = "scan_sum";
    p.bindings.push_back(Binding::scratch(SL::sum_src(), src));
    p.bindings.push_back(Binding::output(SL::sum_dst(), output));
    p.bindings.push_back(Binding::u32s(
        SL::sum_dims(), {scan_detail::int_size("parts", parts), scan_detail::int_size("size", size)}));
    p.grid = uint64_t(size);
    s.plans.push_back(std::move(p));
  };
  sum(pA, 2, Bt, D * N);
  sum(pB, 3, l.B_varies ? G : Bt, l.B_varies ? Bt * L * N : D * N);
  sum(pC, 4, l.C_varies ? G : Bt, l.C_varies ? Bt * L * N : D * N);
  if (l.has_D) sum(pD, 5, Bt, D);
  if (l.has_bias) sum(pbias, 7, Bt, D);
  return s;
}

}  // namespace flashsnn::metal

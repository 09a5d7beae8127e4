// Leaky on the CPU: loops around src/step/leaky.h.
//
// Neurons are split across threads; each thread walks blocks of kBlock
// neurons through all T steps, so a block's state stays in cache while x,
// spikes and h stream through once. Each step of a block is a loop with no
// branches (outputs nobody wants go to scratch rows; the surrogate's switch
// is hoisted into its own loop), which GCC vectorizes, and target_clones
// builds an AVX2 copy beside the baseline one. Blocks of 2048 neurons (8 KB a
// row) beat 256 (1 KB rows, ~2x slower) at T=100 B=32 N=1024 on a 2-core
// EPYC; larger blocks and software prefetching made no difference there.
//
// These layers are DRAM-bound: forward+backward at T=100 B=32 N=1024 moves
// about 117 MB (x, spikes and h written with their read-for-ownership, then
// h, the spike cotangent and dx), ~5.8 ms at the ~20 GB/s two threads
// reached in a streaming microbenchmark. Streaming (non-temporal) stores,
// which would skip the read-for-ownership, measured slower on that machine
// (12 vs 17 GB/s for a read+write stream), so the kernels use plain stores.
#include <algorithm>

#include "mlx/allocator.h"
#include "mlx/backend/cpu/encoder.h"
#include "mlx/dtype_utils.h"

#include "../ops/common.h"
#include "../ops/dispatch.h"
#include "../ops/leaky.h"
#include "../step/leaky.h"
#include "parallel.h"

namespace flashsnn {

namespace {

constexpr int64_t kBlock = 2048;

// An AVX2 copy of each range loop beside the baseline one, picked at load
// time (x86-64 only; other targets build the one version).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define FS_CPU_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define FS_CPU_CLONES
#endif
// Row helpers are inlined into the range loops, so that each clone of those
// compiles them for its own instruction set (a helper left out of line ran
// its divisions in SSE inside the AVX2 clone).
#define FS_ROW inline __attribute__((always_inline))

template <typename T>
inline void load_row(const T* __restrict src, float* __restrict dst, int64_t n) {
  for (int64_t k = 0; k < n; ++k) dst[k] = static_cast<float>(src[k]);
}

template <typename T>
inline void store_row(const float* __restrict src, T* __restrict dst, int64_t n) {
  for (int64_t k = 0; k < n; ++k) dst[k] = static_cast<T>(src[k]);
}

// Parameters of neurons j0 .. j0+n-1 (p[i % P]).
inline void load_suffix(const float* p, int64_t P, int64_t j0, float* __restrict dst,
                        int64_t n) {
  for (int64_t k = 0; k < n; ++k) dst[k] = p[(j0 + k) % P];
}

template <typename T>
struct FwdArgs {
  const T* x;
  const float* mem;
  const float* beta;
  const float* th;
  T* spk;
  T* mem_out;
  float* h;  // null when not saved
  float* u;  // null unless kImmediate and saved
  LeakyDims d;
  bool mem_all;
};

// One step for n neurons. Outputs that the caller does not want go to
// scratch rows, so the loop has no branches and vectorizes.
template <typename T, int RESET, int MODE>
FS_ROW void forward_row(const T* __restrict x, const float* __restrict b,
                        const float* __restrict th, float* __restrict u, T* __restrict spk,
                        float* __restrict h, float* __restrict u_out, T* __restrict mem_out,
                        int64_t n) {
  for (int64_t k = 0; k < n; ++k) {
    auto r = fs::leaky_forward<RESET, MODE>(u[k], static_cast<float>(x[k]), b[k], th[k]);
    spk[k] = static_cast<T>(r.s);
    h[k] = r.h;
    u_out[k] = r.u;
    mem_out[k] = static_cast<T>(r.u);
    u[k] = r.u;
  }
}

template <typename T, int RESET, int MODE>
FS_CPU_CLONES void forward_range(
    const FwdArgs<T>& a, int64_t i0, int64_t i1) {
  const int64_t N = a.d.N;
  std::vector<float> buf(5 * kBlock);
  std::vector<T> tbuf(kBlock);
  float *ub = buf.data(), *bb = ub + kBlock, *tb = bb + kBlock, *hs = tb + kBlock,
        *us = hs + kBlock;
  T* ms = tbuf.data();
  for (int64_t j0 = i0; j0 < i1; j0 += kBlock) {
    const int64_t n = std::min(kBlock, i1 - j0);
    load_suffix(a.mem, a.d.P_mem, j0, ub, n);
    load_suffix(a.beta, a.d.P_beta, j0, bb, n);
    load_suffix(a.th, a.d.P_th, j0, tb, n);
    for (int64_t k = 0; k < n; ++k) bb[k] = fs::clamp_unit(bb[k]);
    for (int64_t t = 0; t < a.d.T; ++t) {
      const int64_t o = t * N + j0;
      forward_row<T, RESET, MODE>(a.x + o, bb, tb, ub, a.spk + o, a.h ? a.h + o : hs,
                                  a.u ? a.u + o : us, a.mem_all ? a.mem_out + o : ms, n);
    }
    if (!a.mem_all) store_row(ub, a.mem_out + j0, n);
  }
}

template <typename T>
struct BwdArgs {
  const float* h;
  const float* u;  // kImmediate only
  const float* mem;
  const float* beta;
  const float* th;
  const T* dspk;
  const T* dmem;
  T* dx;
  float* dmem0;
  float* dbeta;
  float* dth;
  LeakyDims d;
  bool mem_all;
  fs::Surrogate g;
  bool detach;
};

// sg[k] = leaky_slope(h[k]); the surrogate id is a template argument here so
// that its switch folds away and the loop vectorizes.
template <int MODE, int ID>
FS_ROW void slope_row(fs::Surrogate g, const float* __restrict h, const float* __restrict th,
               float* __restrict sg, int64_t n) {
  const fs::Surrogate c{ID, g.a, g.b};
  for (int64_t k = 0; k < n; ++k) sg[k] = fs::leaky_slope<MODE>(c, h[k], th[k]);
}

template <int MODE>
FS_ROW void slope_row(fs::Surrogate g, const float* h, const float* th, float* sg, int64_t n) {
  switch (g.id) {
#define FS_SLOPE_CASE(ID, NAME) \
  case fs::ID:                  \
    return slope_row<MODE, fs::ID>(g, h, th, sg, n);
    FS_FOR_EACH_SURROGATE(FS_SLOPE_CASE)
#undef FS_SLOPE_CASE
    default:
      fail("leaky", "internal: surrogate id without a CPU case");
  }
}

// One reverse step for n neurons. prev is the membrane carried into the step
// (CARRIED: recompute it from the previous step's h instead); dm is the
// membrane cotangent at this step (a zero row when only the last counts).
template <typename T, int RESET, int MODE, bool CARRIED>
FS_ROW void backward_row(const float* __restrict h, const float* __restrict prev,
                         const T* __restrict ds, const T* __restrict dm,
                         const float* __restrict b, const float* __restrict th,
                         const float* __restrict sg, float* __restrict gu,
                         float* __restrict gb, float* __restrict gt, T* __restrict dx,
                         bool detach, int64_t n) {
  for (int64_t k = 0; k < n; ++k) {
    float up = CARRIED ? fs::leaky_carried<RESET, MODE>(prev[k], th[k]) : prev[k];
    float du = gu[k] + static_cast<float>(dm[k]);
    auto r = fs::leaky_backward<RESET, MODE>(h[k], up, b[k], th[k], static_cast<float>(ds[k]),
                                             du, sg[k], detach);
    dx[k] = static_cast<T>(r.dx);
    gu[k] = r.du_prev;
    gb[k] += r.dbeta;
    gt[k] += r.dth;
  }
}

template <typename T, int RESET, int MODE>
FS_CPU_CLONES void backward_range(
    const BwdArgs<T>& a, int64_t i0, int64_t i1) {
  const int64_t N = a.d.N;
  std::vector<float> buf(7 * kBlock);
  float *gu = buf.data(), *gb = gu + kBlock, *gt = gb + kBlock, *bb = gt + kBlock,
        *tb = bb + kBlock, *m0 = tb + kBlock, *sg = m0 + kBlock;
  const std::vector<T> zeros(kBlock, static_cast<T>(0.0f));
  for (int64_t j0 = i0; j0 < i1; j0 += kBlock) {
    const int64_t n = std::min(kBlock, i1 - j0);
    if (a.mem_all) {
      std::fill(gu, gu + n, 0.0f);
    } else {
      load_row(a.dmem + j0, gu, n);
    }
    std::fill(gb, gb + n, 0.0f);
    std::fill(gt, gt + n, 0.0f);
    load_suffix(a.mem, a.d.P_mem, j0, m0, n);
    load_suffix(a.beta, a.d.P_beta, j0, bb, n);
    load_suffix(a.th, a.d.P_th, j0, tb, n);
    for (int64_t k = 0; k < n; ++k) bb[k] = fs::clamp_unit(bb[k]);
    for (int64_t t = a.d.T - 1; t >= 0; --t) {
      const int64_t o = t * N + j0;
      const float* ht = a.h + o;
      const T* dm = a.mem_all ? a.dmem + o : zeros.data();
      slope_row<MODE>(a.g, ht, tb, sg, n);
      if (t == 0) {
        backward_row<T, RESET, MODE, false>(ht, m0, a.dspk + o, dm, bb, tb, sg, gu, gb, gt,
                                            a.dx + o, a.detach, n);
      } else if (MODE == fs::kImmediate) {
        backward_row<T, RESET, MODE, false>(ht, a.u + o - N, a.dspk + o, dm, bb, tb, sg, gu,
                                            gb, gt, a.dx + o, a.detach, n);
      } else {
        backward_row<T, RESET, MODE, true>(ht, ht - N, a.dspk + o, dm, bb, tb, sg, gu, gb, gt,
                                           a.dx + o, a.detach, n);
      }
    }
    for (int64_t k = 0; k < n; ++k) {
      a.dmem0[j0 + k] = gu[k];
      a.dbeta[j0 + k] = gb[k] * fs::clamp_unit_mask(a.beta[(j0 + k) % a.d.P_beta]);
      a.dth[j0 + k] = gt[k];
    }
  }
}

void alloc_outputs(std::vector<mx::array>& outputs) {
  for (auto& o : outputs) o.set_data(mx::allocator::malloc(o.nbytes()));
}

}  // namespace

void LeakyForward::eval_cpu(const std::vector<mx::array>& inputs,
                            std::vector<mx::array>& outputs) {
  const auto& x = inputs[0];
  for (const auto& in : inputs) check_row_contiguous("leaky", in);
  alloc_outputs(outputs);
  auto& enc = mx::cpu::get_command_encoder(stream());
  for (const auto& in : inputs) enc.set_input_array(in);
  for (auto& out : outputs) enc.set_output_array(out);

  const LeakyOptions o = opts_;
  const LeakyDims d = leaky_dims(x, inputs[1], inputs[2], inputs[3]);
  mx::dispatch_float_types(x.dtype(), "leaky", [&](auto type_tag) {
    using T = MLX_GET_TYPE(type_tag);
    FwdArgs<T> a{x.data<T>(), inputs[1].data<float>(), inputs[2].data<float>(),
                 inputs[3].data<float>(), outputs[0].data<T>(), outputs[1].data<T>(),
                 o.save ? outputs[2].data<float>() : nullptr,
                 o.saves_u() ? outputs[3].data<float>() : nullptr, d, o.mem_all};
    dispatch_reset_mode(o.reset, o.mode, [&](auto r, auto m) {
      enc.dispatch([a]() {
        cpu::parallel_for(a.d.N, a.d.T, [&](int64_t i0, int64_t i1) {
          forward_range<T, decltype(r)::value, decltype(m)::value>(a, i0, i1);
        });
      });
    });
  });
}

void LeakyBackward::eval_cpu(const std::vector<mx::array>& inputs,
                             std::vector<mx::array>& outputs) {
  for (const auto& in : inputs) check_row_contiguous("leaky", in);
  alloc_outputs(outputs);
  auto& enc = mx::cpu::get_command_encoder(stream());
  for (const auto& in : inputs) enc.set_input_array(in);
  for (auto& out : outputs) enc.set_output_array(out);

  const LeakyOptions o = opts_;
  const size_t k = o.saves_u() ? 2 : 1;
  const auto& h = inputs[0];
  const auto& dspk = inputs[k + 3];
  const LeakyDims d = leaky_dims(h, inputs[k], inputs[k + 1], inputs[k + 2]);
  mx::dispatch_float_types(dspk.dtype(), "leaky", [&](auto type_tag) {
    using T = MLX_GET_TYPE(type_tag);
    BwdArgs<T> a{h.data<float>(), o.saves_u() ? inputs[1].data<float>() : nullptr,
                 inputs[k].data<float>(), inputs[k + 1].data<float>(),
                 inputs[k + 2].data<float>(), dspk.data<T>(), inputs[k + 4].data<T>(),
                 outputs[0].data<T>(), outputs[1].data<float>(), outputs[2].data<float>(),
                 outputs[3].data<float>(), d, o.mem_all, o.surrogate, o.detach};
    dispatch_reset_mode(o.reset, o.mode, [&](auto r, auto m) {
      enc.dispatch([a]() {
        cpu::parallel_for(a.d.N, a.d.T, [&](int64_t i0, int64_t i1) {
          backward_range<T, decltype(r)::value, decltype(m)::value>(a, i0, i1);
        });
      });
    });
  });
}

}  // namespace flashsnn

// Every neuron family on the CPU, the loops: generic over a family trait
// (src/step/family.h), on the row machinery of rows.h (blocks of kBlock
// neurons per thread through all T steps, chunks of kChunk neurons into
// L1-resident buffers, streaming stores and L2 prefetch; measured there).
//
// A family's per-neuron values live in the thread's block arrays, one array
// of kBlock floats per state, constant and gradient sum, all at a constant
// distance from one base: the row loops index `base[j * kBlock + k]`, so the
// trait's Vec<N> values become plain registers and the loops vectorize as the
// hand-written loops of the first family did. The chunk buffers of the outputs are separate
// allocations (OutRow); `#pragma GCC ivdep` states that no two of a row
// loop's arrays overlap, which GCC cannot prove for pointers taken from a
// table and would otherwise check at run time (more pairs than its limit of
// 10, so the loop would stay scalar).
#pragma once

#include <algorithm>
#include <cstring>
#include <vector>

#include "mlx/types/half_types.h"

#include "../ops/common.h"
#include "../ops/dispatch.h"
#include "../ops/family.h"
#include "parallel.h"
#include "rows.h"

namespace flashsnn::cpu::engine {



#if defined(__GNUC__) && !defined(__clang__)
#define FS_IVDEP _Pragma("GCC ivdep")
#elif defined(__clang__)
#define FS_IVDEP _Pragma("clang loop vectorize(assume_safety)")
#else
#define FS_IVDEP
#endif

template <typename T>
struct FwdArgs {
  const T* x;
  const float* state0[fs::kMaxStates];
  const float* param[fs::kMaxParams];
  T* spk;
  T* state_out[fs::kMaxStates];
  float* save[fs::kMaxSaves];
  FamilyDims d;
  bool mem_all;
  bool stream;
};

template <typename T>
struct BwdArgs {
  const float* save[fs::kMaxSaves];
  const T* x;  // when the family's backward reads it, else null
  const float* state0[fs::kMaxStates];
  const float* param[fs::kMaxParams];
  const T* dspk;                       // [T, N], or one row [N] when dspk_row
  const T* dstate[fs::kMaxStates];     // [N], or [T, N] with mem_all (a row if its bit is set);
                                       // output states only (F::kOutputStates)
  T* dx;
  float* dstate0[fs::kMaxStates];
  float* dparam[fs::kMaxParams];
  FamilyDims d;
  bool mem_all;
  fs::Surrogate g;
  bool detach;
  bool stream;
  bool dspk_row;
  unsigned dstate_rows;
};

// fn(k, raw parameters of neuron j0 + k) for k < n, the suffix arrays read
// in runs through the chunk buffers `raw` (once per block, not per step).
template <class F, typename Fn>
void for_each_params(const float* const* param, const int64_t* P, int64_t j0, int64_t n,
                     float* raw, Fn&& fn) {
  for (int64_t c = 0; c < n; c += kChunk) {
    const int64_t m = std::min(kChunk, n - c);
    for (int j = 0; j < F::kParams; ++j) load_suffix(param[j], P[j], j0 + c, raw + j * kChunk, m);
    for (int64_t k = 0; k < m; ++k) {
      fs::Vec<F::kParams> r;
      for (int j = 0; j < F::kParams; ++j) r.v[j] = raw[j * kChunk + k];
      fn(c + k, r);
    }
  }
}

// Constants of neurons j0 .. j0+n-1 into the block arrays cs[j * kBlock].
template <class F>
void prepare_block(const float* const* param, const int64_t* P, int64_t j0, int64_t n,
                   float* raw, float* cs) {
  for_each_params<F>(param, P, j0, n, raw, [&](int64_t k, const fs::Vec<F::kParams>& r) {
    const auto q = F::prepare(r);
    for (int j = 0; j < F::kConsts; ++j) cs[j * kBlock + k] = q.v[j];
  });
}

template <class F>
FS_ROW fs::Vec<F::kConsts> consts_at(const float* __restrict cs, int64_t k) {
  fs::Vec<F::kConsts> c;
  for (int j = 0; j < F::kConsts; ++j) c.v[j] = cs[j * kBlock + k];
  return c;
}

// One step for n <= kChunk neurons: spikes and saves into chunk buffers; the
// states `st` (block arrays) are updated in place and are themselves what
// the state outputs copy.
template <class F, typename T, int RESET, int MODE, bool SAVE>
FS_ROW void forward_row(const T* __restrict x, float* __restrict st, const float* __restrict cs,
                        T* __restrict spk, float* const* sv, int64_t n) {
  FS_IVDEP
  for (int64_t k = 0; k < n; ++k) {
    fs::Vec<F::kStates> p;
    for (int j = 0; j < F::kStates; ++j) p.v[j] = st[j * kBlock + k];
    const auto r = F::template forward<RESET, MODE>(p, static_cast<float>(x[k]), consts_at<F>(cs, k));
    spk[k] = static_cast<T>(r.spk);
    if (SAVE) {
      for (int j = 0; j < F::saves(MODE); ++j) sv[j][k] = r.save.v[j];
    }
    for (int j = 0; j < F::kStates; ++j) st[j * kBlock + k] = r.s.v[j];
  }
}

// SAVE: write what the backward reads. A template flag, not a branch: stores
// fewer per element when nothing is differentiated.
template <class F, typename T, int RESET, int MODE, bool SAVE>
FS_CPU_CLONES void forward_range(const FwdArgs<T>& a, int64_t i0, int64_t i1) {
  constexpr int NS = F::kStates, NO = F::kOutputStates, NV = SAVE ? F::saves(MODE) : 0;
  const int64_t N = a.d.N;
  const LineGrid grid(a.x, N);
  Scratch buf(F::kParams, NS + F::kConsts, grid.state_shift(i0));
  float *st = buf.array(0), *cs = buf.array(NS);
  OutRow<T> spk, out[NO];
  OutRow<float> sv[NV > 0 ? NV : 1];
  float* svc[NV > 0 ? NV : 1] = {};
  for (int64_t j0 = i0; j0 < i1; j0 += kBlock) {
    const int64_t n = std::min(kBlock, i1 - j0);
    for (int j = 0; j < NS; ++j) load_suffix(a.state0[j], a.d.P_state[j], j0, st + j * kBlock, n);
    prepare_block<F>(a.param, a.d.P_param, j0, n, buf.chunk, cs);
    for (int64_t t = 0; t < a.d.T; ++t) {
      const int64_t row = t * N + j0;
      spk.start(a.spk + row);
      for (int j = 0; j < NV; ++j) sv[j].start(a.save[j] + row);
      if (a.mem_all) {
        for (int j = 0; j < NO; ++j) out[j].start(a.state_out[j] + row);
      }
      const int64_t lead = grid.lead(t, j0);
      for (int64_t c = 0, m = 0; c < n; c += m) {
        m = chunk_len(c, n, lead);
        const bool end = c + m == n;
        const int64_t o = row + c;
        if (t + 1 < a.d.T) prefetch_row(a.x + o + N, m * sizeof(T));
        for (int j = 0; j < NV; ++j) svc[j] = sv[j].chunk();
        forward_row<F, T, RESET, MODE, SAVE>(a.x + o, st + c, cs + c, spk.chunk(), svc, m);
        spk.write(c, m, end, a.stream);
        for (int j = 0; j < NV; ++j) sv[j].write(c, m, end, a.stream);
        if (a.mem_all) {
          for (int j = 0; j < NO; ++j) {
            store_row(st + j * kBlock + c, out[j].chunk(), m);
            out[j].write(c, m, end, a.stream);
          }
        }
      }
    }
    if (!a.mem_all) {
      for (int j = 0; j < NO; ++j) store_row(st + j * kBlock, a.state_out[j] + j0, n);
    }
  }
  fence_streams(a.stream);
}

// The states entering step t of neuron k: the initial states (block arrays
// m0) at t = 0, else what step t-1 carried out, recomputed from its saves.
template <class F, int RESET, int MODE, bool CARRIED>
FS_ROW fs::Vec<F::kStates> prev_at(const float* const* svp, const float* __restrict m0,
                                   const fs::Vec<F::kConsts>& c, int64_t k) {
  fs::Vec<F::kStates> p;
  if (CARRIED) {
    fs::Vec<F::kSaves> s = {};
    for (int j = 0; j < F::saves(MODE); ++j) s.v[j] = svp[j][k];
    p = F::template carried<RESET, MODE>(s, c);
  } else {
    for (int j = 0; j < F::kStates; ++j) p.v[j] = m0[j * kBlock + k];
  }
  return p;
}

template <class F, int MODE>
FS_ROW fs::Vec<F::kSaves> saves_at(const float* const* sv, int64_t k) {
  fs::Vec<F::kSaves> s = {};
  for (int j = 0; j < F::saves(MODE); ++j) s.v[j] = sv[j][k];
  return s;
}

template <class F, typename T>
FS_ROW float x_at(const T* __restrict x, int64_t k) {
  return F::kBackwardX ? static_cast<float>(x[k]) : 0.0f;
}

// sg[k] for k < n: the surrogate's slope where step t fired (fire() on its
// saves and the states entering it). Neither x's dtype nor the parameter
// flag matter here, so these loops are compiled once per family, reset,
// mode and CARRIED, in slopes.cpp (one vectorized loop per surrogate id):
// instantiated inside every backward (3 dtypes x 2 parameter flags) they
// were most of the CPU build.
template <class F, int RESET, int MODE, bool CARRIED>
void slopes(fs::Surrogate g, const float* const* sv, const float* const* svp, const float* m0,
            const float* cs, float* sg, int64_t n);

// One reverse step for n <= kChunk neurons. gu: dL/d(states out of step t)
// from step t+1 (block arrays), updated to dL/d(states entering it); dm: the
// state cotangents at this step (zero rows when only the last counts).
// PARAMS: accumulate the constants' gradients in gc (the compiler drops
// their arithmetic, and what only they use, without).
template <class F, typename T, int RESET, int MODE, bool CARRIED, bool PARAMS>
FS_ROW void backward_row(const float* const* sv, const float* const* svp,
                         const float* __restrict m0, const T* __restrict x,
                         const T* __restrict ds, const T* const* dm, const float* __restrict cs,
                         const float* __restrict sg, float* __restrict gu,
                         float* __restrict gc, T* __restrict dx, bool detach, int64_t n) {
  FS_IVDEP
  for (int64_t k = 0; k < n; ++k) {
    const auto c = consts_at<F>(cs, k);
    fs::Vec<F::kStates> d;
    for (int j = 0; j < F::kStates; ++j) d.v[j] = gu[j * kBlock + k] + static_cast<float>(dm[j][k]);
    const auto r = F::template backward<RESET, MODE>(
        saves_at<F, MODE>(sv, k), prev_at<F, RESET, MODE, CARRIED>(svp, m0, c, k), x_at<F>(x, k),
        c, static_cast<float>(ds[k]), d, sg[k], detach);
    dx[k] = static_cast<T>(r.dx);
    for (int j = 0; j < F::kStates; ++j) gu[j * kBlock + k] = r.dprev.v[j];
    if (PARAMS) {
      for (int j = 0; j < F::kConsts; ++j) gc[j * kBlock + k] += r.dc.v[j];
    }
  }
}

// The constants' gradients are summed over T with compensation
// (fs::add_compensated), but not step by step: in backward_row that cost the
// per-call fwd+bwd 57% (Synaptic) to 94% (ALIF) at T=25 B=32 N=1024. The
// plain sums gc of every kFoldSteps steps fold into the compensated sums gs
// (their compensations nc arrays further on), and gc starts again from 0;
// only the block's n neurons (a block array is kBlock = 8192 long: folding
// all of it cost ALIF 23% at N = 1024).
inline void fold_sums(float* __restrict gc, float* __restrict gs, int nc, int64_t n) {
  for (int j = 0; j < nc; ++j) {
    float* __restrict c = gc + j * kBlock;
    float* __restrict s = gs + j * kBlock;
    float* __restrict k = gs + (nc + j) * kBlock;
    FS_IVDEP
    for (int64_t i = 0; i < n; ++i) {
      const fs::Sum a = fs::add_compensated(fs::Sum{s[i], k[i]}, c[i]);
      s[i] = a.s;
      k[i] = a.c;
      c[i] = 0.0f;
    }
  }
}

// A neuron's parameter gradients from its constants' sums (F::finish).
template <class F>
void finish_block(const float* const* param, const int64_t* P, float* const* dparam, int64_t j0,
                  int64_t n, float* raw, const float* gc) {
  for_each_params<F>(param, P, j0, n, raw, [&](int64_t k, const fs::Vec<F::kParams>& r) {
    const auto dp = F::finish(r, consts_at<F>(gc, k));
    for (int j = 0; j < F::kParams; ++j) dparam[j][j0 + k] = dp.v[j];
  });
}

template <class F, typename T, int RESET, int MODE, bool PARAMS>
FS_CPU_CLONES void backward_range(const BwdArgs<T>& a, int64_t i0, int64_t i1) {
  constexpr int NS = F::kStates, NO = F::kOutputStates, NC = F::kConsts, NV = F::saves(MODE);
  const int64_t N = a.d.N;
  const LineGrid grid(a.save[0], N);
  // gu [NS], gc [NC], cs [NC], m0 [NS] (read or written every step, placed
  // as before the compensated sums), then the compensated sums gs [NC] and
  // their compensations [NC] (fold_sums), touched every kFoldSteps steps.
  Scratch buf(F::kParams, NS + 4 * NC + NS, grid.state_shift(i0));
  float* sg = buf.chunk;
  float *gu = buf.array(0), *gc = buf.array(NS), *cs = buf.array(NS + NC),
        *m0 = buf.array(NS + 2 * NC), *gs = buf.array(2 * NS + 2 * NC);
  const std::vector<T> zeros(kChunk, static_cast<T>(0.0f));
  OutRow<T> dx;
  const float* sv[NV];
  const float* svp[NV];
  const T* dm[NS];
  for (int64_t j0 = i0; j0 < i1; j0 += kBlock) {
    const int64_t n = std::min(kBlock, i1 - j0);
    for (int j = 0; j < NS; ++j) {
      // A state with no output has no cotangent of its own.
      if (a.mem_all || j >= NO) {
        std::fill(gu + j * kBlock, gu + j * kBlock + n, 0.0f);
      } else {
        load_row(a.dstate[j] + j0, gu + j * kBlock, n);
      }
      load_suffix(a.state0[j], a.d.P_state[j], j0, m0 + j * kBlock, n);
    }
    for (int j = 0; j < NC; ++j) std::fill(gc + j * kBlock, gc + j * kBlock + n, 0.0f);
    for (int j = 0; j < 2 * NC; ++j) std::fill(gs + j * kBlock, gs + j * kBlock + n, 0.0f);
    prepare_block<F>(a.param, a.d.P_param, j0, n, buf.chunk, cs);
    for (int64_t t = a.d.T - 1; t >= 0; --t) {
      dx.start(a.dx + t * N + j0);
      const int64_t lead = grid.lead(t, j0);
      for (int64_t c = 0, m = 0; c < n; c += m) {
        m = chunk_len(c, n, lead);
        const int64_t o = t * N + j0 + c;
        // A row cotangent is read at the step-0 offsets of every step.
        const T* ds = a.dspk + (a.dspk_row ? o - t * N : o);
        for (int j = 0; j < NS; ++j) {
          dm[j] = !a.mem_all || j >= NO
                      ? zeros.data()
                      : a.dstate[j] + ((a.dstate_rows >> j) & 1u ? o - t * N : o);
        }
        for (int j = 0; j < NV; ++j) {
          sv[j] = a.save[j] + o;
          svp[j] = sv[j] - N;  // read only for t > 0
        }
        const T* x = F::kBackwardX ? a.x + o : nullptr;
        if (t > 0) {
          for (int j = 0; j < NV; ++j) prefetch_row(svp[j], m * sizeof(float));
          if (!a.dspk_row) prefetch_row(ds - N, m * sizeof(T));
          for (int j = 0; j < NO; ++j) {
            if (a.mem_all && !((a.dstate_rows >> j) & 1u)) prefetch_row(dm[j] - N, m * sizeof(T));
          }
          if (F::kBackwardX) prefetch_row(x - N, m * sizeof(T));
        }
        T* dxc = dx.chunk();
        // Where fire() does not read the entering states, step 0 runs the
        // carried instance too (on its own saves, a valid row, results
        // unused): half the surrogate loops to compile.
        if constexpr (F::fire_reads_prev(MODE)) {
          if (t == 0) {
            slopes<F, RESET, MODE, false>(a.g, sv, svp, m0 + c, cs + c, sg, m);
          } else {
            slopes<F, RESET, MODE, true>(a.g, sv, svp, m0 + c, cs + c, sg, m);
          }
        } else {
          slopes<F, RESET, MODE, true>(a.g, sv, t > 0 ? svp : sv, m0 + c, cs + c, sg, m);
        }
        if (t == 0) {
          backward_row<F, T, RESET, MODE, false, PARAMS>(sv, svp, m0 + c, x, ds, dm, cs + c, sg,
                                                         gu + c, gc + c, dxc, a.detach, m);
        } else {
          backward_row<F, T, RESET, MODE, true, PARAMS>(sv, svp, m0 + c, x, ds, dm, cs + c, sg,
                                                        gu + c, gc + c, dxc, a.detach, m);
        }
        dx.write(c, m, c + m == n, a.stream);
      }
      if (PARAMS && fs::fold_after(a.d.T - t, a.d.T)) fold_sums(gc, gs, NC, n);
    }
    for (int j = 0; j < NS; ++j) {
      std::memcpy(a.dstate0[j] + j0, gu + j * kBlock, size_t(n) * sizeof(float));
    }
    if (PARAMS) {
      fold_sums(gc, gs, NC, n);
      finish_block<F>(a.param, a.d.P_param, a.dparam, j0, n, buf.chunk, gs);
    } else {
      // Partials nobody reads (vjp returns only the gradients its argnums
      // asked for), written all the same.
      for (int j = 0; j < F::kParams; ++j) std::fill(a.dparam[j] + j0, a.dparam[j] + j0 + n, 0.0f);
    }
  }
  fence_streams(a.stream);
}

[[noreturn]] inline void no_kernel(const FamilyOptions& o) {
  fail(o.info().name, "internal: no CPU kernel for reset " + std::to_string(o.reset) +
                          " / mode " + std::to_string(o.mode));
}

// The whole forward / backward of one call on the CPU's threads, for the
// family, reset and mode in `o`: the runtime values become template
// arguments here. Instantiated per dtype in kernels_<dtype>.cpp, so that the
// build compiles the dtypes in parallel.
// f(F{}, reset, mode, flag) with every runtime value a compile-time one.
template <typename Fn>
void dispatch_kernel(const FamilyOptions& o, bool flag, Fn&& f) {
  const bool found = dispatch_family(o.family, [&](auto fam) {
    const bool ok = dispatch_family_options<decltype(fam)>(o.reset, o.mode, [&](auto r, auto m) {
      dispatch_bool(flag, [&](auto b) { f(fam, r, m, b); });
    });
    if (!ok) no_kernel(o);
  });
  if (!found) no_kernel(o);
}

template <typename T>
void forward_kernel(const FamilyOptions& o, const FwdArgs<T>& a) {
  dispatch_kernel(o, o.save, [&](auto f, auto r, auto m, auto save) {
    parallel_for(a.d.N, a.d.T, [&](int64_t i0, int64_t i1) {
      forward_range<decltype(f), T, decltype(r)::value, decltype(m)::value, decltype(save)::value>(
          a, i0, i1);
    });
  });
}

template <typename T>
void backward_kernel(const FamilyOptions& o, const BwdArgs<T>& a) {
  dispatch_kernel(o, o.param_grads, [&](auto f, auto r, auto m, auto params) {
    parallel_for(a.d.N, a.d.T, [&](int64_t i0, int64_t i1) {
      backward_range<decltype(f), T, decltype(r)::value, decltype(m)::value,
                     decltype(params)::value>(a, i0, i1);
    });
  });
}

// Instantiated one dtype and direction per translation unit
// (forward_<dtype>.cpp, backward_<dtype>.cpp): six similar-sized jobs pack
// the 2-core build better than three (docs/design.md, "Build cost").
#define FS_CPU_FORWARD(EXTERN, T) \
  EXTERN template void forward_kernel<T>(const FamilyOptions&, const FwdArgs<T>&);
#define FS_CPU_BACKWARD(EXTERN, T) \
  EXTERN template void backward_kernel<T>(const FamilyOptions&, const BwdArgs<T>&);
#define FS_CPU_KERNELS(EXTERN, T) FS_CPU_FORWARD(EXTERN, T) FS_CPU_BACKWARD(EXTERN, T)
FS_CPU_KERNELS(extern, float)
FS_CPU_KERNELS(extern, mlx::core::float16_t)
FS_CPU_KERNELS(extern, mlx::core::bfloat16_t)

}  // namespace flashsnn::cpu::engine

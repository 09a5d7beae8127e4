// Leaky on the CPU: loops around src/step/leaky.h.
//
// Neurons are split across threads; each thread walks blocks of kBlock
// neurons through all T steps, so a block's state stays in cache while x,
// spikes and h stream through once. A step of a block is computed in chunks
// of kChunk (256) neurons into small buffers (L1-resident) by loops with no
// branches (the surrogate's switch is hoisted into its own loop), which GCC
// vectorizes; target_clones builds an AVX2 copy beside the baseline one.
// The chunk buffers are then copied to the outputs that were asked for.
//
// These layers move far more bytes than they compute on, in rows of a block
// (32 KB) at the stride of a time step. What made forward+backward at T=100
// B=32 N=1024 (13 MB per [T, N] float32 array) faster on a 2-core EPYC
// (Zen 4, 1 MB L2 per core, 32 MB L3), each A/B measured in one interleaved
// run (median over 8 processes, median of 15 calls each; this VM's timings
// drift by 20% between minutes, so only same-run pairs are compared):
//  - streaming (non-temporal) stores for outputs too large to stay in cache:
//    no read-for-ownership per line written. 7.0 -> 5.6 ms (forward alone
//    1.9 -> 1.5 ms). Outputs under kStreamBytes keep plain stores, so the
//    next op reads them from cache (at T=25 B=128 N=256 both measured the
//    same);
//  - prefetching the next step's row chunk into L2: 5.4 -> 4.3 ms; the
//    loops had been stalling on the first lines of every row (perf: most
//    samples on the load of x, of h and of the spike cotangent);
//  - blocks of 8192 neurons instead of 2048: 4.1 -> 3.7 ms (longer runs of
//    contiguous lines per row; the backward's block state, 7 floats per
//    neuron, still fits L2). 16384 measured the same as 8192;
//  - chunks on the 64-byte lines of the main input, block state at the same
//    line offset, and every output stored in whole lines of its own
//    (LineGrid, OutRow below): 4.09 -> 3.30 ms;
//  - no beta/threshold accumulation in the backward when their gradients
//    are not wanted (LeakyOptions::param_grads): 0.43 instead of 0.83 ns per
//    element and thread with the data in cache.
// Not kept: an AVX-512 clone (no change), prefetching into L1 (half the gain
// of L2), two steps of prefetch distance instead of one (no change), and
// recomputing h in the backward from x, block by block into L2 scratch,
// instead of saving it (26 MB less traffic, but 4.1-4.6 vs 3.6 ms: the
// extra pass over x per block and its shorter rows cost more), nor from
// membranes saved every K steps (C++ harness, K = 10 to 50, blocks of 2048
// to 8192: 2.3-2.5 ms against 2.2-2.3 ms for saving h).
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "mlx/backend/cpu/encoder.h"
#include "mlx/dtype_utils.h"

#include "../ops/buffers.h"
#include "../ops/common.h"
#include "../ops/dispatch.h"
#include "../ops/leaky.h"
#include "../step/leaky.h"
#include "parallel.h"

namespace flashsnn {

namespace {

constexpr int64_t kBlock = 8192;
// Neurons per chunk: 1 KB per float buffer. 256 beat 512 in three
// interleaved runs at T=100 B=32 N=1024 (3.25/3.41/3.14 against
// 3.40/3.69/3.55 ms forward+backward); 128 was no better than 256. Smaller
// chunks also mean smaller bursts of L2 prefetches (16 lines per stream).
constexpr int64_t kChunk = 256;
// A [T, N] output of at least this many bytes is written with streaming
// stores. 8 MB: below it (T=25 B=128 N=256 is 3.3 MB per array) the whole
// layer fits the 32 MB L3 and plain stores leave the result in cache.
constexpr size_t kStreamBytes = size_t(8) << 20;

// FLASHSNN_CPU_STREAM=0|1 forces plain or streaming stores (for benchmarks);
// unset or "auto" decides by size. Read at every launch (microseconds
// against a kernel of milliseconds), so a benchmark can switch it.
bool use_streaming_stores(size_t bytes) {
  const char* v = std::getenv("FLASHSNN_CPU_STREAM");
  if (v == nullptr || std::string(v) == "auto") return bytes >= kStreamBytes;
  if (std::string(v) == "0" || std::string(v) == "1") return v[0] == '1';
  fail("leaky", std::string("FLASHSNN_CPU_STREAM must be 0, 1 or auto; got '") + v + "'");
}

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

// Copies a chunk buffer to its output row; `stream`: the whole 64-byte lines
// of the destination with non-temporal stores (SSE2, so every x86-64 clone
// has them), the partial lines at either end with plain ones. Only whole
// lines: a line written partly by streaming stores goes out as a partial
// write that cost more than the read-for-ownership it saves (the forward
// took 3.4 instead of 1.8 ms when chunks streamed from 16-byte boundaries).
// OutRow keeps the partial lines to the ends of a block row.
template <typename T>
FS_ROW void put_row(T* __restrict dst, const T* __restrict src, int64_t n, bool stream) {
  const size_t bytes = size_t(n) * sizeof(T);
#if defined(__SSE2__)
  if (stream) {
    auto* d = reinterpret_cast<char*>(dst);
    auto* s = reinterpret_cast<const char*>(src);
    const size_t head = std::min(bytes, (64 - reinterpret_cast<uintptr_t>(d) % 64) % 64);
    const size_t end = head + (bytes - head) / 64 * 64;
    std::memcpy(d, s, head);
    for (size_t k = head; k < end; k += 16) {
      _mm_stream_si128(reinterpret_cast<__m128i*>(d + k),
                       _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + k)));
    }
    std::memcpy(d + end, s + end, bytes - end);
    return;
  }
#endif
  std::memcpy(dst, src, bytes);
}

// Streaming stores are weakly ordered: fence them before the thread reports
// its range done.
inline void fence_streams(bool stream) {
#if defined(__SSE2__)
  if (stream) _mm_sfence();
#endif
}

// Asks for the lines of a row chunk that the next step will read, into L2
// (locality 1: prefetcht2 on x86). One step ahead is a whole block's row
// (32 KB) of lead time. Into L1 instead (locality 3) gained half as much:
// the burst of requests crowds out the demand loads of the current chunk.
FS_ROW void prefetch_row(const void* p, size_t bytes) {
  auto* c = static_cast<const char*>(p);
  for (size_t k = 0; k < bytes; k += 64) __builtin_prefetch(c + k, 0, 1);
}

// MLX's large buffers start 24 bytes past a 64-byte line (a page plus
// malloc's and MLX's headers) when mmap'd, elsewhere when malloc serves
// them from its heap, so the arrays of one call need not share an offset.
// Counted from the row start, every chunk would begin and end inside a line:
// its two ends go out as plain stores (a read for ownership each) and every
// other 32-byte load splits across two lines. So (measured at T=100 B=32
// N=1024, fwd / bwd kernel medians over 6 alternating processes x 20 calls):
//  - the chunk grid follows the lines of the main input (x forward, h
//    backward): a short `lead` chunk up to its first line boundary, then
//    whole chunks; the block state sits at the same offset within its
//    lines, so its loads do not split either. 1.70 / 1.91 -> 1.41 / 1.45 ms
//    (in a C++ harness: 3.9 ms with MLX's offset, 2.5 ms aligned);
//  - each output is written in whole lines of its own (OutRow), whatever
//    its offset against the grid: what a chunk leaves of a partial line
//    waits in front of the next chunk's buffer. Offsets of 8, 24 and 40
//    alternate between calls when malloc's heap serves the buffers;
//    forward+backward (whole call, 12 alternating processes) 3.61 -> 3.30 ms
//    (4.09 ms before either change).
struct LineGrid {
  uintptr_t row0;     // the array at step 0, neuron 0
  size_t elem;        // its element size in bytes
  uintptr_t stride;   // bytes per step

  template <typename E>
  LineGrid(const E* a, int64_t N)
      : row0(reinterpret_cast<uintptr_t>(a)), elem(sizeof(E)), stride(N * sizeof(E)) {}

  // Elements of step t from neuron j to the next line boundary.
  int64_t lead(int64_t t, int64_t j) const {
    return int64_t(((64 - (row0 + t * stride + j * elem) % 64) % 64) / elem);
  }
  // Offset (in floats) for float state arrays so that the state of a chunk
  // that starts on a line starts on one too (exact when every row has the
  // lead of step 0, as when N * elem is a multiple of 64).
  int64_t state_shift(int64_t j) const { return (16 - lead(0, j) % 16) % 16; }
};

// Length of the chunk of a block row starting at c, of n neurons.
inline int64_t chunk_len(int64_t c, int64_t n, int64_t lead) {
  return std::min(n - c, c == 0 && lead > 0 ? lead : kChunk);
}

template <typename E>
E* align_line(E* p) {
  return reinterpret_cast<E*>((reinterpret_cast<uintptr_t>(p) + 63) & ~uintptr_t(63));
}

// One output's chunk buffer and its place in the block row being written.
// The chunk [c, c+m) is computed into chunk(); write() stores every element
// up to the last line boundary of the output (all of them at the row's end)
// and moves the rest, less than a line, in front of chunk() for the next one.
template <typename E>
class OutRow {
 public:
  static constexpr int64_t kLine = 64 / sizeof(E);

  OutRow() : mem_(kLine + kChunk + kLine) { chunk_ = align_line(mem_.data()) + kLine; }
  E* chunk() { return chunk_; }
  void start(E* row) {
    row_ = row;
    done_ = 0;
  }
  FS_ROW void write(int64_t c, int64_t m, bool row_end, bool stream) {
    int64_t to = c + m;
    if (!row_end) {
      to -= int64_t((reinterpret_cast<uintptr_t>(row_ + to) % 64) / sizeof(E));
      to = std::max(to, done_);
    }
    put_row(row_ + done_, chunk_ - (c - done_), to - done_, stream);
    const int64_t left = c + m - to;
    std::memmove(chunk_ - left, chunk_ + (to - c), size_t(left) * sizeof(E));
    done_ = to;
  }

 private:
  std::vector<E> mem_;
  E* chunk_;
  E* row_ = nullptr;
  int64_t done_ = 0;
};

// Per-thread block state: `chunks` line-aligned chunk buffers of kChunk
// floats, then `arrays` arrays of kBlock floats starting `shift` floats past
// a line (kBlock floats are whole lines, so every array shares it).
// The memory is the thread's own and kept between calls (the threads are
// too: parallel.h), 230 KB a thread at most. Allocated per call, the
// backward's 230 KB came from mmap or from malloc's heap depending on
// malloc's history (its mmap threshold moves with what the process freed
// before), and from mmap it came back as fresh pages every call: with the
// threshold held at 128 KB (MALLOC_MMAP_THRESHOLD_=131072) forward+backward
// at T=25 B=128 N=256 took 1.18 ms against 0.82 ms with this (malloc's
// defaults: 0.99 / 0.94 ms, no difference; medians of 6 and 10 alternating
// processes). One Scratch per thread at a time (kernels do not nest).
struct Scratch {
  float* chunk;
  float* state;
  Scratch(int chunks, int arrays, int64_t shift) {
    static thread_local std::vector<float> mem;
    const size_t n = size_t(chunks) * kChunk + size_t(arrays) * kBlock + 32;
    if (mem.size() < n) mem.assign(n, 0.0f);
    chunk = align_line(mem.data());
    state = chunk + chunks * kChunk + shift;
  }
  float* array(int i) const { return state + i * kBlock; }
};

// Parameters of neurons j0 .. j0+n-1 (p[i % P]), copied in runs: one
// integer division per block, not one per neuron.
inline void load_suffix(const float* p, int64_t P, int64_t j0, float* __restrict dst,
                        int64_t n) {
  if (P == 1) {
    std::fill(dst, dst + n, p[0]);
    return;
  }
  for (int64_t k = 0, i = j0 % P; k < n; i = 0) {
    const int64_t run = std::min(P - i, n - k);
    std::memcpy(dst + k, p + i, size_t(run) * sizeof(float));
    k += run;
  }
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
  bool stream;
};

// One step for n <= kChunk neurons: spikes (and h, if SAVE) into chunk
// buffers; u, the block's membrane state, is updated in place and is itself
// the carried membrane that mem and u outputs copy.
template <typename T, int RESET, int MODE, bool SAVE>
FS_ROW void forward_row(const T* __restrict x, const float* __restrict b,
                        const float* __restrict th, float* __restrict u, T* __restrict spk,
                        float* __restrict h, int64_t n) {
  for (int64_t k = 0; k < n; ++k) {
    auto r = fs::leaky_forward<RESET, MODE>(u[k], static_cast<float>(x[k]), b[k], th[k]);
    spk[k] = static_cast<T>(r.s);
    if (SAVE) h[k] = r.h;
    u[k] = r.u;
  }
}

// SAVE: write h (and u for kImmediate) for the backward. A template flag, not
// a branch: one L1 store fewer per element when nothing is differentiated.
template <typename T, int RESET, int MODE, bool SAVE>
FS_CPU_CLONES void forward_range(
    const FwdArgs<T>& a, int64_t i0, int64_t i1) {
  const int64_t N = a.d.N;
  const LineGrid grid(a.x, N);
  Scratch buf(0, 3, grid.state_shift(i0));
  float *ub = buf.array(0), *bb = buf.array(1), *tb = buf.array(2);
  OutRow<T> spk, mem;
  OutRow<float> h, u;
  for (int64_t j0 = i0; j0 < i1; j0 += kBlock) {
    const int64_t n = std::min(kBlock, i1 - j0);
    load_suffix(a.mem, a.d.P_mem, j0, ub, n);
    load_suffix(a.beta, a.d.P_beta, j0, bb, n);
    load_suffix(a.th, a.d.P_th, j0, tb, n);
    for (int64_t k = 0; k < n; ++k) bb[k] = fs::clamp_unit(bb[k]);
    for (int64_t t = 0; t < a.d.T; ++t) {
      const int64_t row = t * N + j0;
      spk.start(a.spk + row);
      if (SAVE) h.start(a.h + row);
      if (SAVE && a.u) u.start(a.u + row);
      if (a.mem_all) mem.start(a.mem_out + row);
      const int64_t lead = grid.lead(t, j0);
      for (int64_t c = 0, m = 0; c < n; c += m) {
        m = chunk_len(c, n, lead);
        const bool end = c + m == n;
        const int64_t o = row + c;
        if (t + 1 < a.d.T) prefetch_row(a.x + o + N, m * sizeof(T));
        forward_row<T, RESET, MODE, SAVE>(a.x + o, bb + c, tb + c, ub + c, spk.chunk(),
                                          h.chunk(), m);
        spk.write(c, m, end, a.stream);
        if (SAVE) h.write(c, m, end, a.stream);
        if (SAVE && a.u) {
          std::memcpy(u.chunk(), ub + c, size_t(m) * sizeof(float));
          u.write(c, m, end, a.stream);
        }
        if (a.mem_all) {
          store_row(ub + c, mem.chunk(), m);
          mem.write(c, m, end, a.stream);
        }
      }
    }
    if (!a.mem_all) store_row(ub, a.mem_out + j0, n);
  }
  fence_streams(a.stream);
}

template <typename T>
struct BwdArgs {
  const float* h;
  const float* u;  // kImmediate only
  const float* mem;
  const float* beta;
  const float* th;
  const T* dspk;  // [T, N], or one row [N] when dspk_row
  const T* dmem;  // [N], or [T, N] when mem_all (one row [N] when dmem_row)
  T* dx;
  float* dmem0;
  float* dbeta;
  float* dth;
  LeakyDims d;
  bool mem_all;
  fs::Surrogate g;
  bool detach;
  bool stream;
  bool dspk_row;
  bool dmem_row;
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

// One reverse step for n <= kChunk neurons. prev is the membrane carried into
// the step (CARRIED: recompute it from the previous step's h instead); dm is
// the membrane cotangent at this step (a zero row when only the last counts).
// PARAMS: accumulate beta's and threshold's gradients (the compiler drops
// their arithmetic, and the carried membrane where only they use it, without).
template <typename T, int RESET, int MODE, bool CARRIED, bool PARAMS>
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
    if (PARAMS) {
      gb[k] += r.dbeta;
      gt[k] += r.dth;
    }
  }
}

template <typename T, int RESET, int MODE, bool PARAMS>
FS_CPU_CLONES void backward_range(
    const BwdArgs<T>& a, int64_t i0, int64_t i1) {
  const int64_t N = a.d.N;
  const LineGrid grid(a.h, N);
  Scratch buf(1, 7, grid.state_shift(i0));
  float *sg = buf.chunk, *gu = buf.array(0), *gb = buf.array(1), *gt = buf.array(2),
        *bb = buf.array(3), *bm = buf.array(4), *tb = buf.array(5), *m0 = buf.array(6);
  const std::vector<T> zeros(kChunk, static_cast<T>(0.0f));
  OutRow<T> dx;
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
    for (int64_t k = 0; k < n; ++k) {
      bm[k] = fs::clamp_unit_mask(bb[k]);
      bb[k] = fs::clamp_unit(bb[k]);
    }
    for (int64_t t = a.d.T - 1; t >= 0; --t) {
      dx.start(a.dx + t * N + j0);
      const int64_t lead = grid.lead(t, j0);
      for (int64_t c = 0, m = 0; c < n; c += m) {
        m = chunk_len(c, n, lead);
        const int64_t o = t * N + j0 + c;
        const float* ht = a.h + o;
        // A row cotangent is read at the step-0 offsets of every step.
        const T* ds = a.dspk + (a.dspk_row ? o - t * N : o);
        const T* dm = !a.mem_all ? zeros.data() : a.dmem + (a.dmem_row ? o - t * N : o);
        T* dxc = dx.chunk();
        if (t > 0) {
          prefetch_row(ht - N, m * sizeof(float));
          if (!a.dspk_row) prefetch_row(ds - N, m * sizeof(T));
          if (a.mem_all && !a.dmem_row) prefetch_row(dm - N, m * sizeof(T));
        }
        slope_row<MODE>(a.g, ht, tb + c, sg, m);
        if (t == 0) {
          backward_row<T, RESET, MODE, false, PARAMS>(ht, m0 + c, ds, dm, bb + c,
                                                      tb + c, sg, gu + c, gb + c, gt + c, dxc,
                                                      a.detach, m);
        } else if (MODE == fs::kImmediate) {
          backward_row<T, RESET, MODE, false, PARAMS>(ht, a.u + o - N, ds, dm, bb + c,
                                                      tb + c, sg, gu + c, gb + c, gt + c, dxc,
                                                      a.detach, m);
        } else {
          backward_row<T, RESET, MODE, true, PARAMS>(ht, ht - N, ds, dm, bb + c,
                                                     tb + c, sg, gu + c, gb + c, gt + c, dxc,
                                                     a.detach, m);
        }
        dx.write(c, m, c + m == n, a.stream);
      }
    }
    // Without PARAMS gb and gt stay 0: partials nobody reads (vjp returns
    // only the gradients its argnums asked for).
    for (int64_t k = 0; k < n; ++k) {
      a.dmem0[j0 + k] = gu[k];
      a.dbeta[j0 + k] = gb[k] * bm[k];
      a.dth[j0 + k] = gt[k];
    }
  }
  fence_streams(a.stream);
}

void alloc_outputs(std::vector<mx::array>& outputs, const mx::Stream& s) {
  for (auto& o : outputs) alloc_output(o, s);
}

}  // namespace

void LeakyForward::eval_cpu(const std::vector<mx::array>& inputs,
                            std::vector<mx::array>& outputs) {
  const auto& x = inputs[0];
  for (const auto& in : inputs) check_row_contiguous("leaky", in);
  alloc_outputs(outputs, stream());
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
                 o.saves_u() ? outputs[3].data<float>() : nullptr, d, o.mem_all,
                 use_streaming_stores(outputs[0].nbytes())};
    dispatch_reset_mode(o.reset, o.mode, [&](auto r, auto m) {
      dispatch_bool(o.save, [&](auto save) {
        enc.dispatch([a]() {
          cpu::parallel_for(a.d.N, a.d.T, [&](int64_t i0, int64_t i1) {
            forward_range<T, decltype(r)::value, decltype(m)::value, decltype(save)::value>(
                a, i0, i1);
          });
        });
      });
    });
  });
}

void LeakyBackward::eval_cpu(const std::vector<mx::array>& inputs,
                             std::vector<mx::array>& outputs) {
  for (const auto& in : inputs) check_row_contiguous("leaky", in);
  check_backward_inputs(inputs, opts_);
  alloc_outputs(outputs, stream());
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
                 outputs[3].data<float>(), d, o.mem_all, o.surrogate, o.detach,
                 use_streaming_stores(outputs[0].nbytes()), o.dspk_row, o.dmem_row};
    dispatch_reset_mode(o.reset, o.mode, [&](auto r, auto m) {
      dispatch_bool(o.param_grads, [&](auto params) {
        enc.dispatch([a]() {
          cpu::parallel_for(a.d.N, a.d.T, [&](int64_t i0, int64_t i1) {
            backward_range<T, decltype(r)::value, decltype(m)::value, decltype(params)::value>(
                a, i0, i1);
          });
        });
      });
    });
  });
}

}  // namespace flashsnn

// The CPU kernels' row machinery (src/cpu/family.cpp loops over it).
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
//  - no parameter accumulation in the backward when their gradients are
//    not wanted (FamilyOptions::param_grads): 0.43 instead of 0.83 ns per
//    element and thread with the data in cache.
// Not kept: an AVX-512 clone (no change), prefetching into L1 (half the gain
// of L2), two steps of prefetch distance instead of one (no change), and
// recomputing h in the backward from x, block by block into L2 scratch,
// instead of saving it (26 MB less traffic, but 4.1-4.6 vs 3.6 ms: the
// extra pass over x per block and its shorter rows cost more), nor from
// membranes saved every K steps (C++ harness, K = 10 to 50, blocks of 2048
// to 8192: 2.3-2.5 ms against 2.2-2.3 ms for saving h).
// (These measurements were made on the first fused family, where this
// machinery was first written; every family runs through it now.)
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "../ops/common.h"

namespace flashsnn::cpu {

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
inline bool use_streaming_stores(const char* op, size_t bytes) {
  const char* v = std::getenv("FLASHSNN_CPU_STREAM");
  if (v == nullptr || std::string(v) == "auto") return bytes >= kStreamBytes;
  if (std::string(v) == "0" || std::string(v) == "1") return v[0] == '1';
  fail(op, std::string("FLASHSNN_CPU_STREAM must be 0, 1 or auto; got '") + v + "'");
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
inline E* align_line(E* p) {
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
// too: parallel.h): a one-state family's backward takes 230 KB (7 arrays),
// a three-state one's 460 KB (14), within the 1 MB L2 of the machine
// measured. Allocated per call, the one-state backward's 230 KB came from mmap or from malloc's heap depending on
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

}  // namespace flashsnn::cpu

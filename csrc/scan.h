// The selective scan on CUDA: what the kernels (scan.cu, nvcc, no MLX
// headers) and the eval_gpu glue (scan.cpp, host compiler) share. Plain
// structs and a C-style API, as family.h.
#pragma once

#include <cuda.h>

#include <cstdint>

#include "../src/step/common.h"

namespace flashsnn::cuda {

// Kernel arguments, the kernels' only parameter (passed by value). Sequence
// arrays (u, delta, z, dout, out, du, ddelta, dz, and B / C when they vary
// per step) are in the kernel's dtype T; everything else float32.
struct ScanParams {
  const void* u;        // [Bt, L, D]
  const void* delta;    // [Bt, L, D]
  const float* A;       // [D, N]
  const void* B;        // [Bt, L, N] T, or [D, N] float32 (B_varies = 0)
  const void* C;        // as B
  const float* Dv;      // [D] or null
  const void* z;        // [Bt, L, D] or null
  const float* bias;    // [D] or null
  const float* h0;      // [Bt, D, N] or null
  const float* chk_in;  // backward: the forward's checkpoints [Bt, nchk, D, N]
  const void* dout;     // backward: [Bt, L, D]
  const float* dlast;   // backward: [Bt, D, N]
  void* out;            // forward: [Bt, L, D]
  float* last;          // forward: [Bt, D, N]
  float* chk;           // forward: [Bt, nchk, D, N], the state entering each chunk
  void* du;             // backward: [Bt, L, D]
  void* ddelta;         // backward: [Bt, L, D]
  void* dz;             // backward: [Bt, L, D] or null
  float* dh0;           // backward: [Bt, D, N] or null
  float* hs;            // backward scratch: [Bt, D, K + 1, N], one chunk's states
  float* pA;            // backward partials: [Bt, D, N]
  float* pB;            // [groups, Bt, L, N] per step, or [Bt, D, N]
  float* pC;            // as pB
  float* pD;            // [Bt, D]
  float* pbias;         // [Bt, D]
  int64_t Bt, L, D, N, K, nchk;
  int has_D, has_z, has_bias, has_h0, softplus, B_varies, C_varies;
};

// Work split: each channel's N states are spread over P lanes of a warp
// (P = N rounded up to a power of two, at most FLASHSNN_SCAN_LANES_CAP),
// SPL states per lane (SPL = ceil(N / P): with the default cap of 32, 1 up
// to 32 states and 2 up to 64). A block of kScanBlock threads holds
// kScanBlock / P channels of one batch row (both directions: the backward
// sums dB_l, dC_l over a block's channels). P and SPL are compile-time in
// the kernels (one per pair; scan_built), so that the lane sums unroll.
//
// A lower cap gives each lane more states: P = 8 at N = 16 runs two
// states per lane on half the threads, sharing a position's per-lane work
// (the shuffles of dt and u, the loop, the sums' shuffles) among two
// states; builds with -DFLASHSNN_SCAN_LANES_CAP=8 (or 4, 16) compare the
// two on a GPU (docs/cuda.md). The cap never leaves more than kScanMaxSpl
// states to a lane (the backward's registers): P grows past it for large N.
#ifndef FLASHSNN_SCAN_LANES_CAP
#define FLASHSNN_SCAN_LANES_CAP 32
#endif
static_assert(FLASHSNN_SCAN_LANES_CAP == 4 || FLASHSNN_SCAN_LANES_CAP == 8 ||
                  FLASHSNN_SCAN_LANES_CAP == 16 || FLASHSNN_SCAN_LANES_CAP == 32,
              "FLASHSNN_SCAN_LANES_CAP: 4, 8, 16 or 32");
// The cap must be the same for the host compiler (scan.cpp sizes the
// backward's partial sums by scan_groups: scan_scratch, scan_sums) and for
// nvcc (the kernels): each names this symbol with the cap it sees, and
// scan.cu defines the kernels' one (value: the cap), so a build that gave
// the macro to one compiler only has an undefined symbol (the extension
// fails to load; scripts/gpu/build_cuda.sh's check names it) instead of
// wrong gradients.
#define FLASHSNN_SCAN_CAP_NAME_(c) flashsnn_scan_lanes_cap_##c
#define FLASHSNN_SCAN_CAP_NAME(c) FLASHSNN_SCAN_CAP_NAME_(c)
extern "C" const int FLASHSNN_SCAN_CAP_NAME(FLASHSNN_SCAN_LANES_CAP);
constexpr unsigned kScanBlock = 128;
constexpr int kScanMaxN = 64;
constexpr int kScanMaxSpl = 4;
FS_FN constexpr int scan_lanes(int64_t N) {
  int P = 1;
  while (P < N && P < FLASHSNN_SCAN_LANES_CAP) P *= 2;
  while (P < 32 && (N + P - 1) / P > kScanMaxSpl) P *= 2;
  return P;
}
FS_FN constexpr int scan_spl(int64_t N) {
  return int((N + scan_lanes(N) - 1) / scan_lanes(N));
}
// Whether some N in 1 .. kScanMaxN runs on P lanes with SPL states each:
// the kernels built.
FS_FN constexpr bool scan_built(int P, int SPL) {
  for (int n = 1; n <= kScanMaxN; ++n)
    if (scan_lanes(n) == P && scan_spl(n) == SPL) return true;
  return false;
}
FS_FN int64_t scan_block_channels(int64_t N) {
  return kScanBlock / scan_lanes(N);
}
FS_FN int64_t scan_groups(int64_t D, int64_t N) {
  return (D + scan_block_channels(N) - 1) / scan_block_channels(N);
}
// Threads per block of a launch. The forward has no block-wide step, and
// blocks of 64 put a small layer on twice the SMs: batch 2, D = 256, N = 16
// is 8,192 lanes, 64 blocks of 128 on an H200's 132 SMs.
constexpr unsigned kScanForwardBlock = 64;
FS_FN unsigned scan_block_threads(bool backward) {
  return backward ? kScanBlock : kScanForwardBlock;
}
// Forward blocks per batch row: a block's D P lanes never straddle two rows,
// so that a thread finds its row by a 32-bit division of the block index
// (inline; the 64-bit one is a call, around which ptxas spilled).
FS_FN int64_t scan_forward_row_blocks(int64_t D, int64_t N) {
  return (D * scan_lanes(N) + kScanForwardBlock - 1) / kScanForwardBlock;
}
// Blocks a launch runs: forward, D P lanes per batch row (scan_forward_row_
// blocks); backward, one per (batch row, channel group).
FS_FN int64_t scan_blocks(int64_t Bt, int64_t D, int64_t N, bool backward) {
  return Bt * (backward ? scan_groups(D, N) : scan_forward_row_blocks(D, N));
}

// Positions per reduction round of the backward: R N <= 256 floats per
// {B, C} and warp, 8 KB of shared memory for any N.
FS_FN int scan_round(int64_t N) {
  return int(256 / (scan_spl(N) * scan_lanes(N)));
}
FS_FN unsigned scan_shared_bytes(int64_t N) {
  return unsigned(scan_round(N) * 2 * (kScanBlock / 32) * scan_spl(N) * scan_lanes(N) *
                  sizeof(float));
}

// The kernels' loop shapes (scan.cuh), compile-time in P and SPL.
FS_FN constexpr int scan_log2(int n) {
  return n <= 1 ? 0 : 1 + scan_log2(n / 2);
}

// Positions whose inputs a lane loads before it computes any of them. One
// position per iteration waited on its own loads: 1.2 us a position on an
// H200 at batch 2, L = 4096, D = 256 (4.95 ms, 19x the byte floor), the
// latency of a global load with 2 warps per SM to hide it; nvcc cannot move
// the next position's loads above this one's store of `out` by itself.
// Registers: 2 SPL per position ahead in the forward, SPL in the backward's
// recomputation, 5 SPL in its walk (B, C and the states before and after;
// dt's and u's gradients); more in the walk made ptxas spill (the build
// refuses local memory) within the backward's 128 registers
// (scan_kernels.cuh). The kDense recomputation loads as many as the
// forward (ScanSpan).
template <int SPL>
struct ScanAhead {
  static constexpr int fwd = SPL == 1 ? 16 : SPL == 2 ? 8 : 4;
  static constexpr int recompute = SPL == 1 ? 4 : 2;
  static constexpr int walk = SPL == 1 ? 4 : 2;
  // The forward's checked path: fewer, for the kernel's registers (one
  // allocation for both paths): with 16 ahead there (and no minimum of
  // blocks per SM) the forward took 76 at P = 16, against 56 with 8, and
  // spilled at P <= 2.
  static constexpr int fwd_checked = fwd / 2;
};

// Positions whose per-channel work (ScanOwn: loads of u, delta, z, dout,
// softplus, the gate and their gradients, the output stores) is shared out
// at once, one to a lane, in the kDense path: a span of max(P, group)
// positions, so that every lane has one where a channel has lanes to spare
// (16 positions at P = 16, against the walk's 4 ahead: the owners'
// softplus, gate and sigmoid were a quarter of a walk position's
// instructions with 4 of 16 lanes busy). The walk's spans end at its
// rounds' (R = 256 / (P SPL) positions). The checked path keeps spans of
// one group (lane j owns position j, or j, j + P, ... when P is smaller):
// with wider ones, unrolled, the checked forward alone took 158 registers at
// P = 32 and 216 at two states per lane (every group's loads moved ahead).
FS_FN constexpr int scan_max(int a, int b) {
  return a > b ? a : b;
}
template <int P, int SPL, bool kDense>
struct ScanSpan {
  static constexpr int R = 256 / (P * SPL);
  // Positions per span and per group (loaded at once) in it. (Below 4
  // lanes (N <= 2) a dense forward span of 16 left 8 or 16 positions' owner
  // values to a lane, and ptxas spilled at P = 2: those take 8.)
  static constexpr int fwd_group =
      kDense && P >= 4 ? ScanAhead<SPL>::fwd : ScanAhead<SPL>::fwd_checked;
  static constexpr int fwd = kDense ? scan_max(P, fwd_group) : fwd_group;
  static constexpr int recompute_group =
      kDense && P >= 4 ? ScanAhead<SPL>::fwd : ScanAhead<SPL>::recompute;
  static constexpr int recompute = kDense ? scan_max(P, recompute_group) : recompute_group;
  static constexpr int walk_group = ScanAhead<SPL>::walk;
  static constexpr int walk = !kDense                      ? walk_group
                              : scan_max(P, walk_group) < R ? scan_max(P, walk_group)
                                                            : R;
};

// Owned positions per lane of a span of W: lane j owns span positions j,
// j + P, ... (W / P of them when P < W, else one, none for j >= W).
FS_FN constexpr int scan_owned(int P, int W) {
  return P < W ? W / P : 1;
}

// Calls f(ScanConfig<P, SPL>{}) with the built (P, SPL) of scan_lanes(N),
// scan_spl(N); false for an N no kernel takes.
template <int P_, int SPL_>
struct ScanConfig {
  static constexpr int P = P_, SPL = SPL_;
};
template <int P, int SPL, class F>
bool scan_config_at(int lanes, int spl, F& f) {
  if constexpr (scan_built(P, SPL)) {
    if (lanes == P && spl == SPL) {
      f(ScanConfig<P, SPL>{});
      return true;
    }
  }
  return false;
}
template <class F>
bool scan_with_config(int64_t N, F&& f) {
  if (N < 1 || N > kScanMaxN) return false;
  const int P = scan_lanes(N), spl = scan_spl(N);
  return scan_config_at<1, 1>(P, spl, f) || scan_config_at<2, 1>(P, spl, f) ||
         scan_config_at<4, 1>(P, spl, f) || scan_config_at<8, 1>(P, spl, f) ||
         scan_config_at<16, 1>(P, spl, f) || scan_config_at<32, 1>(P, spl, f) ||
         scan_config_at<4, 2>(P, spl, f) || scan_config_at<8, 2>(P, spl, f) ||
         scan_config_at<16, 2>(P, spl, f) || scan_config_at<32, 2>(P, spl, f) ||
         scan_config_at<4, 4>(P, spl, f) || scan_config_at<8, 4>(P, spl, f) ||
         scan_config_at<16, 4>(P, spl, f) || scan_config_at<32, 4>(P, spl, f);
}

// Where a scan thread works (scan.cuh): batch row b, channel d, lane j of the channel's P;
// `on` is false past the last channel (such a thread runs every loop and
// every cross-lane operation with zeros, and touches no memory but shared).
struct ScanLane {
  int64_t b, d;
  int j;
  bool on;
};

// What a lane loads once: A (and A log2(e), scan_decay's), a time-invariant
// B / C of its states, D and the bias of its channel.
template <int P, int SPL>
struct ScanStates {
  float A[SPL], A2[SPL], Bf[SPL], Cf[SPL];
  float Dd, bias;

  FS_FN void load(const ScanParams& p, const ScanLane& w) {
    for (int s = 0; s < SPL; ++s) {
      const int64_t n = w.j + int64_t(s) * P;
      const bool in = w.on && n < p.N;
      A[s] = in ? p.A[w.d * p.N + n] : 0.0f;
      A2[s] = A[s] * 1.4426950408889634f;
      Bf[s] = in && !p.B_varies ? static_cast<const float*>(p.B)[w.d * p.N + n] : 0.0f;
      Cf[s] = in && !p.C_varies ? static_cast<const float*>(p.C)[w.d * p.N + n] : 0.0f;
    }
    Dd = w.on && p.has_D ? p.Dv[w.d] : 0.0f;
    bias = w.on && p.has_bias ? p.bias[w.d] : 0.0f;
  }
};

// A lane's running gradients in the backward: dL/dh of its states, and its
// sums of dA, a time-invariant dB / dC, dD and dbias.
template <int SPL>
struct ScanGrads {
  float gh[SPL], dA[SPL], dBf[SPL], dCf[SPL];
  float dD, dbias;
};

// The last kernel of the backward: dst[j] = sum over k < parts of
// src[k n + j], k in order, for up to kScanSums (src, dst) pairs at once.
constexpr int kScanSums = 5;
constexpr unsigned kScanSumBlock = 256;
struct ScanSumParams {
  const float* src[kScanSums];
  float* dst[kScanSums];
  int64_t parts[kScanSums];
  int64_t n[kScanSums];
  int jobs;
};

// Float32 elements of the backward's scratch buffers (at least 1 each).
struct ScanScratch {
  int64_t hs, pA, pB, pC, pD, pbias;
};
inline ScanScratch scan_scratch(const ScanParams& p) {
  // times 1: the reference that ties this compiler's cap to the kernels'
  const int64_t one = FLASHSNN_SCAN_CAP_NAME(FLASHSNN_SCAN_LANES_CAP) / FLASHSNN_SCAN_LANES_CAP;
  const int64_t DN = p.D * p.N, steps = one * scan_groups(p.D, p.N) * p.Bt * p.L * p.N;
  auto least1 = [](int64_t n) { return n > 0 ? n : int64_t(1); };
  return {least1(p.Bt * (p.K + 1) * DN), least1(p.Bt * DN),
          least1(p.B_varies ? steps : p.Bt * DN), least1(p.C_varies ? steps : p.Bt * DN),
          least1(p.Bt * p.D), least1(p.Bt * p.D)};
}

// The sums that finish a backward: dA, dB, dC, dD, dbias (outputs in
// src/ops/scan.h's shapes; null where absent) from the partials of p.
inline ScanSumParams scan_sums(const ScanParams& p, float* dA, float* dB, float* dC, float* dD,
                               float* dbias) {
  ScanSumParams q{};
  const int64_t G = scan_groups(p.D, p.N), DN = p.D * p.N, steps = p.Bt * p.L * p.N;
  auto add = [&](const float* src, float* dst, int64_t parts, int64_t n) {
    if (!dst || n == 0) return;
    q.src[q.jobs] = src;
    q.dst[q.jobs] = dst;
    q.parts[q.jobs] = parts;
    q.n[q.jobs] = n;
    ++q.jobs;
  };
  add(p.pA, dA, p.Bt, DN);
  add(p.pB, dB, p.B_varies ? G : p.Bt, p.B_varies ? steps : DN);
  add(p.pC, dC, p.C_varies ? G : p.Bt, p.C_varies ? steps : DN);
  if (p.has_D) add(p.pD, dD, p.Bt, p.D);
  if (p.has_bias) add(p.pbias, dbias, p.Bt, p.D);
  return q;
}


// One (src, dst) pair of ScanSumParams per thread column j.
FS_FN void scan_sum_thread(const ScanSumParams& p, int job, int64_t j) {
  if (job >= p.jobs || j >= p.n[job]) return;
  float acc = 0.0f;
  for (int64_t k = 0; k < p.parts[job]; ++k) acc += p.src[job][k * p.n[job] + j];
  p.dst[job][j] = acc;
}

// Blocks of kScanSumBlock threads along x (one job per y) for the sums.
inline int64_t scan_sum_blocks(const ScanSumParams& q) {
  int64_t most = 1;
  for (int j = 0; j < q.jobs; ++j) most = q.n[j] > most ? q.n[j] : most;
  return (most + kScanSumBlock - 1) / kScanSumBlock;
}

// A scan kernel ready to launch: 1-D grid, dynamic shared memory.
struct ScanLaunch {
  CUfunction fn;
  unsigned grid, block, shared;
};

// The kernels for (u's dtype, these arguments) on CUDA device `device`:
// forward, backward (per block) and the final sums. Null on success, else a
// message (static storage) for the caller to raise.
const char* scan_launch(const ScanParams& p, bool backward, int dtype, int device,
                        ScanLaunch* out);
const char* scan_sum_launch(const ScanSumParams& p, int device, ScanLaunch* out);

}  // namespace flashsnn::cuda

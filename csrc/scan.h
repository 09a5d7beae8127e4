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
  float* hs;            // backward scratch: [Bt, K + 1, D, N], one chunk's states
  float* pA;            // backward partials: [Bt, D, N]
  float* pB;            // [groups, Bt, L, N] per step, or [Bt, D, N]
  float* pC;            // as pB
  float* pD;            // [Bt, D]
  float* pbias;         // [Bt, D]
  int64_t Bt, L, D, N, K, nchk;
  int has_D, has_z, has_bias, has_h0, softplus, B_varies, C_varies;
};

// Work split: each channel's N states are spread over P lanes of a warp
// (P = N rounded up to a power of two, at most 32), SPL states per lane
// (SPL = ceil(N / P): 1 up to 32 states, 2 up to 64). A block of
// kScanBlock threads holds kScanBlock / P channels of one batch row (both
// directions: the backward sums dB_l, dC_l over a block's channels).
constexpr unsigned kScanBlock = 128;
constexpr int kScanMaxN = 64;
FS_FN int scan_lanes(int64_t N) {
  int P = 1;
  while (P < N && P < 32) P *= 2;
  return P;
}
FS_FN int scan_spl(int64_t N) {
  return int((N + scan_lanes(N) - 1) / scan_lanes(N));
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
// Blocks a launch runs: forward, B D P lanes; backward, one per (batch row,
// channel group).
FS_FN int64_t scan_blocks(int64_t Bt, int64_t D, int64_t N, bool backward) {
  const int64_t threads = scan_block_threads(backward);
  return backward ? Bt * scan_groups(D, N) : (Bt * D * scan_lanes(N) + threads - 1) / threads;
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
  const int64_t DN = p.D * p.N, steps = scan_groups(p.D, p.N) * p.Bt * p.L * p.N;
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

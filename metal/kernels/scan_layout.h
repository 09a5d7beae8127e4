// The argument table and work split of the selective scan's Metal kernels
// (scan.metal): every [[buffer(n)]] and [[function_constant(n)]] index, the
// dims array, and the backward's reduction geometry, as constexpr functions
// that the kernel signatures and the launch plans (metal/scan.h) both call.
// Plain C++14, read by the Metal compiler (through embed.py) and the host.
//
// The design is scan.metal's header comment; on Metal each array is its own
// buffer argument (no pointer structs by value), so B and C have two
// arguments each: per step (u's dtype) or fixed (float32), one compiled out
// by a function constant; and the backward's round of positions keeps its
// threadgroup array within the 32 KB every Apple GPU gives one threadgroup
// (scan_round: S N <= 64 with a 33-float pitch).
#pragma once

#include "../../src/step/common.h"

namespace fs {
namespace scan_layout {

// Function constants: the op's options, one pipeline per combination. B and
// C need one constant per argument (per step / fixed) because a gate is the
// name of a bool function constant; the plan sets both, complementary.
enum FunctionConstantIndex : int {
  kFcHasD = 0,
  kFcHasZ = 1,
  kFcHasBias = 2,
  kFcHasH0 = 3,
  kFcSoftplus = 4,
  kFcBStep = 5,   // B is [Bt, L, N] in u's dtype
  kFcBFixed = 6,  // B is [D, N] float32
  kFcCStep = 7,
  kFcCFixed = 8,
  kNumFunctionConstants = 9
};

// The inputs every kernel of the scan reads, at the same indices in the
// forward and the backward.
FS_FN constexpr int in_u() { return 0; }
FS_FN constexpr int in_delta() { return 1; }
FS_FN constexpr int in_A() { return 2; }
FS_FN constexpr int in_B_step() { return 3; }
FS_FN constexpr int in_B_fixed() { return 4; }
FS_FN constexpr int in_C_step() { return 5; }
FS_FN constexpr int in_C_fixed() { return 6; }
FS_FN constexpr int in_D() { return 7; }
FS_FN constexpr int in_z() { return 8; }
FS_FN constexpr int in_bias() { return 9; }

// Forward: h0 -> out, last, chk; dims.
FS_FN constexpr int fwd_h0() { return 10; }
FS_FN constexpr int fwd_out() { return 11; }
FS_FN constexpr int fwd_last() { return 12; }
FS_FN constexpr int fwd_chk() { return 13; }
FS_FN constexpr int fwd_dims() { return 14; }

// Backward: chk, dout, dlast -> du, ddelta, dz, dh0; scratch (hs) and the
// partials the sum kernel adds up; dims. The backward never reads h0: the
// forward's first checkpoint is h0.
FS_FN constexpr int bwd_chk() { return 10; }
FS_FN constexpr int bwd_dout() { return 11; }
FS_FN constexpr int bwd_dlast() { return 12; }
FS_FN constexpr int bwd_du() { return 13; }
FS_FN constexpr int bwd_ddelta() { return 14; }
FS_FN constexpr int bwd_dz() { return 15; }
FS_FN constexpr int bwd_dh0() { return 16; }
FS_FN constexpr int bwd_hs() { return 17; }
FS_FN constexpr int bwd_pA() { return 18; }
FS_FN constexpr int bwd_pB() { return 19; }
FS_FN constexpr int bwd_pC() { return 20; }
FS_FN constexpr int bwd_pD() { return 21; }
FS_FN constexpr int bwd_pbias() { return 22; }
FS_FN constexpr int bwd_dims() { return 23; }

// The sum kernel: dst[j] = sum over k < parts of src[k n + j].
FS_FN constexpr int sum_src() { return 0; }
FS_FN constexpr int sum_dst() { return 1; }
FS_FN constexpr int sum_dims() { return 2; }  // {parts, n}

// The dims array of the forward and the backward.
FS_FN constexpr int dims_Bt() { return 0; }
FS_FN constexpr int dims_L() { return 1; }
FS_FN constexpr int dims_D() { return 2; }
FS_FN constexpr int dims_N() { return 3; }
FS_FN constexpr int dims_K() { return 4; }     // chunk: positions between checkpoints
FS_FN constexpr int dims_nchk() { return 5; }  // ceil(L / K)
FS_FN constexpr int dims_size() { return 6; }

static_assert(bwd_dims() <= 30, "Metal has 31 buffer slots (0..30)");

// Channels (threads) of a backward threadgroup: one SIMD group on every
// Apple GPU, as kScanChannels is one warp on CUDA.
FS_FN constexpr int channels() { return 32; }

// The state counts the kernels are built for (registers per thread), as on
// CUDA: a layer with N states runs the smallest that holds it.
FS_FN constexpr int max_states() { return 128; }
FS_FN constexpr int nmax(int N) { return N <= 16 ? 16 : N <= 32 ? 32 : N <= 64 ? 64 : 128; }

// The backward's reduction buffer: per position of a round, the dB terms of
// its N states then the dC terms, each a row of `pitch` floats holding the
// 32 channels' terms. A pitch of 33 staggers a row's start across the 32
// banks so the column sums read without conflicts; at NMAX 128 one row pair
// is 2 x 128 x 33 x 4 = 33 KB, over Apple's 32 KB per threadgroup, so there
// the pitch is 32 (32 KB exactly; bank conflicts in the sums, untuned:
// TODO(apple-hw) measure them on an M-series GPU).
FS_FN constexpr int pitch(int NMAX) { return NMAX <= 64 ? channels() + 1 : channels(); }
// Positions per round: S N <= 64 (one position when N > 64), so a round's
// buffer is at most 64 x 2 x 33 floats (16.5 KB) for NMAX <= 64.
FS_FN constexpr int round_positions(int N) { return N >= 64 ? 1 : 64 / N; }
// Floats of the buffer a kernel instantiated for NMAX declares: the largest
// S N over N <= NMAX, times 2 (B, C), times the pitch.
FS_FN constexpr int red_floats(int NMAX) { return (NMAX <= 64 ? 64 : NMAX) * 2 * pitch(NMAX); }
// Every Apple GPU's maxThreadgroupMemoryLength (MTLDevice; 32 KB since A11).
FS_FN constexpr int threadgroup_limit() { return 32768; }
static_assert(red_floats(16) * 4 <= threadgroup_limit() && red_floats(32) * 4 <= threadgroup_limit() &&
                  red_floats(64) * 4 <= threadgroup_limit() &&
                  red_floats(128) * 4 <= threadgroup_limit(),
              "the backward's reduction buffer must fit one threadgroup's memory");

}  // namespace scan_layout
}  // namespace fs

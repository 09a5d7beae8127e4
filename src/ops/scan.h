// The selective scan (Mamba-1): the op function and its two primitives.
// eval_cpu lives in src/cpu/scan.cpp, eval_gpu in csrc/scan.cpp (CUDA),
// metal/scan.cpp (Metal) or src/no_gpu/scan.cpp (a build without a GPU).
//
// Layout, channels-last: u, delta, z, out [Bt, L, D]; A [D, N]; B and C
// [Bt, L, N] (per step) or [D, N] (time-invariant); D, bias [D]; h0, last
// [Bt, D, N]. Sequence inputs in one dtype (float32/float16/bfloat16),
// everything else float32. The forward saves the state entering every
// chunk of `chunk` positions, [Bt, ceil(L/chunk), D, N] float32; the
// backward recomputes the states inside a chunk from it, so memory stays
// O(Bt D N L / chunk) rather than O(Bt D N L).
#pragma once

#include <vector>

#include "mlx/array.h"
#include "mlx/primitives.h"
#include "mlx/utils.h"

namespace flashsnn {

namespace mx = mlx::core;

struct ScanOptions {
  bool has_D = false, has_z = false, has_bias = false, has_h0 = false;
  bool softplus = false;
  bool B_varies = true, C_varies = true;  // [Bt, L, N] (else [D, N])
  int chunk = 64;

  bool operator==(const ScanOptions& o) const {
    return has_D == o.has_D && has_z == o.has_z && has_bias == o.has_bias &&
        has_h0 == o.has_h0 && softplus == o.softplus && B_varies == o.B_varies &&
        C_varies == o.C_varies && chunk == o.chunk;
  }
};

// The primitives' array order.
//  forward  inputs  u, delta, A, B, C, [D], [z], [bias], [h0]
//           outputs out [Bt, L, D] (u's dtype), last [Bt, D, N], chk [Bt, K, D, N]
//  backward inputs  the forward's inputs, chk, dout [Bt, L, D] (u's dtype),
//                   dlast [Bt, D, N] float32
//           outputs du, ddelta (u's dtype), dA [D, N], dB, dC (float32,
//                   [Bt, L, N] per step or [D, N] time-invariant), dD [D],
//                   dz (u's dtype), dbias [D], dh0 [Bt, D, N]; absent
//                   inputs' outputs are empty [0]. Sums over batch rows and
//                   channel groups are the kernel's, in a fixed order.
struct ScanLayout {
  ScanOptions o;
  int D() const { return 5; }
  int z() const { return 5 + o.has_D; }
  int bias() const { return z() + o.has_z; }
  int h0() const { return bias() + o.has_bias; }
  int inputs() const { return h0() + o.has_h0; }
};

// Channels one CPU work item owns: dB and dC are summed over them in the
// item, then over the items in a fixed order.
constexpr int kScanGroup = 32;

// out, last.
std::vector<mx::array> selective_scan(const mx::array& u, const mx::array& delta,
                                      const mx::array& A, const mx::array& B,
                                      const mx::array& C, const std::vector<mx::array>& D,
                                      const std::vector<mx::array>& z,
                                      const std::vector<mx::array>& bias,
                                      const std::vector<mx::array>& h0, bool softplus,
                                      int chunk, mx::StreamOrDevice s = {});

class ScanForward : public mx::Primitive {
 public:
  ScanForward(mx::Stream stream, ScanOptions o) : mx::Primitive(stream), o_(o) {}
  void eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override;
  void eval_gpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override;
  std::vector<mx::array> vjp(const std::vector<mx::array>& primals,
                             const std::vector<mx::array>& cotangents,
                             const std::vector<int>& argnums,
                             const std::vector<mx::array>& outputs) override;
  std::pair<std::vector<mx::array>, std::vector<int>> vmap(
      const std::vector<mx::array>& inputs, const std::vector<int>& axes) override;
  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& inputs) override;
  const char* name() const override { return "SelectiveScanForward"; }
  bool is_equivalent(const mx::Primitive& other) const override {
    return o_ == static_cast<const ScanForward&>(other).o_;
  }
  const ScanOptions& options() const { return o_; }

 private:
  ScanOptions o_;
};

class ScanBackward : public mx::Primitive {
 public:
  ScanBackward(mx::Stream stream, ScanOptions o) : mx::Primitive(stream), o_(o) {}
  void eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override;
  void eval_gpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override;
  std::pair<std::vector<mx::array>, std::vector<int>> vmap(
      const std::vector<mx::array>& inputs, const std::vector<int>& axes) override;
  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& inputs) override;
  const char* name() const override { return "SelectiveScanBackward"; }
  bool is_equivalent(const mx::Primitive& other) const override {
    return o_ == static_cast<const ScanBackward&>(other).o_;
  }

 private:
  ScanOptions o_;
};

}  // namespace flashsnn

// The selective scan: op function (checks, shapes) and transforms (vjp,
// vmap, shapes). Kernels: src/cpu/scan.cpp, csrc/scan.cu (CUDA), metal/scan.cpp
// (Metal); src/no_gpu/scan.cpp for builds without a GPU backend.
#include "scan.h"

#include <string>

#include "mlx/ops.h"
#include "mlx/transforms.h"

#include "common.h"

namespace flashsnn {

namespace {

constexpr const char* kOp = "selective_scan";

void want_shape(const mx::array& a, const char* name, const Shape_t& s, const char* what) {
  if (a.shape() != s)
    fail(kOp, std::string(name) + " must have shape " + what + " = " + shape_str(s) + ", got " +
                  shape_str(a.shape()));
}

void want_dtype(const mx::array& a, const char* name, mx::Dtype dt, const char* why) {
  if (a.dtype() != dt) {
    std::ostringstream os;
    os << name << " must be " << dt << " (" << why << "), got " << a.dtype();
    fail(kOp, os.str());
  }
}

// B or C: per step [Bt, L, N] in u's dtype, or time-invariant [D, N] float32.
bool check_coef(const mx::array& m, const char* name, const mx::array& u, int64_t N) {
  const Shape_t step = {u.shape(0), u.shape(1), int(N)}, fixed = {u.shape(2), int(N)};
  if (m.shape() == step) {
    want_dtype(m, name, u.dtype(), "a per-step input has u's dtype");
    return true;
  }
  if (m.shape() == fixed) {
    want_dtype(m, name, mx::float32, "a time-invariant input is float32");
    return false;
  }
  fail(kOp, std::string(name) + " must be [batch, L, N] = " + shape_str(step) +
                " or [D, N] = " + shape_str(fixed) + ", got " + shape_str(m.shape()));
}

std::vector<mx::Shape> forward_shapes(const ScanOptions& o, const std::vector<mx::array>& in) {
  const auto& u = in[0];
  const int Bt = u.shape(0), L = u.shape(1), D = u.shape(2), N = in[2].shape(1);
  const int K = (L + o.chunk - 1) / o.chunk;
  return {u.shape(), {Bt, D, N}, {Bt, K, D, N}};
}

std::vector<mx::array> forward_all(const std::vector<mx::array>& in, const ScanOptions& o,
                                   mx::Stream s) {
  auto shapes = forward_shapes(o, in);
  std::vector<mx::array> k;
  for (const auto& a : in) k.push_back(kernel_input(a, s));
  return mx::array::make_arrays(std::move(shapes), {in[0].dtype(), mx::float32, mx::float32},
                                std::make_shared<ScanForward>(s, o), std::move(k));
}

std::vector<mx::Shape> backward_shapes(const ScanOptions& o, const std::vector<mx::array>& in) {
  const auto& u = in[0];
  const int Bt = u.shape(0), L = u.shape(1), D = u.shape(2), N = in[2].shape(1);
  const mx::Shape state = {Bt, D, N}, none = {0};
  return {u.shape(),
          u.shape(),
          {D, N},
          o.B_varies ? mx::Shape{Bt, L, N} : mx::Shape{D, N},
          o.C_varies ? mx::Shape{Bt, L, N} : mx::Shape{D, N},
          o.has_D ? mx::Shape{D} : none,
          o.has_z ? u.shape() : none,
          o.has_bias ? mx::Shape{D} : none,
          o.has_h0 ? state : none};
}

// Each vmapped slice as its own call, stacked: correct for every input
// (A, B and C may differ per slice), O(V) nodes. vmap over a scan is rare.
template <typename F>
std::pair<std::vector<mx::array>, std::vector<int>> by_slices(
    const std::vector<mx::array>& inputs, const std::vector<int>& axes, mx::Stream s, F&& call) {
  int V = -1;
  for (size_t j = 0; j < inputs.size(); ++j)
    if (axes[j] >= 0) V = inputs[j].shape(axes[j]);
  std::vector<std::vector<mx::array>> outs;
  for (int v = 0; v < V; ++v) {
    std::vector<mx::array> in;
    for (size_t j = 0; j < inputs.size(); ++j) {
      in.push_back(axes[j] < 0 ? inputs[j]
                               : mx::squeeze(mx::slice(inputs[j], [&] {
                                   mx::Shape st(inputs[j].ndim(), 0);
                                   st[axes[j]] = v;
                                   return st;
                                 }(), [&] {
                                   mx::Shape e = inputs[j].shape();
                                   e[axes[j]] = v + 1;
                                   return e;
                                 }(), s), axes[j], s));
    }
    outs.push_back(call(in));
  }
  std::vector<mx::array> stacked;
  for (size_t k = 0; k < outs[0].size(); ++k) {
    std::vector<mx::array> parts;
    for (auto& o : outs) parts.push_back(o[k]);
    stacked.push_back(mx::stack(parts, 0, s));
  }
  return {stacked, std::vector<int>(stacked.size(), 0)};
}

}  // namespace

std::vector<mx::array> selective_scan(const mx::array& u, const mx::array& delta,
                                      const mx::array& A, const mx::array& B,
                                      const mx::array& C, const std::vector<mx::array>& D,
                                      const std::vector<mx::array>& z,
                                      const std::vector<mx::array>& bias,
                                      const std::vector<mx::array>& h0, bool softplus,
                                      int chunk, mx::StreamOrDevice sd) {
  auto s = mx::to_stream(sd);
  if (D.size() > 1 || z.size() > 1 || bias.size() > 1 || h0.size() > 1)
    fail(kOp, "D, z, delta_bias and initial_state are one array each, or absent");
  if (chunk < 1) fail(kOp, "chunk must be >= 1, got " + std::to_string(chunk));
  if (u.ndim() != 3) fail(kOp, "u must be [batch, L, D], got " + shape_str(u.shape()));
  check_float_dtype(kOp, "u", u.dtype());
  want_shape(delta, "delta", u.shape(), "u's [batch, L, D]");
  want_dtype(delta, "delta", u.dtype(), "the sequence inputs share u's dtype");
  if (A.ndim() != 2 || A.shape(0) != u.shape(2))
    fail(kOp, "A must be [D, N] with D = " + std::to_string(u.shape(2)) + ", got " +
                  shape_str(A.shape()));
  want_dtype(A, "A", mx::float32, "parameters are float32");
  const int64_t N = A.shape(1);
  ScanOptions o;
  o.B_varies = check_coef(B, "B", u, N);
  o.C_varies = check_coef(C, "C", u, N);
  o.softplus = softplus;
  o.chunk = chunk;
  std::vector<mx::array> in = {u, delta, A, B, C};
  if ((o.has_D = !D.empty())) {
    want_shape(D[0], "D", {u.shape(2)}, "[D]");
    want_dtype(D[0], "D", mx::float32, "parameters are float32");
    in.push_back(D[0]);
  }
  if ((o.has_z = !z.empty())) {
    want_shape(z[0], "z", u.shape(), "u's [batch, L, D]");
    want_dtype(z[0], "z", u.dtype(), "the sequence inputs share u's dtype");
    in.push_back(z[0]);
  }
  if ((o.has_bias = !bias.empty())) {
    want_shape(bias[0], "delta_bias", {u.shape(2)}, "[D]");
    want_dtype(bias[0], "delta_bias", mx::float32, "parameters are float32");
    in.push_back(bias[0]);
  }
  if ((o.has_h0 = !h0.empty())) {
    want_shape(h0[0], "initial_state", {u.shape(0), u.shape(2), int(N)}, "[batch, D, N]");
    want_dtype(h0[0], "initial_state", mx::float32, "the state is float32");
    in.push_back(h0[0]);
  }
  auto outs = forward_all(in, o, s);
  return {outs[0], outs[1]};
}

static std::vector<mx::array> backward_all(const std::vector<mx::array>& in, const ScanOptions& o,
                                    mx::Stream s) {
  auto shapes = backward_shapes(o, in);
  std::vector<mx::Dtype> dtypes(shapes.size(), mx::float32);
  dtypes[0] = dtypes[1] = dtypes[6] = in[0].dtype();
  std::vector<mx::array> k;
  for (const auto& a : in) k.push_back(kernel_input(a, s));
  return mx::array::make_arrays(std::move(shapes), dtypes, std::make_shared<ScanBackward>(s, o),
                                std::move(k));
}

std::vector<mx::array> ScanForward::vjp(const std::vector<mx::array>& primals,
                                        const std::vector<mx::array>& cotangents,
                                        const std::vector<int>& argnums,
                                        const std::vector<mx::array>& outputs) {
  auto s = stream();
  const auto& u = primals[0];
  std::vector<mx::array> in = primals;
  in.push_back(outputs[2]);  // the chunk states
  in.push_back(mx::astype(cotangents[0], u.dtype(), s));
  in.push_back(mx::astype(cotangents[1], mx::float32, s));
  auto g = backward_all(in, o_, s);
  const ScanLayout lay{o_};
  std::vector<mx::array> out;
  for (int a : argnums) {
    if (a < 0 || a >= int(primals.size()))
      fail(kOp, "vjp asked for input " + std::to_string(a) + " of " +
                    std::to_string(primals.size()));
    // The kernel's outputs are final sums (no MLX reduction: a sum over an
    // axis of size 1 of a primitive's output crashed MLX 0.32.4's shapeless
    // compile); a per-step B or C in 16 bits gets its dtype back.
    const auto& p = primals[a];
    int k = a <= 4 ? a : a == lay.D() && o_.has_D ? 5 : a == lay.z() && o_.has_z ? 6
        : a == lay.bias() && o_.has_bias ? 7 : 8;
    out.push_back(g[k].dtype() == p.dtype() ? g[k] : mx::astype(g[k], p.dtype(), s));
    if (out.back().shape() != p.shape())
      fail(kOp, "internal: gradient shape mismatch for input " + std::to_string(a));
  }
  return out;
}

std::pair<std::vector<mx::array>, std::vector<int>> ScanForward::vmap(
    const std::vector<mx::array>& inputs, const std::vector<int>& axes) {
  auto s = stream();
  const ScanOptions o = o_;
  return by_slices(inputs, axes, s, [&](const std::vector<mx::array>& in) {
    return forward_all(in, o, s);
  });
}

std::pair<std::vector<mx::array>, std::vector<int>> ScanBackward::vmap(
    const std::vector<mx::array>& inputs, const std::vector<int>& axes) {
  auto s = stream();
  const ScanOptions o = o_;
  return by_slices(inputs, axes, s, [&](const std::vector<mx::array>& in) {
    return backward_all(in, o, s);
  });
}

std::vector<mx::Shape> ScanForward::output_shapes(const std::vector<mx::array>& inputs) {
  return forward_shapes(o_, inputs);
}

std::vector<mx::Shape> ScanBackward::output_shapes(const std::vector<mx::array>& inputs) {
  return backward_shapes(o_, inputs);
}

}  // namespace flashsnn

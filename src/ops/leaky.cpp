// Leaky: op function (validation, shapes) and transforms (vjp, vmap, shapes).
// Kernels: src/cpu/leaky.cpp, csrc/leaky.{cpp,cu}, metal/leaky.cpp.
#include "leaky.h"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>

#include "mlx/ops.h"

#include "common.h"

namespace flashsnn {

namespace {

const char* kOp = "leaky";

Shape_t neuron_shape(const mx::array& x) {
  return Shape_t(x.shape().begin() + 1, x.shape().end());
}

// True when p's shape, leading 1s removed, is a trailing part of S, so that
// element i of the flattened S uses p[i % p.size()].
bool is_suffix_param(const mx::array& p, const Shape_t& S) {
  auto ps = p.shape();
  size_t lead = 0;
  while (lead < ps.size() && ps[lead] == 1) ++lead;
  size_t k = ps.size() - lead;
  if (k > S.size()) return false;
  for (size_t j = 0; j < k; ++j) {
    if (ps[lead + j] != S[S.size() - k + j]) return false;
  }
  return true;
}

void check_options(const LeakyOptions& o) {
  if (o.reset < fs::kSubtract || o.reset > fs::kNone)
    fail(kOp, "reset must be 0 (subtract), 1 (zero) or 2 (none); got " + std::to_string(o.reset));
  if (o.mode < fs::kDelayed || o.mode > fs::kSameStep)
    fail(kOp, "mode must be 0 (delayed), 1 (immediate) or 2 (same-step); got " +
                  std::to_string(o.mode));
  if (o.surrogate.id < 0 || o.surrogate.id >= fs::kNumSurrogates) {
    std::string valid;
#define FS_CHOICE(ID, NAME) \
  valid += (valid.empty() ? "" : ", ") + std::to_string(fs::ID) + " (" #NAME ")";
    FS_FOR_EACH_SURROGATE(FS_CHOICE)
#undef FS_CHOICE
    fail(kOp, "unknown surrogate id " + std::to_string(o.surrogate.id) + "; valid: " + valid);
  }
}

// The most neurons (N = prod(S)) one call takes: the backward's per-neuron
// partial sums are an MLX array [N / P, P] whose dimensions are int32, and
// the Metal kernels index neurons with a 32-bit uint. (Offsets t * N + i are
// 64-bit in every kernel, so T * N may pass 2^31.)
constexpr int64_t kMaxNeurons = INT32_MAX;

// Why a shape reaches a kernel without passing through leaky_forward: its
// errors say so, since the user never called the op with that shape.
const char* const kShapeless =
    " under mx.compile(shapeless=True), which replays a graph traced for other shapes "
    "(compile without shapeless=True for these)";

// mem, beta and threshold are float32 suffix arrays of S (LeakyDims), which
// keeps every p[i % P] read and every [N / P, P] partial in bounds.
void check_params(const mx::array& x, const mx::array& mem, const mx::array& beta,
                  const mx::array& threshold, const char* why) {
  const auto S = neuron_shape(x);
  for (auto* p : {&mem, &beta, &threshold}) {
    const char* what = p == &mem ? "mem" : (p == &beta ? "beta" : "threshold");
    if (p->dtype() != mx::float32)
      fail(kOp, std::string(what) + " must be float32 here (the Python op casts it)");
    if (!is_suffix_param(*p, S))
      fail(kOp, std::string(what) + " of shape " + shape_str(p->shape()) +
                    " must be a scalar or match the trailing dimensions of " + shape_str(S) +
                    " (broadcast other shapes first)" + why);
  }
}

// x's shape is one a kernel can run: at least one step and one neuron (the
// op answers empty inputs without a kernel; a shapeless replay or a vmap
// cannot) and at most kMaxNeurons neurons.
void check_launch_shape(const mx::Shape& xs, const char* why) {
  int64_t N = 1;
  for (size_t j = 1; j < xs.size(); ++j) N *= xs[j];
  if (xs.empty() || xs[0] == 0 || N == 0)
    fail(kOp, "x of shape " + shape_str(xs) + " is empty" + why);
  if (N > kMaxNeurons)
    fail(kOp, "x of shape " + shape_str(xs) + " has " + std::to_string(N) +
                  " neurons per step; one call takes at most 2^31 - 1 (split the layer)" + why);
}

// The stream the op runs on, with MLX's own error (e.g. a GPU stream where
// MLX has no GPU) tagged, and the GPU backend asked whether it can launch a
// kernel there: every such failure happens while the graph is built, never
// inside eval_gpu.
mx::Stream op_stream(mx::StreamOrDevice s) {
  mx::Stream stream = mx::default_stream(mx::Device::cpu);
  try {
    stream = mx::to_stream(s);
  } catch (const std::exception& e) {
    fail(kOp, std::string("no stream to run on: ") + e.what());
  }
  if (stream.device == mx::Device::gpu) leaky_check_gpu(stream);
  return stream;
}

// All outputs of the forward primitive (spk, mem, then h and u if saved).
std::vector<mx::array> forward_all(const mx::array& x,
                                   const mx::array& mem,
                                   const mx::array& beta,
                                   const mx::array& threshold,
                                   LeakyOptions opts,
                                   mx::Stream s) {
  auto dtype = x.dtype();
  std::vector<mx::Shape> shapes = {x.shape(), opts.mem_all ? x.shape() : neuron_shape(x)};
  std::vector<mx::Dtype> dtypes = {dtype, dtype};
  if (opts.save) {
    shapes.push_back(x.shape());
    dtypes.push_back(mx::float32);
  }
  if (opts.saves_u()) {
    shapes.push_back(x.shape());
    dtypes.push_back(mx::float32);
  }
  return mx::array::make_arrays(
      std::move(shapes), dtypes, std::make_shared<LeakyForward>(s, opts),
      {kernel_input(x, s), kernel_input(mem, s), kernel_input(beta, s),
       kernel_input(threshold, s)});
}

// Per-neuron partials [N/P, P] -> the input's own shape. The sum over axis 0
// is MLX's reduction: a fixed order, so the same inputs give bitwise the same
// gradient (no float atomics anywhere).
mx::array reduce_partial(const mx::array& partial, const mx::array& input,
                         mx::Stream s) {
  auto g = partial.shape(0) == 1 ? partial : mx::sum(partial, 0, true, s);
  return mx::reshape(g, input.shape(), s);
}

// Put the vmapped axis of `a` at `pos`, or broadcast an unbatched `a` there.
mx::array batch_at(const mx::array& a, int axis, int pos, int V,
                   mx::Stream s) {
  if (axis >= 0) return mx::moveaxis(a, axis, pos, s);
  auto e = mx::expand_dims(a, pos, s);
  auto shape = e.shape();
  shape[pos] = V;
  return mx::broadcast_to(e, shape, s);
}

// A parameter batched along `axis` becomes a full [V, *S] parameter;
// an unbatched one stays as it is (still a suffix of [V, *S]).
mx::array batch_param(const mx::array& p, int axis, const Shape_t& VS,
                      mx::Stream s) {
  if (axis < 0) return p;
  auto q = mx::moveaxis(p, axis, 0, s);
  // [V, *suffix] -> [V, 1, ..., 1, *suffix] -> [V, *S]
  Shape_t shape(VS.size(), 1);
  shape[0] = q.shape(0);
  for (int j = 1; j < int(q.ndim()); ++j) {
    shape[VS.size() - (q.ndim() - j)] = q.shape(j);
  }
  return mx::broadcast_to(mx::reshape(q, shape, s), VS, s);
}

// A cotangent that is the same at every step, as one [*S] row; or none.
// MLX's vjp of a reduction over time (.sum(), .mean(), .sum(0)) is a
// Broadcast whose input has no time axis or a time axis of 1; an array
// already evaluated with a step stride of 0 is one too.
std::optional<mx::array> step_row(const mx::array& c, mx::Stream s) {
  const Shape_t S(c.shape().begin() + 1, c.shape().end());
  if (c.is_available()) {
    if (c.strides()[0] != 0) return std::nullopt;
    Shape_t start(c.ndim(), 0), stop = c.shape();
    stop[0] = 1;
    return mx::reshape(mx::slice(c, start, stop, s), S, s);
  }
  if (!c.has_primitive() || std::string(c.primitive().name()) != "Broadcast")
    return std::nullopt;
  auto in = c.inputs()[0];
  if (in.ndim() == c.ndim()) {
    if (in.shape(0) != 1) return std::nullopt;
    in = mx::squeeze(in, 0, s);
  }
  return mx::broadcast_to(in, S, s);
}

// A row input of LeakyBackward ([*S], possibly vmapped along `axis`) as the
// [T, *S] array it stands for; the vmapped axis moves one place right.
mx::array expand_row(const mx::array& row, int& axis, int T, mx::Stream s) {
  auto e = mx::expand_dims(row, 0, s);
  auto shape = e.shape();
  shape[0] = T;
  if (axis >= 0) ++axis;
  return mx::broadcast_to(e, shape, s);
}

int vmap_size(const std::vector<mx::array>& inputs,
              const std::vector<int>& axes) {
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (axes[i] < 0) continue;
    // An empty batch would reach the kernels as zero neurons (and divide
    // by V = 0 below): a tagged error instead.
    if (inputs[i].shape(axes[i]) == 0)
      fail(kOp, "mx.vmap over an axis of size 0 has no fused kernel; use backend='reference'");
    return inputs[i].shape(axes[i]);
  }
  fail(kOp, "vmap called with no batched input");
}

}  // namespace

LeakyDims leaky_dims(const mx::array& x, const mx::array& mem,
                     const mx::array& beta, const mx::array& threshold) {
  LeakyDims d;
  d.T = x.shape(0);
  d.N = 1;
  for (int j = 1; j < int(x.ndim()); ++j) d.N *= x.shape(j);
  d.P_mem = mem.size();
  d.P_beta = beta.size();
  d.P_th = threshold.size();
  return d;
}

void check_backward_inputs(const std::vector<mx::array>& inputs, const LeakyOptions& o) {
  const size_t k = o.saves_u() ? 2 : 1;
  if (inputs.size() != k + 5) fail(kOp, "internal: the backward takes " + std::to_string(k + 5));
  const int64_t TN = inputs[0].size(), N = TN / std::max<int64_t>(inputs[0].shape(0), 1);
  const int64_t dspk = o.dspk_row ? N : TN;
  const int64_t dmem = o.mem_all && !o.dmem_row ? TN : N;
  if (int64_t(inputs[k + 3].size()) != dspk || int64_t(inputs[k + 4].size()) != dmem)
    fail(kOp, "internal: cotangent sizes do not match the saved membrane's");
}

std::vector<mx::array> leaky_forward(const mx::array& x,
                                     const mx::array& mem,
                                     const mx::array& beta,
                                     const mx::array& threshold,
                                     LeakyOptions opts,
                                     int save,
                                     mx::StreamOrDevice s) {
  // Every check happens here, before any primitive exists: an error thrown
  // inside eval_gpu would leave MLX's GPU command encoder half-written.
  check_options(opts);
  if (save < -1 || save > 1)
    fail(kOp, "save must be -1 (decide from the inputs), 0 or 1; got " + std::to_string(save));
  if (x.ndim() < 1) fail(kOp, "x must be [T, *S] with a time axis; got a scalar");
  check_float_dtype(kOp, "x", x.dtype());
  auto S = neuron_shape(x);
  check_params(x, mem, beta, threshold, "");
  auto stream = op_stream(s);
  if (x.size() == 0) {
    // T = 0 or an empty neuron shape: nothing to step.
    auto spk = mx::zeros(x.shape(), x.dtype(), stream);
    auto m = opts.mem_all ? mx::zeros(x.shape(), x.dtype(), stream)
                          : mx::astype(mx::broadcast_to(mem, S, stream), x.dtype(), stream);
    return {spk, m};
  }
  check_launch_shape(x.shape(), "");
  // The forward writes h only when something may differentiate through it:
  // inside mx.grad / mx.vjp / mx.compile the inputs are tracers. Inference
  // then moves a third fewer bytes. vjp recomputes h if it was not saved.
  if (save < 0) {
    save = x.is_tracer() || mem.is_tracer() || beta.is_tracer() || threshold.is_tracer();
  }
  opts.save = save != 0;
  auto outs = forward_all(x, mem, beta, threshold, opts, stream);
  return {outs[0], outs[1]};
}

std::vector<mx::array> LeakyForward::jvp(const std::vector<mx::array>&,
                                         const std::vector<mx::array>&,
                                         const std::vector<int>&) {
  fail(kOp, "forward-mode differentiation (jvp) is not supported; use mx.grad or mx.vjp");
}

std::vector<mx::array> LeakyForward::vjp(
    const std::vector<mx::array>& primals,
    const std::vector<mx::array>& cotangents,
    const std::vector<int>& argnums,
    const std::vector<mx::array>& outputs) {
  auto s = stream();
  const auto& x = primals[0];
  const auto& mem = primals[1];
  const auto& beta = primals[2];
  const auto& th = primals[3];

  std::vector<mx::array> saved(outputs.begin() + 2, outputs.end());
  LeakyOptions opts = opts_;
  if (!opts.save) {
    opts.save = true;
    auto again = forward_all(x, mem, beta, th, opts, s);
    saved.assign(again.begin() + 2, again.end());
  }
  // A fixed beta and threshold (snnTorch's default) need no gradient; the
  // CPU backward then skips two accumulations per neuron and step.
  opts.param_grads = false;
  for (int a : argnums) opts.param_grads |= (a == 2 || a == 3);
  // Cotangents arrive in the outputs' dtype from MLX's own ops, but an
  // explicit mx.vjp may pass others; the kernel reads x's dtype.
  auto dspk = mx::astype(cotangents[0], x.dtype(), s);
  auto dmem = mx::astype(cotangents[1], x.dtype(), s);
  if (auto row = step_row(dspk, s)) {
    opts.dspk_row = true;
    dspk = *row;
  }
  if (opts.mem_all) {
    if (auto row = step_row(dmem, s)) {
      opts.dmem_row = true;
      dmem = *row;
    }
  }
  std::vector<mx::array> inputs = saved;
  inputs.insert(inputs.end(), {mem, beta, th, dspk, dmem});
  // h (and u) come from the forward primitive, row-contiguous already.
  for (size_t j = saved.size(); j < inputs.size(); ++j) inputs[j] = kernel_input(inputs[j], s);

  auto N = x.size() / x.shape(0);
  auto part = [&](const mx::array& p) { return mx::Shape{int(N / p.size()), int(p.size())}; };
  auto grads = mx::array::make_arrays(
      {x.shape(), part(mem), part(beta), part(th)},
      {x.dtype(), mx::float32, mx::float32, mx::float32},
      std::make_shared<LeakyBackward>(s, opts), inputs);

  std::vector<mx::array> out;
  for (int a : argnums) {
    if (a < 0 || a > 3) fail(kOp, "vjp asked for input " + std::to_string(a) + " of 4");
    out.push_back(a == 0 ? grads[0] : reduce_partial(grads[a], primals[a], s));
    // MLX does not check the shapes a custom vjp returns.
    if (out.back().shape() != primals[a].shape())
      fail(kOp, "internal: gradient shape mismatch for input " + std::to_string(a));
  }
  return out;
}

std::pair<std::vector<mx::array>, std::vector<int>> LeakyForward::vmap(
    const std::vector<mx::array>& inputs,
    const std::vector<int>& axes) {
  auto s = stream();
  int V = vmap_size(inputs, axes);
  auto x = batch_at(inputs[0], axes[0], 1, V, s);  // [T, V, *S]
  check_launch_shape(x.shape(), " under mx.vmap");
  auto VS = neuron_shape(x);
  auto mem = batch_param(inputs[1], axes[1], VS, s);
  auto beta = batch_param(inputs[2], axes[2], VS, s);
  auto th = batch_param(inputs[3], axes[3], VS, s);
  auto outs = forward_all(x, mem, beta, th, opts_, s);
  std::vector<int> out_axes = {1, opts_.mem_all ? 1 : 0};
  for (size_t j = 2; j < outs.size(); ++j) out_axes.push_back(1);
  return {outs, out_axes};
}

std::vector<mx::Shape> LeakyForward::output_shapes(
    const std::vector<mx::array>& inputs) {
  // Only a shapeless mx.compile asks, with shapes leaky_forward never saw.
  check_launch_shape(inputs[0].shape(), kShapeless);
  check_params(inputs[0], inputs[1], inputs[2], inputs[3], kShapeless);
  const auto& xs = inputs[0].shape();
  std::vector<mx::Shape> shapes = {xs, opts_.mem_all ? xs : neuron_shape(inputs[0])};
  if (opts_.save) shapes.push_back(xs);
  if (opts_.saves_u()) shapes.push_back(xs);
  return shapes;
}

std::pair<std::vector<mx::array>, std::vector<int>> LeakyBackward::vmap(
    const std::vector<mx::array>& inputs,
    const std::vector<int>& axes) {
  auto s = stream();
  int V = vmap_size(inputs, axes);
  // [h, (u), mem, beta, threshold, dspk, dmem]
  size_t k = opts_.saves_u() ? 2 : 1;
  // Row cotangents become whole [T, *S] arrays again: the batched kernel
  // reads one layout per input.
  auto opts = opts_;
  auto raw = inputs;
  auto ax = axes;
  const int T = inputs[0].shape(axes[0] == 0 ? 1 : 0);
  if (opts.dspk_row) raw[k + 3] = expand_row(raw[k + 3], ax[k + 3], T, s);
  if (opts.dmem_row) raw[k + 4] = expand_row(raw[k + 4], ax[k + 4], T, s);
  opts.dspk_row = opts.dmem_row = false;
  std::vector<mx::array> in;
  for (size_t j = 0; j < k; ++j) in.push_back(batch_at(raw[j], ax[j], 1, V, s));
  auto VS = neuron_shape(in[0]);
  for (size_t j = k; j < k + 3; ++j) in.push_back(batch_param(raw[j], ax[j], VS, s));
  in.push_back(batch_at(raw[k + 3], ax[k + 3], 1, V, s));
  in.push_back(batch_at(raw[k + 4], ax[k + 4], opts.mem_all ? 1 : 0, V, s));
  for (auto& a : in) a = kernel_input(a, s);

  const auto& h = in[0];
  check_launch_shape(h.shape(), " under mx.vmap");
  int64_t NV = h.size() / h.shape(0);
  auto part = [&](const mx::array& p) { return mx::Shape{int(NV / p.size()), int(p.size())}; };
  auto grads = mx::array::make_arrays(
      {h.shape(), part(in[k]), part(in[k + 1]), part(in[k + 2])},
      {inputs[k + 3].dtype(), mx::float32, mx::float32, mx::float32},
      std::make_shared<LeakyBackward>(s, opts), in);
  // Partials come out over V*N neurons in [V, *S] order; per vmapped slice
  // they must be [N/P, P] with P the slice's own input size.
  int n = int(NV / V);
  std::vector<mx::array> outs = {grads[0]};
  for (size_t j = 0; j < 3; ++j) {
    int p = int(axes[k + j] >= 0 ? inputs[k + j].size() / V : inputs[k + j].size());
    outs.push_back(mx::reshape(grads[1 + j], {V, n / p, p}, s));
  }
  return {outs, {1, 0, 0, 0}};
}

std::vector<mx::Shape> LeakyBackward::output_shapes(
    const std::vector<mx::array>& inputs) {
  // A shapeless replay builds the forward first, whose output_shapes has
  // checked the shapes this h and these parameters come from.
  size_t k = opts_.saves_u() ? 2 : 1;
  const auto& h = inputs[0];
  int64_t N = h.size() / h.shape(0);
  auto part = [&](const mx::array& p) { return mx::Shape{int(N / p.size()), int(p.size())}; };
  return {h.shape(), part(inputs[k]), part(inputs[k + 1]), part(inputs[k + 2])};
}

}  // namespace flashsnn

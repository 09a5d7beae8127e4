// Every fused family: op function (validation, shapes) and transforms (vjp,
// vmap, shapes), generic over the family's counts (FamilyInfo). Kernels:
// src/cpu/family.cpp, csrc/, metal/.
#include "family.h"

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

template <class F>
constexpr FamilyInfo make_info(const char* name) {
  return FamilyInfo{name, F::kStates, F::kParams, F::kConsts, F::kSaves, F::kOutputStates,
                    F::kBackwardX,
                    F::kResets, F::kModes,
                    {F::saves(fs::kDelayed), F::saves(fs::kImmediate), F::saves(fs::kSameStep)},
                    F::kStateNames, F::kParamNames};
}

const FamilyInfo kInfos[] = {
#define FS_INFO(ID, NAME, F) make_info<fs::F>(#NAME),
    FS_FOR_EACH_FAMILY(FS_INFO)
#undef FS_INFO
};

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

const char* const kResetNames[] = {"subtract", "zero", "none"};
const char* const kModeNames[] = {"delayed", "immediate", "same-step"};

// "0 (subtract), 1 (zero) or 2 (none)": the choices in `mask`.
std::string choices(unsigned mask, const char* const* names) {
  std::vector<std::string> c;
  for (int j = 0; j < 3; ++j) {
    if ((mask >> j) & 1u) c.push_back(std::to_string(j) + " (" + names[j] + ")");
  }
  std::string s;
  for (size_t k = 0; k < c.size(); ++k) {
    s += (k == 0 ? "" : (k + 1 == c.size() ? " or " : ", ")) + c[k];
  }
  return s;
}

void check_options(const FamilyOptions& o) {
  const FamilyInfo& f = o.info();
  if (o.reset < 0 || o.reset > 2 || !((f.resets >> o.reset) & 1u))
    fail(f.name, "reset must be " + choices(f.resets, kResetNames) + "; got " +
                     std::to_string(o.reset));
  if (o.mode < 0 || o.mode > 2 || !((f.modes >> o.mode) & 1u))
    fail(f.name, "mode must be " + choices(f.modes, kModeNames) + "; got " +
                     std::to_string(o.mode));
  if (o.surrogate.id < 0 || o.surrogate.id >= fs::kNumSurrogates) {
    std::string valid;
#define FS_CHOICE(ID, NAME) \
  valid += (valid.empty() ? "" : ", ") + std::to_string(fs::ID) + " (" #NAME ")";
    FS_FOR_EACH_SURROGATE(FS_CHOICE)
#undef FS_CHOICE
    fail(f.name, "unknown surrogate id " + std::to_string(o.surrogate.id) + "; valid: " + valid);
  }
}

// The most neurons (N = prod(S)) one call takes: the backward's per-neuron
// partial sums are an MLX array [N / P, P] whose dimensions are int32, and
// the Metal kernels index neurons with a 32-bit uint. (Offsets t * N + i are
// 64-bit in every kernel, so T * N may pass 2^31.)
constexpr int64_t kMaxNeurons = INT32_MAX;

// Why a shape reaches a kernel without passing through family_forward: its
// errors say so, since the user never called the op with that shape.
const char* const kShapeless =
    " under mx.compile(shapeless=True), which replays a graph traced for other shapes "
    "(compile without shapeless=True for these)";

// Initial states and parameters are float32 suffix arrays of S (FamilyDims),
// which keeps every p[i % P] read and every [N / P, P] partial in bounds.
void check_suffix_inputs(const FamilyOptions& o, const mx::array& x,
                         const std::vector<mx::array>& in, size_t first, const char* why) {
  const FamilyInfo& f = o.info();
  const auto S = neuron_shape(x);
  for (size_t j = first; j < first + f.states + f.params; ++j) {
    const bool f32 = in[j].dtype() == mx::float32, suffix = is_suffix_param(in[j], S);
    if (f32 && suffix) continue;  // the name is built only for an error
    const bool state = j < first + f.states;
    const std::string what =
        state ? f.state_name(int(j - first)) : f.param_name(int(j - first - f.states));
    if (!f32) fail(f.name, what + " must be float32 here (the Python op casts it)");
    fail(f.name, what + " of shape " + shape_str(in[j].shape()) +
                     " must be a scalar or match the trailing dimensions of " + shape_str(S) +
                     " (broadcast other shapes first)" + why);
  }
}

// x's shape is one a kernel can run: at least one step and one neuron (the
// op answers empty inputs without a kernel; a shapeless replay or a vmap
// cannot) and at most kMaxNeurons neurons.
void check_launch_shape(const char* op, const mx::Shape& xs, const char* why) {
  int64_t N = 1;
  for (size_t j = 1; j < xs.size(); ++j) N *= xs[j];
  if (xs.empty() || xs[0] == 0 || N == 0)
    fail(op, "x of shape " + shape_str(xs) + " is empty" + why);
  if (N > kMaxNeurons)
    fail(op, "x of shape " + shape_str(xs) + " has " + std::to_string(N) +
                 " neurons per step; one call takes at most 2^31 - 1 (split the layer)" + why);
}

// The stream the op runs on, with MLX's own error (e.g. a GPU stream where
// MLX has no GPU) tagged, and the GPU backend asked whether it can launch a
// kernel there: every such failure happens while the graph is built, never
// inside eval_gpu.
mx::Stream op_stream(const FamilyOptions& o, mx::StreamOrDevice s) {
  mx::Stream stream = mx::default_stream(mx::Device::cpu);
  try {
    stream = mx::to_stream(s);
  } catch (const std::exception& e) {
    fail(o.info().name, std::string("no stream to run on: ") + e.what());
  }
  if (stream.device == mx::Device::gpu) family_check_gpu(o, stream);
  return stream;
}

// All outputs of the forward primitive (spk, output states, then the saves).
std::vector<mx::array> forward_all(const std::vector<mx::array>& inputs, FamilyOptions opts,
                                   mx::Stream s) {
  const auto& x = inputs[0];
  const int S = opts.info().outputs;
  std::vector<mx::Shape> shapes = {x.shape()};
  std::vector<mx::Dtype> dtypes = {x.dtype()};
  for (int k = 0; k < S; ++k) {
    shapes.push_back(opts.mem_all ? x.shape() : neuron_shape(x));
    dtypes.push_back(x.dtype());
  }
  for (int k = 0; k < opts.saves(); ++k) {
    shapes.push_back(x.shape());
    dtypes.push_back(mx::float32);
  }
  std::vector<mx::array> in;
  for (const auto& a : inputs) in.push_back(kernel_input(a, s));
  return mx::array::make_arrays(std::move(shapes), dtypes,
                                std::make_shared<FamilyForward>(s, opts), std::move(in));
}

// Per-neuron partials [N/P, P] -> the input's own shape. The sum over axis 0
// is MLX's reduction: a fixed order, so the same inputs give bitwise the same
// gradient (no float atomics anywhere).
mx::array reduce_partial(const mx::array& partial, const mx::array& input, mx::Stream s) {
  auto g = partial.shape(0) == 1 ? partial : mx::sum(partial, 0, true, s);
  return mx::reshape(g, input.shape(), s);
}

// Put the vmapped axis of `a` at `pos`, or broadcast an unbatched `a` there.
mx::array batch_at(const mx::array& a, int axis, int pos, int V, mx::Stream s) {
  if (axis >= 0) return mx::moveaxis(a, axis, pos, s);
  auto e = mx::expand_dims(a, pos, s);
  auto shape = e.shape();
  shape[pos] = V;
  return mx::broadcast_to(e, shape, s);
}

// A suffix input batched along `axis` becomes a full [V, *S] array; an
// unbatched one stays as it is (still a suffix of [V, *S]).
mx::array batch_param(const mx::array& p, int axis, const Shape_t& VS, mx::Stream s) {
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

// A row input of FamilyBackward ([*S], possibly vmapped along `axis`) as the
// [T, *S] array it stands for; the vmapped axis moves one place right.
mx::array expand_row(const mx::array& row, int& axis, int T, mx::Stream s) {
  auto e = mx::expand_dims(row, 0, s);
  auto shape = e.shape();
  shape[0] = T;
  if (axis >= 0) ++axis;
  return mx::broadcast_to(e, shape, s);
}

int vmap_size(const char* op, const std::vector<mx::array>& inputs,
              const std::vector<int>& axes) {
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (axes[i] < 0) continue;
    // An empty batch would reach the kernels as zero neurons (and divide
    // by V = 0 below): a tagged error instead.
    if (inputs[i].shape(axes[i]) == 0)
      fail(op, "mx.vmap over an axis of size 0 has no fused kernel; use backend='reference'");
    return inputs[i].shape(axes[i]);
  }
  fail(op, "vmap called with no batched input");
}

mx::Shape partial_shape(int64_t N, const mx::array& p) {
  return mx::Shape{int(N / p.size()), int(p.size())};
}

// The backward primitive's outputs: dx, then a [N/P, P] partial per state
// and parameter.
std::vector<mx::array> backward_all(const std::vector<mx::array>& in, mx::Dtype dx_dtype,
                                    const FamilyOptions& o, mx::Stream s) {
  const Layout L = layout(o);
  const auto& t0 = in[0];  // a saved [T, *S] array
  const int64_t N = t0.size() / t0.shape(0);
  std::vector<mx::Shape> shapes = {t0.shape()};
  std::vector<mx::Dtype> dtypes = {dx_dtype};
  for (int j = L.bwd_state0(); j < L.bwd_dspk(); ++j) {
    shapes.push_back(partial_shape(N, in[j]));
    dtypes.push_back(mx::float32);
  }
  return mx::array::make_arrays(std::move(shapes), dtypes,
                                std::make_shared<FamilyBackward>(s, o), in);
}

}  // namespace

std::string FamilyInfo::word(const char* s, int k) {
  std::string w;
  for (; *s; ++s) {
    if (*s != ' ') {
      if (k == 0) w += *s;
    } else if (k-- == 0) {
      break;
    }
  }
  return w;
}

const FamilyInfo& family_info(int family) {
  if (family < 0 || family >= fs::kNumFamilies) {
    std::string valid;
#define FS_VALID(ID, NAME, F) valid += (valid.empty() ? "" : ", ") + std::to_string(ID) + " (" #NAME ")";
    FS_FOR_EACH_FAMILY(FS_VALID)
#undef FS_VALID
    fail("fused", "unknown family id " + std::to_string(family) + "; valid: " + valid);
  }
  return kInfos[family];
}

Layout layout(const FamilyOptions& o) {
  const FamilyInfo& f = o.info();
  return Layout{f.states, f.params, o.saves(), f.outputs, f.backward_x};
}

FamilyDims family_dims(const FamilyOptions& o, const std::vector<mx::array>& inputs,
                       int first_state) {
  const FamilyInfo& f = o.info();
  const auto& a = inputs[0];  // x or a saved array: [T, *S]
  FamilyDims d{};
  d.T = a.shape(0);
  d.N = 1;
  for (int j = 1; j < int(a.ndim()); ++j) d.N *= a.shape(j);
  for (int k = 0; k < fs::kMaxStates; ++k) d.P_state[k] = k < f.states ? inputs[first_state + k].size() : 1;
  for (int k = 0; k < fs::kMaxParams; ++k)
    d.P_param[k] = k < f.params ? inputs[first_state + f.states + k].size() : 1;
  return d;
}

FamilyDims forward_dims(const FamilyOptions& o, const std::vector<mx::array>& inputs) {
  return family_dims(o, inputs, 1);
}

FamilyDims backward_dims(const FamilyOptions& o, const std::vector<mx::array>& inputs) {
  return family_dims(o, inputs, layout(o).bwd_state0());
}

void check_backward_inputs(const std::vector<mx::array>& inputs, const FamilyOptions& o) {
  const Layout L = layout(o);
  const char* op = o.info().name;
  if (L.saves < 1 || int(inputs.size()) != L.bwd_inputs())
    fail(op, "internal: the backward takes " + std::to_string(L.bwd_inputs()) + " inputs");
  const int64_t TN = inputs[0].size(), N = TN / std::max<int64_t>(inputs[0].shape(0), 1);
  bool ok = int64_t(inputs[L.bwd_dspk()].size()) == (o.dspk_row ? N : TN);
  for (int k = 0; k < L.outputs; ++k) {
    const int64_t want = o.mem_all && !o.dstate_row(k) ? TN : N;
    ok = ok && int64_t(inputs[L.bwd_dstate() + k].size()) == want;
  }
  for (int j = 0; j < L.saves; ++j) ok = ok && int64_t(inputs[j].size()) == TN;
  if (L.x) ok = ok && int64_t(inputs[L.bwd_x()].size()) == TN;
  if (!ok) fail(op, "internal: backward input sizes do not match the saved arrays'");
}

std::vector<mx::array> family_forward(const mx::array& x, const std::vector<mx::array>& states,
                                      const std::vector<mx::array>& params, FamilyOptions opts,
                                      int save, mx::StreamOrDevice s) {
  // Every check happens here, before any primitive exists: an error thrown
  // inside eval_gpu would leave MLX's GPU command encoder half-written.
  const FamilyInfo& f = opts.info();
  check_options(opts);
  if (int(states.size()) != f.states || int(params.size()) != f.params)
    fail(f.name, "takes " + std::to_string(f.states) + " initial states and " +
                     std::to_string(f.params) + " parameters; got " +
                     std::to_string(states.size()) + " and " + std::to_string(params.size()));
  if (save < -1 || save > 1)
    fail(f.name, "save must be -1 (decide from the inputs), 0 or 1; got " + std::to_string(save));
  if (x.ndim() < 1) fail(f.name, "x must be [T, *S] with a time axis; got a scalar");
  check_float_dtype(f.name, "x", x.dtype());
  std::vector<mx::array> inputs = {x};
  inputs.insert(inputs.end(), states.begin(), states.end());
  inputs.insert(inputs.end(), params.begin(), params.end());
  check_suffix_inputs(opts, x, inputs, 1, "");
  auto stream = op_stream(opts, s);
  const auto S = neuron_shape(x);
  if (x.size() == 0) {
    // T = 0 or an empty neuron shape: nothing to step.
    std::vector<mx::array> out = {mx::zeros(x.shape(), x.dtype(), stream)};
    for (int k = 0; k < f.outputs; ++k) {
      const auto& st = states[k];
      out.push_back(opts.mem_all ? mx::zeros(x.shape(), x.dtype(), stream)
                                 : mx::astype(mx::broadcast_to(st, S, stream), x.dtype(), stream));
    }
    return out;
  }
  check_launch_shape(f.name, x.shape(), "");
  // The forward writes its saves only when something may differentiate
  // through it: inside mx.grad / mx.vjp / mx.compile the inputs are
  // tracers. Inference then moves fewer bytes; vjp recomputes them if not
  // saved.
  if (save < 0) {
    save = 0;
    for (const auto& a : inputs) save |= a.is_tracer();
  }
  opts.save = save != 0;
  auto outs = forward_all(inputs, opts, stream);
  outs.erase(outs.begin() + 1 + f.outputs, outs.end());
  return outs;
}

std::vector<mx::array> FamilyForward::jvp(const std::vector<mx::array>&,
                                          const std::vector<mx::array>&,
                                          const std::vector<int>&) {
  fail(opts_.info().name,
       "forward-mode differentiation (jvp) is not supported; use mx.grad or mx.vjp");
}

std::vector<mx::array> FamilyForward::vjp(const std::vector<mx::array>& primals,
                                          const std::vector<mx::array>& cotangents,
                                          const std::vector<int>& argnums,
                                          const std::vector<mx::array>& outputs) {
  auto s = stream();
  const FamilyInfo& f = opts_.info();
  const auto& x = primals[0];
  FamilyOptions opts = opts_;
  std::vector<mx::array> saved(outputs.begin() + 1 + f.outputs, outputs.end());
  if (!opts.save) {
    opts.save = true;
    auto again = forward_all(primals, opts, s);
    saved.assign(again.begin() + 1 + f.outputs, again.end());
  }
  // Fixed parameters (snnTorch's default) need no gradient; the CPU
  // backward then skips their accumulation.
  opts.param_grads = false;
  for (int a : argnums) opts.param_grads |= a > f.states;
  // Cotangents arrive in the outputs' dtype from MLX's own ops, but an
  // explicit mx.vjp may pass others; the kernel reads x's dtype.
  // (The saves are outputs too; MLX may pass zero cotangents for them.)
  std::vector<mx::array> cot;
  for (int j = 0; j <= f.outputs; ++j) cot.push_back(mx::astype(cotangents[j], x.dtype(), s));
  if (auto row = step_row(cot[0], s)) {
    opts.dspk_row = true;
    cot[0] = *row;
  }
  if (opts.mem_all) {
    for (int k = 0; k < f.outputs; ++k) {
      if (auto row = step_row(cot[1 + k], s)) {
        opts.dstate_rows |= 1u << k;
        cot[1 + k] = *row;
      }
    }
  }
  // The saves come from the forward primitive, row-contiguous already.
  std::vector<mx::array> inputs = saved;
  if (f.backward_x) inputs.push_back(kernel_input(x, s));
  for (size_t j = 1; j < primals.size(); ++j) inputs.push_back(kernel_input(primals[j], s));
  for (const auto& c : cot) inputs.push_back(kernel_input(c, s));
  auto grads = backward_all(inputs, x.dtype(), opts, s);

  std::vector<mx::array> out;
  for (int a : argnums) {
    if (a < 0 || a >= int(primals.size()))
      fail(f.name, "vjp asked for input " + std::to_string(a) + " of " +
                       std::to_string(primals.size()));
    out.push_back(a == 0 ? grads[0] : reduce_partial(grads[a], primals[a], s));
    // MLX does not check the shapes a custom vjp returns.
    if (out.back().shape() != primals[a].shape())
      fail(f.name, "internal: gradient shape mismatch for input " + std::to_string(a));
  }
  return out;
}

std::pair<std::vector<mx::array>, std::vector<int>> FamilyForward::vmap(
    const std::vector<mx::array>& inputs, const std::vector<int>& axes) {
  auto s = stream();
  const FamilyInfo& f = opts_.info();
  int V = vmap_size(f.name, inputs, axes);
  std::vector<mx::array> in = {batch_at(inputs[0], axes[0], 1, V, s)};  // [T, V, *S]
  check_launch_shape(f.name, in[0].shape(), " under mx.vmap");
  auto VS = neuron_shape(in[0]);
  for (size_t j = 1; j < inputs.size(); ++j) in.push_back(batch_param(inputs[j], axes[j], VS, s));
  auto outs = forward_all(in, opts_, s);
  std::vector<int> out_axes = {1};
  for (int k = 0; k < f.outputs; ++k) out_axes.push_back(opts_.mem_all ? 1 : 0);
  for (int j = 0; j < opts_.saves(); ++j) out_axes.push_back(1);
  return {outs, out_axes};
}

std::vector<mx::Shape> FamilyForward::output_shapes(const std::vector<mx::array>& inputs) {
  // Only a shapeless mx.compile asks, with shapes family_forward never saw.
  const FamilyInfo& f = opts_.info();
  check_launch_shape(f.name, inputs[0].shape(), kShapeless);
  check_suffix_inputs(opts_, inputs[0], inputs, 1, kShapeless);
  const auto& xs = inputs[0].shape();
  std::vector<mx::Shape> shapes = {xs};
  for (int k = 0; k < f.outputs; ++k) shapes.push_back(opts_.mem_all ? xs : neuron_shape(inputs[0]));
  for (int j = 0; j < opts_.saves(); ++j) shapes.push_back(xs);
  return shapes;
}

std::pair<std::vector<mx::array>, std::vector<int>> FamilyBackward::vmap(
    const std::vector<mx::array>& inputs, const std::vector<int>& axes) {
  auto s = stream();
  const Layout L = layout(opts_);
  const char* op = opts_.info().name;
  int V = vmap_size(op, inputs, axes);
  // Row cotangents become whole [T, *S] arrays again: the batched kernel
  // reads one layout per input.
  auto opts = opts_;
  auto raw = inputs;
  auto ax = axes;
  const int T = inputs[0].shape(axes[0] == 0 ? 1 : 0);
  if (opts.dspk_row) raw[L.bwd_dspk()] = expand_row(raw[L.bwd_dspk()], ax[L.bwd_dspk()], T, s);
  for (int k = 0; k < L.outputs; ++k) {
    const int j = L.bwd_dstate() + k;
    if (opts.dstate_row(k)) raw[j] = expand_row(raw[j], ax[j], T, s);
  }
  opts.dspk_row = false;
  opts.dstate_rows = 0;
  std::vector<mx::array> in;
  for (int j = 0; j < L.bwd_state0(); ++j) in.push_back(batch_at(raw[j], ax[j], 1, V, s));
  auto VS = neuron_shape(in[0]);
  for (int j = L.bwd_state0(); j < L.bwd_dspk(); ++j)
    in.push_back(batch_param(raw[j], ax[j], VS, s));
  in.push_back(batch_at(raw[L.bwd_dspk()], ax[L.bwd_dspk()], 1, V, s));
  for (int k = 0; k < L.outputs; ++k) {
    const int j = L.bwd_dstate() + k;
    in.push_back(batch_at(raw[j], ax[j], opts.mem_all ? 1 : 0, V, s));
  }
  for (auto& a : in) a = kernel_input(a, s);

  check_launch_shape(op, in[0].shape(), " under mx.vmap");
  const int64_t NV = in[0].size() / in[0].shape(0);
  auto grads = backward_all(in, inputs[L.bwd_dspk()].dtype(), opts, s);
  // Partials come out over V*N neurons in [V, *S] order; per vmapped slice
  // they must be [N/P, P] with P the slice's own input size.
  const int n = int(NV / V);
  std::vector<mx::array> outs = {grads[0]};
  std::vector<int> out_axes = {1};
  for (int j = L.bwd_state0(); j < L.bwd_dspk(); ++j) {
    int p = int(axes[j] >= 0 ? inputs[j].size() / V : inputs[j].size());
    outs.push_back(mx::reshape(grads[outs.size()], {V, n / p, p}, s));
    out_axes.push_back(0);
  }
  return {outs, out_axes};
}

std::vector<mx::Shape> FamilyBackward::output_shapes(const std::vector<mx::array>& inputs) {
  // A shapeless replay builds the forward first, whose output_shapes has
  // checked the shapes these saves and inputs come from.
  const Layout L = layout(opts_);
  const auto& t0 = inputs[0];
  const int64_t N = t0.size() / t0.shape(0);
  std::vector<mx::Shape> shapes = {t0.shape()};
  for (int j = L.bwd_state0(); j < L.bwd_dspk(); ++j) shapes.push_back(partial_shape(N, inputs[j]));
  return shapes;
}

}  // namespace flashsnn

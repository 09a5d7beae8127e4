// Runs Metal launch plans (metal/family.h) over the emulated kernels: sets the
// plan's function constants, binds each array or scalar to the
// [[buffer(n)]] the plan names, checks that binding against the kernel's real
// signature, then calls the kernel once per grid thread, threadgroup by
// threadgroup, as dispatch_threads would (no thread past the grid).
//
// The kernels synchronize nothing and share no memory, so running threads one
// after another is faithful to the GPU (METAL.md); `order` still runs the
// threadgroups backwards or shuffled, to show no result depends on it.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#if defined(__SSE__)
#include <xmmintrin.h>
#endif

#include "fsemu.h"
#include "metal/family.h"

namespace fm = flashsnn::metal;

namespace {

std::string g_error;
constexpr int kMaxBuffers = 31;  // Metal's buffer argument table

int elem_of(fm::Dtype d) {
  switch (d) {
    case fm::Dtype::kFloat32: return FSEMU_FLOAT;
    case fm::Dtype::kFloat16: return FSEMU_HALF;
    default: return FSEMU_BFLOAT;
  }
}

const FsEmuKernel& find_kernel(const std::string& name) {
  for (int k = 0; k < fsemu_num_kernels; ++k) {
    if (name == fsemu_kernels[k].name) return fsemu_kernels[k];
  }
  throw std::runtime_error("no [[kernel]] named " + name + " in the Metal source");
}

struct Array {
  void* data;
  int elem;
};

// A plan's bindings against a kernel's signature: what Metal would reject
// or silently get wrong (an argument left unbound, an output bound to a
// read-only argument, a float buffer where the kernel reads half...).
void check_bindings(const fm::Plan& p, const FsEmuKernel& k, const std::vector<Array>& in,
                    const std::vector<Array>& out, const int* elem, const bool* is_output,
                    const bool* bound) {
  auto fail = [&](const std::string& m) {
    throw std::runtime_error(p.kernel + " (" + p.pipeline + "): " + m);
  };
  auto constant_value = [&](int index) -> int {
    for (const auto& c : p.constants) {
      if (c.index == index) return c.value();
    }
    fail("argument gated by function constant " + std::to_string(index) +
         ", which the plan does not set");
    return 0;
  };
  std::vector<bool> has(kMaxBuffers, false);
  for (int j = 0; j < k.num_params; ++j) {
    const FsEmuParam& a = k.params[j];
    has[a.buffer] = true;
    const bool present = a.gate < 0 || constant_value(a.gate) != 0;
    const std::string what = "[[buffer(" + std::to_string(a.buffer) + ")]]";
    if (present && !bound[a.buffer]) fail(what + " is not bound");
    if (!present && bound[a.buffer]) fail(what + " is bound but compiled out");
    if (!bound[a.buffer]) continue;
    if (elem[a.buffer] != a.elem) {
      fail(what + ": element type " + std::to_string(elem[a.buffer]) +
           " bound where the kernel reads " + std::to_string(a.elem));
    }
    if (is_output[a.buffer] && !a.writable) fail(what + ": an output bound to a read-only argument");
    if (!is_output[a.buffer] && a.writable) fail(what + ": an input bound to a writable argument");
  }
  for (int b = 0; b < kMaxBuffers; ++b) {
    if (bound[b] && !has[b]) fail("[[buffer(" + std::to_string(b) + ")]] is bound but no argument has it");
  }
  // Every primitive input and output is bound exactly once.
  std::vector<int> seen_in(in.size(), 0), seen_out(out.size(), 0);
  for (const auto& b : p.bindings) {
    if (b.kind == fm::Binding::kInput) {
      if (b.array < 0 || b.array >= int(in.size())) fail("binds input " + std::to_string(b.array));
      ++seen_in[b.array];
    } else if (b.kind == fm::Binding::kOutput) {
      if (b.array < 0 || b.array >= int(out.size())) fail("binds output " + std::to_string(b.array));
      ++seen_out[b.array];
    }
  }
  for (size_t j = 0; j < in.size(); ++j) {
    if (seen_in[j] != 1) fail("input " + std::to_string(j) + " bound " + std::to_string(seen_in[j]) + " times");
  }
  for (size_t j = 0; j < out.size(); ++j) {
    if (seen_out[j] != 1) fail("output " + std::to_string(j) + " bound " + std::to_string(seen_out[j]) + " times");
  }
}

void run(const fm::Plan& p, const std::vector<Array>& in, const std::vector<Array>& out, int order,
         uint32_t max_threads) {
  const FsEmuKernel& k = find_kernel(p.kernel);
  // An int constant the plan forgets reads as garbage on the GPU: poison it
  // here (bools have no spare value).
  for (int c = 0; c < fsemu_num_constants; ++c) {
    fsemu_set_constant(fsemu_constants[c].index, fsemu_constants[c].is_bool ? 0 : INT32_MIN);
  }
  for (const auto& c : p.constants) {
    if (!fsemu_set_constant(c.index, c.value())) {
      throw std::runtime_error(p.kernel + ": the plan sets function constant " +
                               std::to_string(c.index) + ", which the source does not declare");
    }
  }
  void* buffers[kMaxBuffers] = {};
  int elem[kMaxBuffers] = {};
  bool is_output[kMaxBuffers] = {};
  bool bound[kMaxBuffers] = {};
  union Scalar {
    uint32_t u;
    float f;
  } scalars[kMaxBuffers];
  for (const auto& b : p.bindings) {
    if (b.index < 0 || b.index >= kMaxBuffers || bound[b.index]) {
      throw std::runtime_error(p.kernel + ": buffer index " + std::to_string(b.index) +
                               " out of range or bound twice");
    }
    bound[b.index] = true;
    const size_t arrays = b.kind == fm::Binding::kInput ? in.size() : out.size();
    if ((b.kind == fm::Binding::kInput || b.kind == fm::Binding::kOutput) &&
        (b.array < 0 || size_t(b.array) >= arrays)) {
      throw std::runtime_error(p.kernel + " (" + p.pipeline + "): binds " +
                               (b.kind == fm::Binding::kInput ? "input " : "output ") +
                               std::to_string(b.array) + " of the primitive's " +
                               std::to_string(arrays));
    }
    switch (b.kind) {
      case fm::Binding::kInput:
        buffers[b.index] = in.at(b.array).data;
        elem[b.index] = in.at(b.array).elem;
        break;
      case fm::Binding::kOutput:
        buffers[b.index] = out.at(b.array).data;
        elem[b.index] = out.at(b.array).elem;
        is_output[b.index] = true;
        break;
      case fm::Binding::kUint:
        scalars[b.index].u = b.u;
        buffers[b.index] = &scalars[b.index];
        elem[b.index] = FSEMU_UINT;
        break;
      case fm::Binding::kFloat:
        scalars[b.index].f = b.f;
        buffers[b.index] = &scalars[b.index];
        elem[b.index] = FSEMU_FLOAT;
        break;
      case fm::Binding::kUints:
        // set_bytes copies the values; the plan outlives the dispatch here.
        buffers[b.index] = const_cast<uint32_t*>(b.us.data());
        elem[b.index] = FSEMU_UINT;
        break;
    }
  }
  check_bindings(p, k, in, out, elem, is_output, bound);

  const uint64_t group = fm::threadgroup_size(p.grid, max_threads);
  const uint64_t groups = (p.grid + group - 1) / group;
  std::vector<uint64_t> seq(groups);
  std::iota(seq.begin(), seq.end(), uint64_t(0));
  if (order == 1) std::reverse(seq.begin(), seq.end());
  if (order == 2) std::shuffle(seq.begin(), seq.end(), std::mt19937_64(12345));
  for (uint64_t g : seq) {
    for (uint64_t l = 0; l < group; ++l) {
      const uint64_t gid = g * group + l;
      if (gid >= p.grid) break;  // dispatch_threads: a partial last group
      k.fn(buffers, static_cast<unsigned>(gid));
    }
  }
}

// Apple GPUs are reported to flush float32 subnormals to zero even in safe
// math mode (METAL.md section 5, not verified here): on x86 the runner can do
// the same, FTZ and DAZ in MXCSR, for the duration of one dispatch.
class FlushSubnormals {
 public:
  explicit FlushSubnormals(bool on) {
    if (!on) return;
#if defined(__SSE__)
    saved_ = _mm_getcsr();
    _mm_setcsr(saved_ | 0x8040u);  // FTZ (bit 15) | DAZ (bit 6)
    active_ = true;
#else
    throw std::runtime_error("flushing subnormals is emulated on x86 only");
#endif
  }
  ~FlushSubnormals() {
#if defined(__SSE__)
    if (active_) _mm_setcsr(saved_);
#endif
  }

 private:
  unsigned saved_ = 0;
  bool active_ = false;
};

}  // namespace

// The launch as the Python side passes it (metal_emu.Launch, ctypes).
struct FsEmuLaunch {
  int family, reset, mode, detach, surrogate_id;
  float sa, sb;
  int mem_all, save, dspk_row, dstate_rows;
  int64_t T, N;
  int64_t P_state[fs::kMaxStates];
  int64_t P_param[fs::kMaxParams];
  int dtype;
};

namespace {

fm::FamilyLaunch launch(const FsEmuLaunch& e) {
  fm::FamilyLaunch l;
  l.family = e.family;
  l.reset = e.reset;
  l.mode = e.mode;
  l.detach = e.detach != 0;
  l.surrogate_id = e.surrogate_id;
  l.surrogate_a = e.sa;
  l.surrogate_b = e.sb;
  l.mem_all = e.mem_all != 0;
  l.save = e.save != 0;
  l.dspk_row = e.dspk_row != 0;
  l.dstate_rows = unsigned(e.dstate_rows);
  l.T = e.T;
  l.N = e.N;
  for (int j = 0; j < fs::kMaxStates; ++j) l.P_state[j] = e.P_state[j];
  for (int j = 0; j < fs::kMaxParams; ++j) l.P_param[j] = e.P_param[j];
  l.dtype = static_cast<fm::Dtype>(e.dtype);
  return l;
}

fm::Plan make_plan(int backward, const fm::FamilyLaunch& l) {
  return backward ? fm::family_backward_plan(l) : fm::family_forward_plan(l);
}

}  // namespace

extern "C" {

const char* fsemu_error() {
  return g_error.c_str();
}

// A family's counts from the plans' own table (metal/family.h): states,
// params, saves in `mode`, backward reads x, reset and mode masks, output
// states; -1 for an unknown id.
int fsemu_family(int id, int mode, int* out) {
  try {
    const fm::KernelFamily& f = fm::kernel_family(id);
    out[0] = f.states;
    out[1] = f.params;
    out[2] = (mode >= 0 && mode < 3) ? f.saves[mode] : 0;
    out[3] = f.backward_x;
    out[4] = int(f.resets);
    out[5] = int(f.modes);
    out[6] = f.outputs;
    return 0;
  } catch (const std::exception& e) {
    g_error = e.what();
    return -1;
  }
}

int fsemu_num_kernel_names() {
  return fsemu_num_kernels;
}

const char* fsemu_kernel_name(int k) {
  return fsemu_kernels[k].name;
}

// The plan as text, one item per line (the Python tests parse it):
//   kernel NAME / pipeline NAME / constant INDEX bool|int VALUE /
//   bind INDEX input|output ARRAY | bind INDEX uint|float VALUE /
//   grid N / group G (for max_threads)
int fsemu_plan(int backward, const FsEmuLaunch* e, uint32_t max_threads, char* buf, int cap) {
  try {
    fm::Plan p = make_plan(backward, launch(*e));
    std::ostringstream os;
    os.precision(9);
    os << "kernel " << p.kernel << "\npipeline " << p.pipeline << "\n";
    for (const auto& c : p.constants) {
      os << "constant " << c.index << (c.is_bool ? " bool " : " int ") << c.value() << "\n";
    }
    static const char* kinds[] = {"input", "output", "uint", "float", "uints"};
    for (const auto& b : p.bindings) {
      os << "bind " << b.index << " " << kinds[b.kind] << " ";
      if (b.kind == fm::Binding::kUint) {
        os << b.u;
      } else if (b.kind == fm::Binding::kFloat) {
        os << b.f;
      } else if (b.kind == fm::Binding::kUints) {
        for (size_t j = 0; j < b.us.size(); ++j) os << (j ? "," : "") << b.us[j];
      } else {
        os << b.array;
      }
      os << "\n";
    }
    os << "grid " << p.grid << "\ngroup " << fm::threadgroup_size(p.grid, max_threads) << "\n";
    const std::string s = os.str();
    if (int(s.size()) + 1 > cap) throw std::runtime_error("plan text too long");
    std::memcpy(buf, s.c_str(), s.size() + 1);
    return 0;
  } catch (const std::exception& e) {
    g_error = e.what();
    return -1;
  }
}

// Runs FamilyForward (backward = 0) or FamilyBackward (1) over the
// primitive's inputs and outputs, in the primitive's order (Layout in
// src/ops/family.h), each a row-contiguous buffer with its FsEmuElem.
int fsemu_run(int backward, const FsEmuLaunch* e, void* const* inputs, const int* input_elems,
              int num_inputs, void* const* outputs, const int* output_elems, int num_outputs,
              int order, uint32_t max_threads, int flush_subnormals) {
  try {
    const fm::FamilyLaunch l = launch(*e);
    if (input_elems[0] != elem_of(l.dtype) && !backward) {
      throw std::runtime_error("x's element type does not match the launch dtype");
    }
    std::vector<Array> in, out;
    for (int j = 0; j < num_inputs; ++j) in.push_back({inputs[j], input_elems[j]});
    for (int j = 0; j < num_outputs; ++j) out.push_back({outputs[j], output_elems[j]});
    const fm::Plan plan = make_plan(backward, l);
    FlushSubnormals ftz(flush_subnormals != 0);
    run(plan, in, out, order, max_threads);
    return 0;
  } catch (const std::exception& e) {
    g_error = e.what();
    return -1;
  }
}

}  // extern "C"

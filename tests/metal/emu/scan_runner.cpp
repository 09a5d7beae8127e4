// The selective scan's entry points of the emulator library: builds the
// launch plans of metal/scan.h (what ScanForward / ScanBackward::eval_gpu in
// metal/scan.cpp encode), allocates their scratch buffers (filled with NaN,
// so a partial the backward forgets to write shows in the sums), and runs
// the dispatches in order through dispatch.cpp, which runs the backward's
// threadgroups cooperatively (it synchronizes at threadgroup barriers).
#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "dispatch.h"
#include "fsemu.h"
#include "metal/scan.h"

namespace fm = flashsnn::metal;

// The launch as the Python side passes it (metal_emu.ScanLaunch, ctypes).
struct FsEmuScan {
  int64_t Bt, L, D, N, chunk;
  int has_D, has_z, has_bias, has_h0, softplus, B_varies, C_varies, dtype;
};

namespace {

fm::ScanLaunch scan_launch(const FsEmuScan& e) {
  fm::ScanLaunch l;
  l.Bt = e.Bt;
  l.L = e.L;
  l.D = e.D;
  l.N = e.N;
  l.chunk = e.chunk;
  l.has_D = e.has_D != 0;
  l.has_z = e.has_z != 0;
  l.has_bias = e.has_bias != 0;
  l.has_h0 = e.has_h0 != 0;
  l.softplus = e.softplus != 0;
  l.B_varies = e.B_varies != 0;
  l.C_varies = e.C_varies != 0;
  l.dtype = static_cast<fm::Dtype>(e.dtype);
  return l;
}

fm::PlanSet make_plans(int backward, const fm::ScanLaunch& l) {
  return backward ? fm::scan_backward_plans(l) : fm::scan_forward_plans(l);
}

// Across the dispatches: every output that has elements written by exactly
// one binding, an empty one (an absent input's gradient) by none.
void check_plan_set(const fm::PlanSet& s, const std::vector<fsemu_rt::Array>& out) {
  std::vector<int> seen(out.size(), 0);
  for (const auto& p : s.plans) {
    for (const auto& b : p.bindings) {
      if (b.kind == fm::Binding::kOutput && b.array >= 0 && size_t(b.array) < out.size()) ++seen[b.array];
    }
  }
  for (size_t j = 0; j < out.size(); ++j) {
    const int want = out[j].data != nullptr ? 1 : 0;
    if (seen[j] != want) {
      throw std::runtime_error("output " + std::to_string(j) + (want ? "" : " (empty)") + " bound " +
                               std::to_string(seen[j]) + " times by the scan's dispatches");
    }
  }
}

}  // namespace

extern "C" {

// The PlanSet as text: one "scratch FLOATS" line per scratch buffer, then
// per dispatch a "plan" line and fsemu_rt::plan_text.
int fsemu_scan_plans(int backward, const FsEmuScan* e, uint32_t max_threads, char* buf, int cap) {
  try {
    const fm::PlanSet s = make_plans(backward, scan_launch(*e));
    std::string text;
    for (int64_t n : s.scratch) text += "scratch " + std::to_string(n) + "\n";
    for (const auto& p : s.plans) text += "plan\n" + fsemu_rt::plan_text(p, max_threads);
    if (int(text.size()) + 1 > cap) throw std::runtime_error("plan text too long");
    std::memcpy(buf, text.c_str(), text.size() + 1);
    return 0;
  } catch (const std::exception& ex) {
    fsemu_rt::g_error = ex.what();
    return -1;
  }
}

// Runs ScanForward (backward = 0) or ScanBackward (1) over the primitive's
// inputs and outputs in its order (src/ops/scan.h), each a row-contiguous
// buffer with its FsEmuElem; an empty output is passed as null.
int fsemu_scan_run(int backward, const FsEmuScan* e, void* const* inputs, const int* input_elems,
                   int num_inputs, void* const* outputs, const int* output_elems, int num_outputs,
                   int order, uint32_t max_threads, int flush_subnormals) {
  try {
    const fm::ScanLaunch l = scan_launch(*e);
    const int want_in = l.inputs() + (backward ? 3 : 0), want_out = backward ? 9 : 3;
    if (num_inputs != want_in || num_outputs != want_out) {
      throw std::runtime_error("the primitive has " + std::to_string(want_in) + " inputs and " +
                               std::to_string(want_out) + " outputs, got " +
                               std::to_string(num_inputs) + " and " + std::to_string(num_outputs));
    }
    if (input_elems[0] != fsemu_rt::elem_of(l.dtype)) {
      throw std::runtime_error("u's element type does not match the launch dtype");
    }
    std::vector<fsemu_rt::Array> in, out, scratch;
    for (int j = 0; j < num_inputs; ++j) in.push_back({inputs[j], input_elems[j]});
    for (int j = 0; j < num_outputs; ++j) out.push_back({outputs[j], output_elems[j]});
    const fm::PlanSet s = make_plans(backward, l);
    check_plan_set(s, out);
    std::vector<std::vector<float>> memory;
    for (int64_t n : s.scratch) memory.emplace_back(size_t(n), std::nanf(""));
    for (auto& m : memory) scratch.push_back({m.data(), FSEMU_FLOAT});
    fsemu_rt::FlushSubnormals ftz(flush_subnormals != 0);
    for (const auto& p : s.plans) {
      fsemu_rt::run(p, in, out, scratch, fsemu_rt::Schedule{order, max_threads}, false);
    }
    return 0;
  } catch (const std::exception& ex) {
    fsemu_rt::g_error = ex.what();
    return -1;
  }
}

}  // extern "C"

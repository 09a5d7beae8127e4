// The families' entry points of the emulator library: runs Metal launch
// plans (metal/family.h) over the emulated kernels through dispatch.cpp,
// which sets the plan's function constants, binds each array or scalar to
// the [[buffer(n)]] the plan names, checks that binding against the kernel's
// real signature, then calls the kernel once per grid thread, threadgroup by
// threadgroup, as dispatch_threads would (no thread past the grid).
//
// The family kernels synchronize nothing and share no memory, so running
// threads one after another is faithful to the GPU (METAL.md); `order` still
// runs the threadgroups backwards or shuffled, to show no result depends on it.
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "dispatch.h"
#include "fsemu.h"
#include "metal/family.h"

namespace fm = flashsnn::metal;

namespace {

using fsemu_rt::Array;
using fsemu_rt::elem_of;

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
  return fsemu_rt::g_error.c_str();
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
    fsemu_rt::g_error = e.what();
    return -1;
  }
}

int fsemu_num_kernel_names() {
  return fsemu_num_kernels;
}

const char* fsemu_kernel_name(int k) {
  return fsemu_kernels[k].name;
}

// The plan as text (fsemu_rt::plan_text).
int fsemu_plan(int backward, const FsEmuLaunch* e, uint32_t max_threads, char* buf, int cap) {
  try {
    const std::string s = fsemu_rt::plan_text(make_plan(backward, launch(*e)), max_threads);
    if (int(s.size()) + 1 > cap) throw std::runtime_error("plan text too long");
    std::memcpy(buf, s.c_str(), s.size() + 1);
    return 0;
  } catch (const std::exception& e) {
    fsemu_rt::g_error = e.what();
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
    fsemu_rt::FlushSubnormals ftz(flush_subnormals != 0);
    fsemu_rt::run(plan, in, out, {}, fsemu_rt::Schedule{order, max_threads}, true);
    return 0;
  } catch (const std::exception& e) {
    fsemu_rt::g_error = e.what();
    return -1;
  }
}

}  // extern "C"

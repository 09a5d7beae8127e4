// The nanobind module flashsnn._ext. NB_DOMAIN mlx shares mlx.core's type
// registry, so mx.array and streams cross the boundary without copies.
#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/variant.h>
#include <nanobind/stl/vector.h>
#include <nanobind/stl/tuple.h>

#include "mlx/version.h"

#include "ops/buffers.h"
#include "ops/family.h"
#include "ops/scan.h"
#include "step/common.h"

namespace nb = nanobind;
using namespace nb::literals;
namespace mx = mlx::core;

#ifndef FLASHSNN_GPU_BACKEND
#define FLASHSNN_GPU_BACKEND "none"
#endif

NB_MODULE(_ext, m) {
  m.doc() = "flashsnn fused kernels (MLX primitives)";

  m.def("gpu_backend", [] { return std::string(FLASHSNN_GPU_BACKEND); },
        "The GPU backend compiled in: 'metal', 'cuda' or 'none'.");
  m.def("mlx_version", [] {
    return std::to_string(MLX_VERSION_MAJOR) + "." + std::to_string(MLX_VERSION_MINOR) +
        "." + std::to_string(MLX_VERSION_PATCH);
  }, "The MLX version whose headers this module was built against.");

  // The C++ side of the surrogate table, for the test that checks it
  // against flashsnn.surrogate.KERNEL_IDS (names in fs::SurrogateId order).
  m.def("surrogate_names", [] {
#define FS_NAME(ID, NAME) #NAME,
    static const char* names[] = {FS_FOR_EACH_SURROGATE(FS_NAME)};
#undef FS_NAME
    static_assert(sizeof(names) / sizeof(names[0]) == fs::kNumSurrogates);
    return std::vector<std::string>(names, names + fs::kNumSurrogates);
  });
  m.def(
      "surrogate_grad",
      [](int id, float v, float spike, float a, float b) {
        return fs::surrogate_grad(fs::Surrogate{id, a, b}, v, spike);
      },
      "id"_a, "v"_a, "spike"_a, "a"_a, "b"_a,
      "fs::surrogate_grad from src/step/common.h, one value (for tests).");

  // flashsnn's own output-buffer cache (src/ops/buffers.h), per device.
  m.def(
      "memory_stats",
      [](const mx::Device& d) {
        auto st = flashsnn::memory_stats(d);
        return std::make_tuple(st.active, st.peak, st.cached, st.limit);
      },
      "device"_a, "(active, peak, cached, limit) bytes of flashsnn's buffer cache on device.");
  m.def("reset_peak_memory", [](const mx::Device& d) { flashsnn::reset_peak_memory(d); },
        "device"_a);
  m.def("set_cache_limit",
        [](const mx::Device& d, size_t bytes) { return flashsnn::set_cache_limit(d, bytes); },
        "device"_a, "bytes"_a, "Returns the previous limit.");
  m.def("clear_cache", [](const mx::Device& d) { flashsnn::clear_cache(d); }, "device"_a);

  // The family table's C++ side, for the test that checks it against
  // flashsnn.ops._table (names and counts in fs::FamilyId order).
  m.def("families", [] {
    using Names = std::vector<std::string>;
    std::vector<std::tuple<std::string, Names, Names, bool, unsigned, unsigned,
                           std::vector<int>, int>> out;
    for (int id = 0; id < fs::kNumFamilies; ++id) {
      const auto& f = flashsnn::family_info(id);
      Names states, params;
      for (int k = 0; k < f.states; ++k) states.push_back(f.state_name(k));
      for (int k = 0; k < f.params; ++k) params.push_back(f.param_name(k));
      out.emplace_back(f.name, states, params, f.backward_x, f.resets, f.modes,
                       std::vector<int>(f.saves, f.saves + 3), f.outputs);
    }
    return out;
  }, "(name, state names, parameter names, backward reads x, reset mask, mode mask, "
     "float32 [T, *S] arrays saved for the backward per mode, output states: the first "
     "that many states are outputs, the rest carried only) per family id.");

  m.def(
      "fused",
      [](int family, const mx::array& x, const std::vector<mx::array>& states,
         const std::vector<mx::array>& params, int reset, int mode, bool detach,
         int surrogate_id, float surrogate_a, float surrogate_b, bool mem_all, int save,
         mx::StreamOrDevice s) {
        flashsnn::FamilyOptions o;
        o.family = family;
        o.reset = reset;
        o.mode = mode;
        o.detach = detach;
        o.surrogate = {surrogate_id, surrogate_a, surrogate_b};
        o.mem_all = mem_all;
        return flashsnn::family_forward(x, states, params, o, save, s);
      },
      "family"_a, "x"_a, "states"_a, "params"_a, nb::kw_only(), "reset"_a, "mode"_a,
      "detach"_a, "surrogate_id"_a, "surrogate_a"_a, "surrogate_b"_a, "mem_all"_a,
      "save"_a = -1, "stream"_a = nb::none(),
      "A fused neuron family over all T steps: [spk, *states]. Use flashsnn.ops.<family> "
      "instead; this entry point takes enums and float32 inputs already validated. "
      "save: -1 decides from the inputs, 1/0 forces the forward to keep (or drop) what "
      "the backward needs (0 makes the backward recompute it; tests use this).");
  m.def(
      "selective_scan",
      [](const mx::array& u, const mx::array& delta, const mx::array& A, const mx::array& B,
         const mx::array& C, const std::vector<mx::array>& D, const std::vector<mx::array>& z,
         const std::vector<mx::array>& bias, const std::vector<mx::array>& h0, bool softplus,
         int chunk, mx::StreamOrDevice s) {
        return flashsnn::selective_scan(u, delta, A, B, C, D, z, bias, h0, softplus, chunk, s);
      },
      "u"_a, "delta"_a, "A"_a, "B"_a, "C"_a, nb::kw_only(), "D"_a, "z"_a, "delta_bias"_a,
      "initial_state"_a, "softplus"_a, "chunk"_a = 64, "stream"_a = nb::none(),
      "Mamba-1's selective scan, fused: [out, last state]. Optional inputs are lists of "
      "zero or one array. Use flashsnn.ops.selective_scan instead.");
}

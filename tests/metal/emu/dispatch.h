// Running one launch plan (metal/launch.h) over the emulated kernels, as a
// Metal dispatch would: shared by the families' runner (runner.cpp) and the
// selective scan's (scan_runner.cpp). Ordinary C++17; the kernels' unit
// (shim, source, glue) is reached only through fsemu.h.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "fsemu.h"
#include "metal/launch.h"

namespace fsemu_rt {

namespace fm = flashsnn::metal;

// A row-contiguous buffer and the FsEmuElem of what it holds.
struct Array {
  void* data;
  int elem;
};

// The message of the last entry point that failed (fsemu_error()).
extern std::string g_error;

int elem_of(fm::Dtype d);

// A plan as text, one item per line (the Python tests parse it):
//   kernel NAME / pipeline NAME / constant INDEX bool|int VALUE /
//   bind INDEX input|output|scratch ARRAY | bind INDEX uint|float VALUE |
//   bind INDEX uints V,V,.. / grid N / group G (the plan's, or for
//   max_threads) / tgmem BYTES
std::string plan_text(const fm::Plan& p, uint32_t max_threads);
const FsEmuKernel& find_kernel(const std::string& name);

// How to run the threads. order: threadgroups in order (0), reversed (1) or
// shuffled (2), and in a cooperative kernel the threads of a threadgroup
// between two barriers in the same order; max_threads: the pipeline's
// maxTotalThreadsPerThreadgroup.
struct Schedule {
  int order = 0;
  uint32_t max_threads = 1024;
};

// One dispatch of plan p: sets its function constants, binds inputs,
// outputs, scalars and `scratch` (the PlanSet's float32 buffers) to the
// [[buffer(n)]] indices it names, checks them against the kernel's real
// signature, then runs every grid thread, threadgroup by threadgroup. With
// `whole`, the plan is the primitive's only dispatch and must bind each of
// its inputs and outputs exactly once.
void run(const fm::Plan& p, const std::vector<Array>& in, const std::vector<Array>& out,
         const std::vector<Array>& scratch, const Schedule& s, bool whole);

// Apple GPUs are reported to flush float32 subnormals to zero even in safe
// math mode (METAL.md section 5, not verified here): on x86 the runner can do
// the same, FTZ and DAZ in MXCSR, for the duration of one dispatch.
class FlushSubnormals {
 public:
  explicit FlushSubnormals(bool on);
  ~FlushSubnormals();
  FlushSubnormals(const FlushSubnormals&) = delete;
  FlushSubnormals& operator=(const FlushSubnormals&) = delete;

 private:
  unsigned saved_ = 0;
  bool active_ = false;
};

}  // namespace fsemu_rt

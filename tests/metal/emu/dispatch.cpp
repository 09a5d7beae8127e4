// One Metal dispatch of a launch plan, emulated (dispatch.h).
//
// Kernels that share nothing (the families', the scan's forward and sum)
// run their threads one after another, which is faithful (METAL.md).
// Kernels that reach threadgroup_barrier (the glue marks them cooperative)
// run each threadgroup as one ucontext fiber per thread: a thread runs until
// it reaches a barrier or returns, then the next one runs; when every thread
// waits, all pass the barrier together. A threadgroup whose threads do not
// all reach a barrier (some returned) is an error, as a barrier in divergent
// control flow is undefined on the GPU. Threadgroup arrays come from an
// arena per threadgroup filled with NaN first, so a read of a slot no thread
// wrote in this threadgroup shows in the result. Between two barriers the
// threads run in order, reversed or shuffled (Schedule::order): a kernel
// whose result depends on that order has a race.
//
// Fibers, not OS threads: the order is deterministic (a failure reproduces),
// and a missing barrier shows as a read of another thread's not-yet-written
// (NaN) or already-overwritten slot rather than as a timing-dependent race.
#include "dispatch.h"

#include <ucontext.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <numeric>
#include <random>
#include <sstream>
#include <stdexcept>

#if defined(__SSE__)
#include <xmmintrin.h>
#endif

namespace fsemu_rt {

namespace {

constexpr int kMaxBuffers = 31;  // Metal's buffer argument table
// Apple GPUs' maxThreadgroupMemoryLength: the arena a threadgroup gets.
constexpr size_t kArenaBytes = 32768;
// A fiber's stack: the scan's backward at NMAX 128 keeps ~5 KB of arrays.
constexpr size_t kStackBytes = 256 * 1024;

enum class FiberState { kReady, kAtBarrier, kDone, kFailed };

struct Fiber {
  ucontext_t ctx;
  std::unique_ptr<char[]> stack;
  FiberState state = FiberState::kReady;
  size_t cursor = 0;  // bytes of the arena this thread has asked for
  unsigned gid = 0;
};

// The threadgroup being run cooperatively (null outside one).
struct Coop {
  ucontext_t sched;
  std::vector<Fiber> fibers;
  int current = -1;
  std::vector<unsigned char> arena;
  const FsEmuKernel* kernel = nullptr;
  void* const* buffers = nullptr;
  std::string error;
};
Coop* g_coop = nullptr;

void fiber_main() {
  Coop* c = g_coop;
  Fiber& f = c->fibers[c->current];
  c->kernel->fn(c->buffers, f.gid);
  f.state = FiberState::kDone;  // returning resumes uc_link, the scheduler
}

// Outside cooperative execution the kernel cannot go on meaningfully (the
// glue should have marked it cooperative); no exception may cross the
// kernel's frames (compiled with -fno-exceptions).
[[noreturn]] void fatal(const char* what) {
  std::fprintf(stderr, "fsemu: %s outside a cooperative threadgroup (glue bug)\n", what);
  std::abort();
}

}  // namespace

}  // namespace fsemu_rt

extern "C" void fsemu_threadgroup_barrier(void) {
  using namespace fsemu_rt;
  Coop* c = g_coop;
  if (c == nullptr) fatal("threadgroup_barrier");
  Fiber& f = c->fibers[c->current];
  f.state = FiberState::kAtBarrier;
  swapcontext(&f.ctx, &c->sched);
}

extern "C" void* fsemu_threadgroup_alloc(unsigned long bytes) {
  using namespace fsemu_rt;
  Coop* c = g_coop;
  if (c == nullptr) fatal("a threadgroup array");
  Fiber& f = c->fibers[c->current];
  const size_t off = f.cursor;
  f.cursor += (bytes + 15) & ~size_t(15);
  if (f.cursor > c->arena.size()) {
    c->error = "threadgroup arrays of " + std::to_string(f.cursor) + " bytes, over the " +
        std::to_string(c->arena.size()) + " an Apple GPU gives a threadgroup";
    f.state = FiberState::kFailed;
    swapcontext(&f.ctx, &c->sched);  // never resumed
  }
  return c->arena.data() + off;
}

namespace fsemu_rt {

std::string g_error;

std::string plan_text(const fm::Plan& p, uint32_t max_threads) {
  std::ostringstream os;
  os.precision(9);
  os << "kernel " << p.kernel << "\npipeline " << p.pipeline << "\n";
  for (const auto& c : p.constants) {
    os << "constant " << c.index << (c.is_bool ? " bool " : " int ") << c.value() << "\n";
  }
  static const char* kinds[] = {"input", "output", "uint", "float", "uints", "scratch"};
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
  os << "grid " << p.grid << "\ngroup "
     << (p.group ? p.group : fm::threadgroup_size(p.grid, max_threads)) << "\ntgmem "
     << p.threadgroup_bytes << "\n";
  return os.str();
}

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

namespace {

// A plan's bindings against a kernel's signature: what Metal would reject
// or silently get wrong (an argument left unbound, an output bound to a
// read-only argument, a float buffer where the kernel reads half...).
// Scratch buffers may be written by one dispatch and read by the next.
void check_bindings(const fm::Plan& p, const FsEmuKernel& k, const std::vector<Array>& in,
                    const std::vector<Array>& out, const int* elem, const fm::Binding::Kind* kind,
                    const bool* bound, bool whole) {
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
    const fm::Binding::Kind b = kind[a.buffer];
    if (b == fm::Binding::kOutput && !a.writable) fail(what + ": an output bound to a read-only argument");
    if (b != fm::Binding::kOutput && b != fm::Binding::kScratch && a.writable) {
      fail(what + ": an input bound to a writable argument");
    }
  }
  for (int b = 0; b < kMaxBuffers; ++b) {
    if (bound[b] && !has[b]) fail("[[buffer(" + std::to_string(b) + ")]] is bound but no argument has it");
  }
  if (!whole) return;
  // Every primitive input and output is bound exactly once.
  std::vector<int> seen_in(in.size(), 0), seen_out(out.size(), 0);
  for (const auto& b : p.bindings) {
    if (b.kind == fm::Binding::kInput) ++seen_in[b.array];
    if (b.kind == fm::Binding::kOutput) ++seen_out[b.array];
  }
  for (size_t j = 0; j < in.size(); ++j) {
    if (seen_in[j] != 1) fail("input " + std::to_string(j) + " bound " + std::to_string(seen_in[j]) + " times");
  }
  for (size_t j = 0; j < out.size(); ++j) {
    if (seen_out[j] != 1) fail("output " + std::to_string(j) + " bound " + std::to_string(seen_out[j]) + " times");
  }
}

void order_lanes(std::vector<int>& lanes, int order, std::mt19937_64& rng) {
  std::iota(lanes.begin(), lanes.end(), 0);
  if (order == 1) std::reverse(lanes.begin(), lanes.end());
  if (order == 2) std::shuffle(lanes.begin(), lanes.end(), rng);
}

// Threads gid0 .. gid0 + n - 1, one threadgroup, as fibers (the file's comment).
void run_cooperative(Coop& c, uint64_t gid0, uint64_t n, const fm::Plan& p, const Schedule& s,
                     std::mt19937_64& rng) {
  std::memset(c.arena.data(), 0xff, c.arena.size());  // every float a NaN
  for (uint64_t i = 0; i < n; ++i) {
    Fiber& f = c.fibers[i];
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = f.stack.get();
    f.ctx.uc_stack.ss_size = kStackBytes;
    f.ctx.uc_link = &c.sched;
    makecontext(&f.ctx, fiber_main, 0);
    f.state = FiberState::kReady;
    f.cursor = 0;
    f.gid = static_cast<unsigned>(gid0 + i);
  }
  std::vector<int> lanes(n);
  for (int phase = 0;; ++phase) {
    order_lanes(lanes, s.order, rng);
    for (int i : lanes) {
      if (c.fibers[i].state != FiberState::kReady) continue;
      c.current = i;
      swapcontext(&c.sched, &c.fibers[i].ctx);
      if (!c.error.empty()) throw std::runtime_error(p.kernel + ": " + c.error);
    }
    uint64_t waiting = 0;
    for (uint64_t i = 0; i < n; ++i) waiting += c.fibers[i].state == FiberState::kAtBarrier;
    if (waiting == 0) break;
    if (waiting != n) {
      throw std::runtime_error(p.kernel + ": threadgroup_barrier " + std::to_string(phase + 1) +
                               " reached by " + std::to_string(waiting) + " of the threadgroup's " +
                               std::to_string(n) + " threads (the others returned): a barrier in "
                               "divergent control flow");
    }
    for (uint64_t i = 0; i < n; ++i) c.fibers[i].state = FiberState::kReady;
  }
  const size_t want = (size_t(p.threadgroup_bytes) + 15) & ~size_t(15);
  for (uint64_t i = 0; i < n; ++i) {
    if (c.fibers[i].cursor != want) {
      throw std::runtime_error(p.kernel + ": thread " + std::to_string(gid0 + i) + " declared " +
                               std::to_string(c.fibers[i].cursor) + " bytes of threadgroup arrays, "
                               "the plan says " + std::to_string(p.threadgroup_bytes));
    }
  }
}

struct CoopGuard {
  explicit CoopGuard(Coop* c) { g_coop = c; }
  ~CoopGuard() { g_coop = nullptr; }
};

}  // namespace

void run(const fm::Plan& p, const std::vector<Array>& in, const std::vector<Array>& out,
         const std::vector<Array>& scratch, const Schedule& s, bool whole) {
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
  fm::Binding::Kind kind[kMaxBuffers] = {};
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
    kind[b.index] = b.kind;
    const std::vector<Array>* arrays = b.kind == fm::Binding::kInput ? &in
        : b.kind == fm::Binding::kOutput ? &out : b.kind == fm::Binding::kScratch ? &scratch : nullptr;
    if (arrays != nullptr && (b.array < 0 || size_t(b.array) >= arrays->size())) {
      static const char* what[] = {"input ", "output ", "", "", "", "scratch buffer "};
      throw std::runtime_error(p.kernel + " (" + p.pipeline + "): binds " + what[b.kind] +
                               std::to_string(b.array) + " of the " +
                               (b.kind == fm::Binding::kScratch ? "plans' " : "primitive's ") +
                               std::to_string(arrays->size()));
    }
    switch (b.kind) {
      case fm::Binding::kInput:
      case fm::Binding::kOutput:
      case fm::Binding::kScratch:
        buffers[b.index] = (*arrays)[b.array].data;
        elem[b.index] = (*arrays)[b.array].elem;
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
  check_bindings(p, k, in, out, elem, kind, bound, whole);
  if (p.threadgroup_bytes > kArenaBytes) {
    throw std::runtime_error(p.kernel + ": " + std::to_string(p.threadgroup_bytes) +
                             " bytes of threadgroup memory, over Apple GPUs' 32 KB");
  }
  if (k.cooperative && p.group == 0) {
    throw std::runtime_error(p.kernel + " synchronizes its threadgroup: its plan must fix the "
                             "threadgroup size");
  }
  if (p.group > s.max_threads) {
    throw std::runtime_error(p.kernel + ": the plan's threadgroup of " + std::to_string(p.group) +
                             " threads is over the pipeline's maximum of " +
                             std::to_string(s.max_threads));
  }
  const uint64_t group = p.group ? p.group : fm::threadgroup_size(p.grid, s.max_threads);
  const uint64_t groups = (p.grid + group - 1) / group;
  std::vector<uint64_t> seq(groups);
  std::iota(seq.begin(), seq.end(), uint64_t(0));
  std::mt19937_64 rng(12345);
  if (s.order == 1) std::reverse(seq.begin(), seq.end());
  if (s.order == 2) std::shuffle(seq.begin(), seq.end(), rng);
  if (!k.cooperative) {
    for (uint64_t g : seq) {
      for (uint64_t l = 0; l < group; ++l) {
        const uint64_t gid = g * group + l;
        if (gid >= p.grid) break;  // dispatch_threads: a partial last group
        k.fn(buffers, static_cast<unsigned>(gid));
      }
    }
    return;
  }
  Coop c;
  c.arena.resize(kArenaBytes);
  c.kernel = &k;
  c.buffers = buffers;
  c.fibers.resize(group);
  for (auto& f : c.fibers) f.stack.reset(new char[kStackBytes]);
  CoopGuard guard(&c);
  for (uint64_t g : seq) {
    const uint64_t gid0 = g * group;
    // dispatch_threads: a partial last group has only the grid's threads
    run_cooperative(c, gid0, std::min<uint64_t>(group, p.grid - gid0), p, s, rng);
  }
}

FlushSubnormals::FlushSubnormals(bool on) {
  if (!on) return;
#if defined(__SSE__)
  saved_ = _mm_getcsr();
  _mm_setcsr(saved_ | 0x8040u);  // FTZ (bit 15) | DAZ (bit 6)
  active_ = true;
#else
  throw std::runtime_error("flushing subnormals is emulated on x86 only");
#endif
}

FlushSubnormals::~FlushSubnormals() {
#if defined(__SSE__)
  if (active_) _mm_setcsr(saved_);
#endif
}

}  // namespace fsemu_rt

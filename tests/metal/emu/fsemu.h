// The contract between the emulated kernels (one translation unit: the shim,
// the inlined .metal source and the glue that tests/metal/emulator.py
// generates from its AST) and the runner (tests/metal/emu/*.cpp, which
// executes the launch plans of metal/<family>.h and metal/scan.h). Plain C: the kernels' unit sees no
// standard-library header.
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

// Element types of buffer arguments (and of the arrays bound to them).
enum FsEmuElem {
  FSEMU_OTHER = 0,
  FSEMU_FLOAT = 1,
  FSEMU_HALF = 2,
  FSEMU_BFLOAT = 3,
  FSEMU_UINT = 4,
  FSEMU_INT = 5,
};

// One kernel argument that takes a buffer.
struct FsEmuParam {
  int buffer;    // [[buffer(n)]]
  int gate;      // index of the function constant that compiles it in, or -1
  int writable;  // a pointer to non-const: the kernel may store through it
  int elem;      // FsEmuElem of the pointee / referee
};

// One [[kernel]]: call `fn` once per grid thread with buffers[n] bound to
// [[buffer(n)]] and gid = the thread's [[thread_position_in_grid]].
// cooperative: it reaches threadgroup_barrier or a threadgroup array, so the
// threads of a threadgroup run together (emu/dispatch.cpp).
struct FsEmuKernel {
  const char* name;
  void (*fn)(void* const* buffers, unsigned int gid);
  const struct FsEmuParam* params;
  int num_params;
  int cooperative;
};

struct FsEmuConstant {
  const char* name;
  int index;    // [[function_constant(index)]]
  int is_bool;  // else int
};

extern const struct FsEmuKernel fsemu_kernels[];
extern const int fsemu_num_kernels;
extern const struct FsEmuConstant fsemu_constants[];
extern const int fsemu_num_constants;
// Sets [[function_constant(index)]]; returns 0 when no constant has it.
int fsemu_set_constant(int index, int value);

#ifdef __cplusplus
}
#endif

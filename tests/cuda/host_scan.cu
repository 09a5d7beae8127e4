// Runs the selective scan's CUDA code (csrc/scan.cuh) on the CPU: every
// block of the grids scan.cu launches (forward, backward) as one OS thread
// per GPU thread; they meet at a pthread barrier where the kernel calls
// __syncthreads and exchange values through a slot per thread (between two
// barriers) where it calls __shfl_xor_sync or __shfl_sync; then the final
// sums. The kernels (csrc/scan_kernels.cuh) are one call into these
// functions, so this checks
// their indexing, the lane split of the states, the chunk recomputation, the
// butterfly and shared-memory sums and their barriers without a GPU. Scratch
// and shared memory start as NaN: a read of anything not written first
// reaches the results. Built by tests/cuda/test_cuda_scan_logic.py with nvcc
// into a shared library that Python drives through ctypes.
#include <pthread.h>

#include <cmath>
#include <vector>

#include "../../csrc/scan.cuh"

using namespace flashsnn::cuda;

// The lane cap's link-time check (csrc/scan.h), as csrc/scan.cu defines it.
extern "C" const int FLASHSNN_SCAN_CAP_NAME(FLASHSNN_SCAN_LANES_CAP) = FLASHSNN_SCAN_LANES_CAP;

namespace {

// __host__ __device__ only because scan.cuh's functions are; never on a GPU.
struct HostSync {
  pthread_barrier_t* bar;
  float* slots;  // one per thread of the block
  int t;
  __host__ __device__ void barrier() {
#if !defined(__CUDA_ARCH__)
    pthread_barrier_wait(bar);
#endif
  }
  __host__ __device__ float shfl_xor(float v, int off) {
    slots[t] = v;
    barrier();
    const float r = slots[t ^ off];
    barrier();
    return r;
  }
  // lane: of this thread's segment of `width` lanes (a power of two up to
  // 32), as __shfl_sync.
  __host__ __device__ float shfl(float v, int lane, int width) {
    slots[t] = v;
    barrier();
    const float r = slots[(t & ~(width - 1)) + lane % width];
    barrier();
    return r;
  }
};

struct Block {
  const ScanParams* p;
  int64_t blk;
  bool bwd;
  float* red;
  float* slots;
  pthread_barrier_t* bar;
};

// The kernel's body for the lanes and states per lane of p.N, as
// scan_kernels.cuh picks it (scan_with_config).
template <typename T>
struct Thread {
  const Block* k;
  int t;
  static void* go(void* arg) {
    auto* r = static_cast<Thread*>(arg);
    const Block& k = *r->k;
    HostSync sync{k.bar, k.slots, r->t};
    scan_with_config(k.p->N, [&](auto cfg) {
      using C = decltype(cfg);
      if (k.bwd) {
        scan_backward_block<T, C::P, C::SPL>(*k.p, k.blk, r->t, k.red, sync);
      } else {
        scan_forward_thread<T, C::P, C::SPL>(*k.p, k.blk, r->t, sync);
      }
    });
    return nullptr;
  }
};

template <typename T>
void run(const ScanParams& p, bool bwd) {
  const unsigned W = scan_block_threads(bwd);
  const int64_t blocks = scan_blocks(p.Bt, p.D, p.N, bwd);
  std::vector<float> red(scan_shared_bytes(p.N) / sizeof(float)), slots(W);
  for (int64_t blk = 0; blk < blocks; ++blk) {
    std::fill(red.begin(), red.end(), NAN);
    std::fill(slots.begin(), slots.end(), NAN);
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, nullptr, W);
    Block k{&p, blk, bwd, red.data(), slots.data(), &bar};
    std::vector<Thread<T>> runs(W);
    std::vector<pthread_t> th(W);
    for (unsigned t = 0; t < W; ++t) {
      runs[t] = {&k, int(t)};
      pthread_create(&th[t], nullptr, &Thread<T>::go, &runs[t]);
    }
    for (unsigned t = 0; t < W; ++t) pthread_join(th[t], nullptr);
    pthread_barrier_destroy(&bar);
  }
}

}  // namespace

// ptrs: the 19 array pointers of ScanParams, u .. dh0, in its order;
// dims: Bt, L, D, N, K; flags: has_D, has_z, has_bias, has_h0, softplus,
// B_varies, C_varies; grads: dA, dB, dC, dD, dbias (backward; null when
// absent). Returns 0, or 1 when no kernel takes N.
extern "C" int fs_scan_host(int dtype, int bwd, void** ptrs, const int64_t* dims,
                            const int* flags, float** grads) {
  ScanParams p{};
  p.u = ptrs[0];
  p.delta = ptrs[1];
  p.A = static_cast<const float*>(ptrs[2]);
  p.B = ptrs[3];
  p.C = ptrs[4];
  p.Dv = static_cast<const float*>(ptrs[5]);
  p.z = ptrs[6];
  p.bias = static_cast<const float*>(ptrs[7]);
  p.h0 = static_cast<const float*>(ptrs[8]);
  p.chk_in = static_cast<const float*>(ptrs[9]);
  p.dout = ptrs[10];
  p.dlast = static_cast<const float*>(ptrs[11]);
  p.out = ptrs[12];
  p.last = static_cast<float*>(ptrs[13]);
  p.chk = static_cast<float*>(ptrs[14]);
  p.du = ptrs[15];
  p.ddelta = ptrs[16];
  p.dz = ptrs[17];
  p.dh0 = static_cast<float*>(ptrs[18]);
  p.Bt = dims[0];
  p.L = dims[1];
  p.D = dims[2];
  p.N = dims[3];
  p.K = dims[4];
  p.nchk = (p.L + p.K - 1) / p.K;
  p.has_D = flags[0];
  p.has_z = flags[1];
  p.has_bias = flags[2];
  p.has_h0 = flags[3];
  p.softplus = flags[4];
  p.B_varies = flags[5];
  p.C_varies = flags[6];
  if (p.N < 1 || p.N > kScanMaxN) return 1;
  const ScanScratch n = scan_scratch(p);
  std::vector<float> hs(n.hs, NAN), pA(n.pA, NAN), pB(n.pB, NAN), pC(n.pC, NAN),
      pD(n.pD, NAN), pbias(n.pbias, NAN);
  p.hs = hs.data();
  p.pA = pA.data();
  p.pB = pB.data();
  p.pC = pC.data();
  p.pD = pD.data();
  p.pbias = pbias.data();
  if (dtype == 0) run<float>(p, bwd);
  else if (dtype == 1) run<__half>(p, bwd);
  else run<__nv_bfloat16>(p, bwd);
  if (bwd) {
    const ScanSumParams q = scan_sums(p, grads[0], grads[1], grads[2], grads[3], grads[4]);
    const int64_t threads = scan_sum_blocks(q) * kScanSumBlock;
    for (int job = 0; job < q.jobs; ++job)
      for (int64_t j = 0; j < threads; ++j) scan_sum_thread(q, job, j);
  }
  return 0;
}

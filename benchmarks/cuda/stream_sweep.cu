// How should one thread walk T steps of a time-major [T, M] array so that a
// serial recurrence streams at the GPU's copy bandwidth? A standalone sweep
// (plain cudaMalloc, no MLX) of Leaky's memory traffic, the smallest
// family's: forward reads x and writes the spikes and one float32 save per
// step; backward walks back reading the save and the spike cotangent and
// writes dx. The per-step math is Leaky's shape (a few flops), not flashsnn's
// exact code: what is compared is how the loads are issued.
//
//   batch   load U steps into registers, compute them, store them (the
//           engine's structure through 2026-12-03: loads stop while it computes)
//   double  the same with the next U steps' loads issued before computing
//           the current ones (2U registers per stream)
//   async   cp.async (sm_80+) of S stages of U steps into shared memory, each
//           thread its own slots (no block barrier): a stage is refilled as
//           soon as it is consumed, so S*U steps stay in flight without
//           registers
//
// Every variant's outputs are checked bitwise against `batch` V=1 before
// it is timed. Build and run (the H200 host):
//   nvcc -O3 -std=c++17 -arch=sm_90 benchmarks/cuda/stream_sweep.cu -o /tmp/sweep && /tmp/sweep
#include <cuda_pipeline.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <vector>

#define CK(x)                                                                  \
  do {                                                                         \
    cudaError_t e_ = (x);                                                      \
    if (e_ != cudaSuccess) {                                                   \
      printf("CUDA error %s at %s:%d\n", cudaGetErrorString(e_), __FILE__, __LINE__); \
      exit(1);                                                                 \
    }                                                                          \
  } while (0)

struct P {
  const float* x;
  float* spk;
  float* h;  // the save (null: inference forward)
  const float* dspk;
  float* dx;
  float* gbeta;
  int64_t T, M;
  float beta, thr;
};

template <int V> struct VT;
template <> struct VT<1> { using t = float; };
template <> struct VT<2> { using t = float2; };
template <> struct VT<4> { using t = float4; };

template <int V>
__device__ __forceinline__ void ld(const float* p, float (&r)[V]) {
  const auto v = *reinterpret_cast<const typename VT<V>::t*>(p);
  memcpy(r, &v, sizeof v);
}
template <int V>
__device__ __forceinline__ void st(float* p, const float (&r)[V]) {
  typename VT<V>::t v;
  memcpy(&v, r, sizeof v);
  *reinterpret_cast<typename VT<V>::t*>(p) = v;
}

// --- per-step math (Leaky, subtract reset, atan surrogate) -----------------
__device__ __forceinline__ void fstep(float& m, float x, float beta, float thr, float& s, float& h) {
  h = beta * m + x;
  s = h > thr ? 1.f : 0.f;
  m = h - s * thr;
}
__device__ __forceinline__ float bstep(float h, float hprev, float dspk, float& gu, float& gb,
                                       float beta, float thr) {
  const float mprev = hprev - (hprev > thr ? thr : 0.f);
  const float a = 3.14159265f * (h - thr);
  const float sg = 1.f / (1.f + a * a);
  const float dh = dspk * sg + gu * (1.f - thr * sg);
  gb += dh * mprev;
  gu = beta * dh;
  return dh;
}

// --- forward ---------------------------------------------------------------
template <int V, int U>
__device__ __forceinline__ void fcompute(const P& p, int64_t o, const float (&xr)[U][V],
                                         float (&m)[V]) {
  for (int j = 0; j < U; ++j) {
    float s[V], h[V];
#pragma unroll
    for (int k = 0; k < V; ++k) fstep(m[k], xr[j][k], p.beta, p.thr, s[k], h[k]);
    st<V>(p.spk + o + j * p.M, s);
    if (p.h) st<V>(p.h + o + j * p.M, h);
  }
}

template <int V, int U, int MINB>
__global__ void __launch_bounds__(128, MINB) fwd_batch(const __grid_constant__ P p) {
  const int64_t i = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * V;
  if (i >= p.M) return;
  float m[V] = {};
  int64_t t = 0;
  for (; t + U <= p.T; t += U) {
    float xr[U][V];
#pragma unroll
    for (int j = 0; j < U; ++j) ld<V>(p.x + (t + j) * p.M + i, xr[j]);
#pragma unroll
    for (int j = 0; j < U; ++j) {
      float s[V], h[V];
#pragma unroll
      for (int k = 0; k < V; ++k) fstep(m[k], xr[j][k], p.beta, p.thr, s[k], h[k]);
      st<V>(p.spk + (t + j) * p.M + i, s);
      if (p.h) st<V>(p.h + (t + j) * p.M + i, h);
    }
  }
  for (; t < p.T; ++t) {
    float xr[V], s[V], h[V];
    ld<V>(p.x + t * p.M + i, xr);
#pragma unroll
    for (int k = 0; k < V; ++k) fstep(m[k], xr[k], p.beta, p.thr, s[k], h[k]);
    st<V>(p.spk + t * p.M + i, s);
    if (p.h) st<V>(p.h + t * p.M + i, h);
  }
}

template <int V, int U, int MINB>
__global__ void __launch_bounds__(128, MINB) fwd_double(const __grid_constant__ P p) {
  const int64_t i = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * V;
  if (i >= p.M) return;
  float m[V] = {};
  float cur[U][V], nxt[U][V];
  int64_t t = 0;
  if (U <= p.T) {
#pragma unroll
    for (int j = 0; j < U; ++j) ld<V>(p.x + j * p.M + i, cur[j]);
  }
  for (; t + U <= p.T; t += U) {
    const bool more = t + 2 * U <= p.T;
    if (more) {
#pragma unroll
      for (int j = 0; j < U; ++j) ld<V>(p.x + (t + U + j) * p.M + i, nxt[j]);
    }
#pragma unroll
    for (int j = 0; j < U; ++j) {
      float s[V], h[V];
#pragma unroll
      for (int k = 0; k < V; ++k) fstep(m[k], cur[j][k], p.beta, p.thr, s[k], h[k]);
      st<V>(p.spk + (t + j) * p.M + i, s);
      if (p.h) st<V>(p.h + (t + j) * p.M + i, h);
    }
    if (more) {
#pragma unroll
      for (int j = 0; j < U; ++j)
#pragma unroll
        for (int k = 0; k < V; ++k) cur[j][k] = nxt[j][k];
    }
  }
  for (; t < p.T; ++t) {
    float xr[V], s[V], h[V];
    ld<V>(p.x + t * p.M + i, xr);
#pragma unroll
    for (int k = 0; k < V; ++k) fstep(m[k], xr[k], p.beta, p.thr, s[k], h[k]);
    st<V>(p.spk + t * p.M + i, s);
    if (p.h) st<V>(p.h + t * p.M + i, h);
  }
}

// Shared memory: [S][U][128] vectors of V floats, a thread's own column.
template <int V, int U, int S, int MINB>
__global__ void __launch_bounds__(128, MINB) fwd_async(const __grid_constant__ P p) {
  extern __shared__ float4 smem4[];
  using VTy = typename VT<V>::t;
  VTy* sm = reinterpret_cast<VTy*>(smem4);
  const int tx = threadIdx.x;
  const int64_t i = (int64_t(blockIdx.x) * blockDim.x + tx) * V;
  if (i >= p.M) return;
  const int64_t chunks = p.T / U;  // full chunks; the tail is loaded directly
  auto issue = [&](int64_t c) {
    if (c < chunks) {
#pragma unroll
      for (int j = 0; j < U; ++j)
        __pipeline_memcpy_async(&sm[((c % S) * U + j) * 128 + tx], p.x + (c * U + j) * p.M + i,
                                sizeof(VTy));
    }
    __pipeline_commit();
  };
#pragma unroll
  for (int s = 0; s < S; ++s) issue(s);
  float m[V] = {};
  for (int64_t c = 0; c < chunks; ++c) {
    __pipeline_wait_prior(S - 1);
    float xr[U][V];
#pragma unroll
    for (int j = 0; j < U; ++j) {
      const VTy v = sm[((c % S) * U + j) * 128 + tx];
      memcpy(xr[j], &v, sizeof v);
    }
    issue(c + S);
#pragma unroll
    for (int j = 0; j < U; ++j) {
      float s[V], h[V];
#pragma unroll
      for (int k = 0; k < V; ++k) fstep(m[k], xr[j][k], p.beta, p.thr, s[k], h[k]);
      st<V>(p.spk + (c * U + j) * p.M + i, s);
      if (p.h) st<V>(p.h + (c * U + j) * p.M + i, h);
    }
  }
  for (int64_t t = chunks * U; t < p.T; ++t) {
    float xr[V], s[V], h[V];
    ld<V>(p.x + t * p.M + i, xr);
#pragma unroll
    for (int k = 0; k < V; ++k) fstep(m[k], xr[k], p.beta, p.thr, s[k], h[k]);
    st<V>(p.spk + t * p.M + i, s);
    if (p.h) st<V>(p.h + t * p.M + i, h);
  }
}

// --- backward (reverse time; h[t-1] gives the state entering step t) --------
template <int V>
__device__ __forceinline__ void bone(const P& p, int64_t t, int64_t i, const float (&h)[V],
                                     const float (&hp)[V], const float (&d)[V], float (&gu)[V],
                                     float (&gb)[V]) {
  float dx[V];
#pragma unroll
  for (int k = 0; k < V; ++k) dx[k] = bstep(h[k], hp[k], d[k], gu[k], gb[k], p.beta, p.thr);
  st<V>(p.dx + t * p.M + i, dx);
}

template <int V, int U, int MINB>
__global__ void __launch_bounds__(128, MINB) bwd_batch(const __grid_constant__ P p) {
  const int64_t i = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * V;
  if (i >= p.M) return;
  float gu[V] = {}, gb[V] = {}, top[V];
  ld<V>(p.h + (p.T - 1) * p.M + i, top);
  int64_t t = p.T - 1;  // top = h[t]
  for (; t - U >= 0; t -= U) {
    float hr[U + 1][V], dr[U][V];
#pragma unroll
    for (int k = 0; k < V; ++k) hr[0][k] = top[k];
#pragma unroll
    for (int j = 0; j < U; ++j) {
      ld<V>(p.h + (t - j - 1) * p.M + i, hr[j + 1]);
      ld<V>(p.dspk + (t - j) * p.M + i, dr[j]);
    }
#pragma unroll
    for (int j = 0; j < U; ++j) bone<V>(p, t - j, i, hr[j], hr[j + 1], dr[j], gu, gb);
#pragma unroll
    for (int k = 0; k < V; ++k) top[k] = hr[U][k];
  }
  for (; t >= 0; --t) {
    float hp[V] = {}, d[V];
    if (t > 0) ld<V>(p.h + (t - 1) * p.M + i, hp);
    ld<V>(p.dspk + t * p.M + i, d);
    bone<V>(p, t, i, top, hp, d, gu, gb);
#pragma unroll
    for (int k = 0; k < V; ++k) top[k] = hp[k];
  }
  st<V>(p.gbeta + i, gb);
}

template <int V, int U, int MINB>
__global__ void __launch_bounds__(128, MINB) bwd_double(const __grid_constant__ P p) {
  const int64_t i = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * V;
  if (i >= p.M) return;
  float gu[V] = {}, gb[V] = {}, top[V];
  ld<V>(p.h + (p.T - 1) * p.M + i, top);
  float hc[U][V], dc[U][V], hn[U][V], dn[U][V];
  int64_t t = p.T - 1;
  if (t - U >= 0) {
#pragma unroll
    for (int j = 0; j < U; ++j) {
      ld<V>(p.h + (t - j - 1) * p.M + i, hc[j]);
      ld<V>(p.dspk + (t - j) * p.M + i, dc[j]);
    }
  }
  for (; t - U >= 0; t -= U) {
    const bool more = t - 2 * U >= 0;
    if (more) {
#pragma unroll
      for (int j = 0; j < U; ++j) {
        ld<V>(p.h + (t - U - j - 1) * p.M + i, hn[j]);
        ld<V>(p.dspk + (t - U - j) * p.M + i, dn[j]);
      }
    }
    bone<V>(p, t, i, top, hc[0], dc[0], gu, gb);
#pragma unroll
    for (int j = 1; j < U; ++j) bone<V>(p, t - j, i, hc[j - 1], hc[j], dc[j], gu, gb);
#pragma unroll
    for (int k = 0; k < V; ++k) top[k] = hc[U - 1][k];
    if (more) {
#pragma unroll
      for (int j = 0; j < U; ++j)
#pragma unroll
        for (int k = 0; k < V; ++k) hc[j][k] = hn[j][k], dc[j][k] = dn[j][k];
    }
  }
  for (; t >= 0; --t) {
    float hp[V] = {}, d[V];
    if (t > 0) ld<V>(p.h + (t - 1) * p.M + i, hp);
    ld<V>(p.dspk + t * p.M + i, d);
    bone<V>(p, t, i, top, hp, d, gu, gb);
#pragma unroll
    for (int k = 0; k < V; ++k) top[k] = hp[k];
  }
  st<V>(p.gbeta + i, gb);
}

// Two streams (h one step below, dspk) per stage: [S][2][U][128].
template <int V, int U, int S, int MINB>
__global__ void __launch_bounds__(128, MINB) bwd_async(const __grid_constant__ P p) {
  extern __shared__ float4 smem4[];
  using VTy = typename VT<V>::t;
  VTy* sm = reinterpret_cast<VTy*>(smem4);
  const int tx = threadIdx.x;
  const int64_t i = (int64_t(blockIdx.x) * blockDim.x + tx) * V;
  if (i >= p.M) return;
  float gu[V] = {}, gb[V] = {}, top[V];
  ld<V>(p.h + (p.T - 1) * p.M + i, top);
  // Chunk c covers steps T-1-cU down to T-U-cU; kept above step 0.
  const int64_t chunks = (p.T - 1) / U;
  auto slot = [&](int64_t c, int s, int j) { return ((c % S) * 2 + s) * U * 128 + j * 128 + tx; };
  auto issue = [&](int64_t c) {
    if (c < chunks) {
      const int64_t th = p.T - 1 - c * U;
#pragma unroll
      for (int j = 0; j < U; ++j) {
        __pipeline_memcpy_async(&sm[slot(c, 0, j)], p.h + (th - j - 1) * p.M + i, sizeof(VTy));
        __pipeline_memcpy_async(&sm[slot(c, 1, j)], p.dspk + (th - j) * p.M + i, sizeof(VTy));
      }
    }
    __pipeline_commit();
  };
#pragma unroll
  for (int s = 0; s < S; ++s) issue(s);
  for (int64_t c = 0; c < chunks; ++c) {
    __pipeline_wait_prior(S - 1);
    float hr[U + 1][V], dr[U][V];
#pragma unroll
    for (int k = 0; k < V; ++k) hr[0][k] = top[k];
#pragma unroll
    for (int j = 0; j < U; ++j) {
      VTy a = sm[slot(c, 0, j)], b = sm[slot(c, 1, j)];
      memcpy(hr[j + 1], &a, sizeof a);
      memcpy(dr[j], &b, sizeof b);
    }
    issue(c + S);
    const int64_t th = p.T - 1 - c * U;
#pragma unroll
    for (int j = 0; j < U; ++j) bone<V>(p, th - j, i, hr[j], hr[j + 1], dr[j], gu, gb);
#pragma unroll
    for (int k = 0; k < V; ++k) top[k] = hr[U][k];
  }
  for (int64_t t = p.T - 1 - chunks * U; t >= 0; --t) {
    float hp[V] = {}, d[V];
    if (t > 0) ld<V>(p.h + (t - 1) * p.M + i, hp);
    ld<V>(p.dspk + t * p.M + i, d);
    bone<V>(p, t, i, top, hp, d, gu, gb);
#pragma unroll
    for (int k = 0; k < V; ++k) top[k] = hp[k];
  }
  st<V>(p.gbeta + i, gb);
}

__global__ void scale2(const float4* a, float4* b, int64_t n4) {
  for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < n4;
       k += int64_t(gridDim.x) * blockDim.x) {
    float4 v = a[k];
    b[k] = make_float4(2 * v.x, 2 * v.y, 2 * v.z, 2 * v.w);
  }
}

// --- flashsnn's own kernels (csrc/family.cuh), Leaky float32, on the same
// buffers, so that their time is read beside the variants' in one process.
#include "../../csrc/family.cuh"
namespace fc = flashsnn::cuda;
template <int V>
__global__ void __launch_bounds__(fc::kMaxBlock, fc::min_blocks(false, V))
    engine_fwd(const __grid_constant__ fc::FwdParams p) {
  fc::forward_thread<fs::Leaky, float, fs::kSubtract, fs::kDelayed, V>(
      p, int64_t(blockIdx.x) * blockDim.x + threadIdx.x);
}
template <int V>
__global__ void __launch_bounds__(fc::kMaxBlock, fc::min_blocks(true, V))
    engine_bwd(const __grid_constant__ fc::BwdParams p) {
  __shared__ float sums[fc::fold_slots<fs::Leaky, V>() * fc::kMaxBlock];
  fc::backward_thread<fs::Leaky, float, fs::kSubtract, fs::kDelayed, V>(
      p, int64_t(blockIdx.x) * blockDim.x + threadIdx.x,
      fc::FoldSlots<fc::kMaxBlock>{sums + threadIdx.x});
}

// --- driver ------------------------------------------------------------------
static float time_ms(const std::function<void()>& f, int reps = 30) {
  cudaEvent_t a, b;
  CK(cudaEventCreate(&a));
  CK(cudaEventCreate(&b));
  for (int r = 0; r < 5; ++r) f();
  std::vector<float> v;
  for (int r = 0; r < reps; ++r) {
    CK(cudaEventRecord(a));
    f();
    CK(cudaEventRecord(b));
    CK(cudaEventSynchronize(b));
    float ms;
    CK(cudaEventElapsedTime(&ms, a, b));
    v.push_back(ms);
  }
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct Variant {
  const char* kind;  // batch / double / async
  int V, U, S, minb;
  const void* fwd;
  const void* bwd;
  size_t smem_fwd, smem_bwd;
};

template <int V> constexpr size_t vbytes() { return V * sizeof(float); }

#define BATCH(V, U, MB) \
  Variant{"batch", V, U, 0, MB, (const void*)fwd_batch<V, U, MB>, (const void*)bwd_batch<V, U, MB>, 0, 0}
#define DOUBLE(V, U, MB) \
  Variant{"double", V, U, 0, MB, (const void*)fwd_double<V, U, MB>, (const void*)bwd_double<V, U, MB>, 0, 0}
#define ASYNC(V, U, S, MB)                                                                  \
  Variant{"async", V, U, S, MB, (const void*)fwd_async<V, U, S, MB>,                        \
          (const void*)bwd_async<V, U, S, MB>, S * U * 128 * vbytes<V>(), 2 * S * U * 128 * vbytes<V>()}

static void launch(const void* k, int V, size_t smem, const P& p) {
  const unsigned block = 128, grid = unsigned((p.M / V + block - 1) / block);
  void* args[] = {const_cast<P*>(&p)};
  CK(cudaLaunchKernel(k, grid, block, args, smem, 0));
}

int main(int argc, char** argv) {
  int dev = 0;
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, dev));
  printf("device %s, %d SMs\n", prop.name, prop.multiProcessorCount);
  std::vector<Variant> vs = {
      BATCH(1, 4, 4),   BATCH(1, 8, 4),   BATCH(1, 8, 8),    BATCH(1, 16, 4),  BATCH(1, 32, 3),
      BATCH(2, 8, 6),   BATCH(4, 4, 6),   BATCH(4, 4, 4),   BATCH(4, 8, 6),    BATCH(4, 8, 4),   BATCH(4, 16, 4),
      DOUBLE(1, 4, 8),  DOUBLE(1, 8, 4),  DOUBLE(2, 4, 6),   DOUBLE(4, 4, 6),  DOUBLE(4, 8, 4),
      ASYNC(1, 4, 2, 8), ASYNC(1, 4, 4, 8), ASYNC(1, 8, 3, 8), ASYNC(1, 8, 4, 4), ASYNC(2, 4, 3, 6),
      ASYNC(4, 2, 3, 6), ASYNC(4, 4, 2, 6), ASYNC(4, 4, 3, 6), ASYNC(4, 4, 4, 4), ASYNC(4, 8, 2, 4),
  };
  // SWEEP_ONLY=<substring of a variant's name> runs only those;
  // SWEEP_MANAGED=1 allocates the inputs with cudaMallocManaged.
  const char* only = getenv("SWEEP_ONLY");
  const int managed = getenv("SWEEP_MANAGED") ? atoi(getenv("SWEEP_MANAGED")) : 0;
  printf("memory mode %d (0 device; 1 inputs managed, host-written; 2 inputs managed, "
         "GPU-touched; 3 every array managed, GPU-touched; "
         "4 inputs as 2, outputs from cudaMallocAsync)\n", managed);
  for (auto& v : vs) {
    CK(cudaFuncSetAttribute(v.fwd, cudaFuncAttributeMaxDynamicSharedMemorySize, 200 * 1024));
    CK(cudaFuncSetAttribute(v.bwd, cudaFuncAttributeMaxDynamicSharedMemorySize, 200 * 1024));
  }
  const int64_t shapes[][2] = {{100, 64 * 4096}, {500, 32 * 1024}, {100, 16 * 4096}};
  for (auto& sh : shapes) {
    const int64_t T = sh[0], M = sh[1], n = T * M;
    const size_t bytes = size_t(n) * 4;
    float *x, *spk, *h, *dspk, *dx, *gb, *y;
    // 1: x and dspk managed, written from the host; 2: x and dspk managed,
    // first touched by a kernel (as MLX's arrays: cudaMallocManaged, written
    // on the GPU); 3: as 2, and the outputs managed too.
    // 4: x and dspk managed and GPU-touched, the outputs from a stream-ordered
    // pool (cudaMallocAsync), as flashsnn's kernels run under MLX.
    auto alloc = [&](float** q, bool m) {
      if (m) CK(cudaMallocManaged(q, bytes));
      else if (managed == 4) CK(cudaMallocAsync(q, bytes, 0));
      else CK(cudaMalloc(q, bytes));
    };
    alloc(&x, managed >= 1); alloc(&dspk, managed >= 1);
    alloc(&spk, managed == 3); alloc(&h, managed == 3); CK(cudaMalloc(&dx, bytes)); CK(cudaMalloc(&y, bytes));
    CK(cudaMalloc(&gb, M * 4));
    std::vector<float> hx(n), hd(n);
    uint32_t r = 12345;
    for (int64_t k = 0; k < n; ++k) {
      r = r * 1664525u + 1013904223u; hx[k] = float(r >> 8) / float(1 << 24) * 0.6f;
      r = r * 1664525u + 1013904223u; hd[k] = float(r >> 8) / float(1 << 24) - 0.5f;
    }
    CK(cudaMemcpy(x, hx.data(), bytes, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(dspk, hd.data(), bytes, cudaMemcpyHostToDevice));
    P p{x, spk, h, dspk, dx, gb, T, M, 0.9f, 1.0f};
    // Reference outputs: batch V=1 U=1.
    launch((const void*)fwd_batch<1, 1, 4>, 1, 0, p);
    launch((const void*)bwd_batch<1, 1, 4>, 1, 0, p);
    CK(cudaDeviceSynchronize());
    std::vector<float> rs(n), rh(n), rdx(n), rg(M), cs(n), ch(n), cdx(n), cg(M);
    CK(cudaMemcpy(rs.data(), spk, bytes, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(rh.data(), h, bytes, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(rdx.data(), dx, bytes, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(rg.data(), gb, M * 4, cudaMemcpyDeviceToHost));
    double rate = 0;
    for (float s : rs) rate += s;
    printf("\n== T=%lld M=%lld (%.1f MB per plane), spike rate %.3f\n", (long long)T, (long long)M,
           bytes / 1e6, rate / n);
    const float t2 = time_ms([&] { scale2<<<prop.multiProcessorCount * 8, 512>>>((const float4*)x, (float4*)y, n / 4); });
    const double bw = 2.0 * bytes / (t2 * 1e-3);
    printf("x*2 (grid-stride float4)  %.4f ms  %.2f TB/s: the floor's bandwidth\n", t2, bw / 1e12);
    printf("%-22s %9s %9s %9s %9s %9s %9s\n", "variant", "fwd-inf", "x floor", "fwd+save", "bwd",
           "fwd+bwd", "x floor");
    for (auto& v : vs) {
      if (M % v.V) continue;
      char name[64];
      snprintf(name, sizeof name, "%s V%d U%d S%d mb%d", v.kind, v.V, v.U, v.S, v.minb);
      if (only && !strstr(name, only)) continue;
      CK(cudaMemset(spk, 0, bytes)); CK(cudaMemset(h, 0, bytes)); CK(cudaMemset(dx, 0, bytes));
      launch(v.fwd, v.V, v.smem_fwd, p);
      launch(v.bwd, v.V, v.smem_bwd, p);
      CK(cudaDeviceSynchronize());
      CK(cudaMemcpy(cs.data(), spk, bytes, cudaMemcpyDeviceToHost));
      CK(cudaMemcpy(ch.data(), h, bytes, cudaMemcpyDeviceToHost));
      CK(cudaMemcpy(cdx.data(), dx, bytes, cudaMemcpyDeviceToHost));
      CK(cudaMemcpy(cg.data(), gb, M * 4, cudaMemcpyDeviceToHost));
      const bool ok = !memcmp(cs.data(), rs.data(), bytes) && !memcmp(ch.data(), rh.data(), bytes) &&
                      !memcmp(cdx.data(), rdx.data(), bytes) && !memcmp(cg.data(), rg.data(), M * 4);
      if (!ok) { printf("%-22s MISMATCH against batch V1 U1\n", name); continue; }
      P pi = p; pi.h = nullptr;
      const float fi = time_ms([&] { launch(v.fwd, v.V, v.smem_fwd, pi); });
      const float fs_ = time_ms([&] { launch(v.fwd, v.V, v.smem_fwd, p); });
      const float bk = time_ms([&] { launch(v.bwd, v.V, v.smem_bwd, p); });
      const double floor_inf = 2.0 * bytes / bw * 1e3, floor_fb = 6.0 * bytes / bw * 1e3;
      printf("%-22s %9.4f %9.2f %9.4f %9.4f %9.4f %9.2f\n", name, fi, fi / floor_inf, fs_, bk, fs_ + bk,
             (fs_ + bk) / floor_fb);
    }
    {  // flashsnn's kernels, V = 4, launched as csrc/family.cu would
      float *u0, *par, *uN, *gN, *g0, *gp0, *gp1;
      CK(cudaMalloc(&u0, 4)); CK(cudaMemset(u0, 0, 4));
      CK(cudaMalloc(&par, 8));
      const float hp[2] = {0.9f, 1.0f};
      CK(cudaMemcpy(par, hp, 8, cudaMemcpyHostToDevice));
      CK(cudaMalloc(&uN, M * 4)); CK(cudaMalloc(&gN, M * 4)); CK(cudaMemset(gN, 0, M * 4));
      CK(cudaMalloc(&g0, M * 4)); CK(cudaMalloc(&gp0, M * 4)); CK(cudaMalloc(&gp1, M * 4));
      fc::FwdParams f{};
      f.x = x; f.state0[0] = u0; f.param[0] = par; f.param[1] = par + 1; f.spk = spk;
      f.state_out[0] = uN; f.save[0] = h; f.T = T; f.N = M; f.P_state[0] = 1;
      f.P_param[0] = f.P_param[1] = 1; f.mem_all = 0;
      fc::BwdParams b{};
      b.save[0] = h; b.state0[0] = u0; b.param[0] = par; b.param[1] = par + 1; b.dspk = dspk;
      b.dstate[0] = gN; b.dx = dx; b.dstate0[0] = g0; b.dparam[0] = gp0; b.dparam[1] = gp1;
      b.T = T; b.N = M; b.P_state[0] = 1; b.P_param[0] = b.P_param[1] = 1; b.dspk_step = M;
      b.g = fs::Surrogate{fs::kAtan, 2.0f, 0.0f};
      for (int V : {4, 1}) {
        const fc::LaunchShape fsh = fc::launch_shape(M, false, true, prop.multiProcessorCount);
        const fc::LaunchShape bsh = fc::launch_shape(M, true, true, prop.multiProcessorCount);
        const unsigned fg = unsigned((M / V + 127) / 128), bg = fg;
        auto lf = [&](const fc::FwdParams& q) {
          if (V == 4) engine_fwd<4><<<fg, 128>>>(q); else engine_fwd<1><<<fg, 128>>>(q);
        };
        auto lb = [&] {
          if (V == 4) engine_bwd<4><<<bg, 128>>>(b); else engine_bwd<1><<<bg, 128>>>(b);
        };
        lf(f); lb();
        CK(cudaDeviceSynchronize());
        double r2 = 0;
        CK(cudaMemcpy(cs.data(), spk, bytes, cudaMemcpyDeviceToHost));
        for (float v : cs) r2 += v;
        fc::FwdParams fi = f; fi.save[0] = nullptr;
        const float a = time_ms([&] { lf(fi); }), c = time_ms([&] { lf(f); }), d = time_ms(lb);
        printf("%-22s %9.4f %9.2f %9.4f %9.4f %9.4f %9.2f   (spike rate %.3f; launch_shape picks V=%d/%d)\n",
               V == 4 ? "flashsnn engine V4" : "flashsnn engine V1", a, a / (2.0 * bytes / bw * 1e3), c, d,
               c + d, (c + d) / (6.0 * bytes / bw * 1e3), r2 / n, fsh.vec, bsh.vec);
      }
      cudaFree(u0); cudaFree(par); cudaFree(uN); cudaFree(gN); cudaFree(g0); cudaFree(gp0); cudaFree(gp1);
    }
    cudaFree(x); cudaFree(spk); cudaFree(h); cudaFree(dspk); cudaFree(dx); cudaFree(y); cudaFree(gb);
  }
  return 0;
}

// Per-step math shared by every backend: g++ (CPU), nvcc (CUDA) and the Metal
// compiler all include this header, so it uses only scalar `float` functions
// taking and returning values, no standard library and no MLX types.
//
// Numerics: callers compile with FMA contraction off (-ffp-contract=off,
// nvcc -fmad=false, `#pragma METAL fp contract(off)`), so `b * u + x` rounds
// twice on every backend, exactly as the pure-MLX reference does. A single
// contracted multiply-add flips spikes that land within 1 ulp of threshold,
// and one flipped spike changes the whole trajectory after it.
#pragma once

// FS_CONST: a compile-time constant at namespace scope or a static data
// member. Metal puts every program-scope variable (static members included)
// in the constant address space and rejects one declared outside it (MSL
// spec 4.2; tests/metal's lint enforces it), so there it says so.
#if defined(__METAL_VERSION__)
#define FS_CONST constexpr constant
#else
#define FS_CONST constexpr
#endif

#if defined(__METAL_VERSION__)
#define FS_FN inline
#define FS_EXPF(v) metal::precise::exp(v)
#define FS_FABSF(v) metal::fabs(v)
#elif defined(__CUDACC__)
#define FS_FN __host__ __device__ __forceinline__
#define FS_EXPF(v) expf(v)
#define FS_FABSF(v) fabsf(v)
#else
#define FS_FN inline __attribute__((always_inline))
#define FS_EXPF(v) ::fs::exp_cpu(v)
#define FS_FABSF(v) __builtin_fabsf(v)
#endif

namespace fs {

#if !defined(__METAL_VERSION__) && !defined(__CUDACC__)
// expf for the CPU loops, which GCC vectorizes: libm's expf is a call it
// cannot, and it made the backward with the sigmoid surrogate 3x the one with
// atan (12.9 against 4.3 ms at T=100 B=32 N=1024). Cephes' single-precision
// scheme: x = n ln2 + r with |r| <= ln2/2, a degree-6 polynomial for e^r,
// 2^n built in the exponent bits (as 2^(n-1) * 2, so that n = 128 stays
// finite). Checked against exp in double over every float in
// [-86.6, 88.72]: at most 0.99 ulp. Below -86.6 (results under 2.5e-38,
// where 2^(n-1) would be subnormal) it returns 0, above 88.72 inf; NaN stays
// NaN. The GPUs' expf differs by an ulp or two, as their tests allow.
FS_FN float exp_cpu(float x) {
  const float hi = 88.72283935546875f, lo = -86.6f;
  float xc = x > hi ? hi : (x < lo ? lo : x);
  // Round to nearest by the 1.5 * 2^23 trick (|x / ln2| < 2^22 here).
  float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  // ln2 split in two so that n * 0.693359375 is exact (9 + 8 bits).
  float r = (xc - n * 0.693359375f) - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = (p * (r * r) + r) + 1.0f;
  int ni = int(n == n ? n : 0.0f);  // NaN: any exponent, p is NaN anyway
  float y = (p * __builtin_bit_cast(float, (ni + 126) << 23)) * 2.0f;
  y = x > hi ? __builtin_inff() : y;
  return x < lo ? 0.0f : y;
}
#endif

// Reset mechanisms, in snnTorch's order ("subtract", "zero", "none").
enum Reset : int { kSubtract = 0, kZero = 1, kNone = 2 };

// When the reset happens relative to the spike:
//  kDelayed   snnTorch, reset_delay=True: the reset is computed from the
//             previous membrane (strict >), detached, and applied while
//             charging the next step.
//  kImmediate snnTorch, reset_delay=False: as kDelayed, plus the new spike is
//             applied in the same step with (spike - delayed reset), keeping
//             its surrogate gradient.
//  kSameStep  SpikingJelly / mlx-snn: charge, fire with >=, reset in the same
//             step; no delayed reset.
enum Mode : int { kDelayed = 0, kImmediate = 1, kSameStep = 2 };

// Surrogate-gradient ids. Python's flashsnn.surrogate holds the same table;
// tests/ops/test_surrogate.py checks that the two agree.
enum SurrogateId : int {
  kAtan = 0,             // a = alpha:  (a/2) / (1 + (pi/2 * a * v)^2)
  kFastSigmoid = 1,      // a = slope:  1 / (a|v| + 1)^2
  kSigmoid = 2,          // a = slope:  a * e / (1 + e)^2,  e = exp(-a|v|)
  kTriangular = 3,       // a = threshold: +a for v < 0, -a for v >= 0
  kStraightThrough = 4,  // 1
  kHeaviside = 5,        // the spike itself (0 or 1)
  kSpikeRateEscape = 6,  // a = beta, b = slope:  b * exp(-a |v - 1|)
  kSparseFastSigmoid = 7,  // a = slope, b = B:  (v > B) / (a|v| + 1)^2
  kLeakySpikeOperator = 8, // a = slope:  1 where spiking, a elsewhere
  kNumSurrogates = 9
};

// Every kernel surrogate as X(id, python_name), in id order: the one list that
// code instantiating a copy per surrogate (the CPU and CUDA backward loops) and
// the Python-facing name table (src/bindings.cpp) expand.
#define FS_FOR_EACH_SURROGATE(X)                                      \
  X(kAtan, atan) X(kFastSigmoid, fast_sigmoid) X(kSigmoid, sigmoid)  \
  X(kTriangular, triangular) X(kStraightThrough, straight_through)   \
  X(kHeaviside, heaviside) X(kSpikeRateEscape, spike_rate_escape)    \
  X(kSparseFastSigmoid, sparse_fast_sigmoid)                         \
  X(kLeakySpikeOperator, leaky_spike_operator)

struct Surrogate {
  int id;
  float a;
  float b;
};

// The largest finite float: |v| <= kFloatMax is false for +-inf and NaN.
FS_CONST float kFloatMax = 3.40282347e+38f;

// A surrogate's slope g at a v that may not be finite, by the rule both paths
// follow (docs/design.md, "Non-finite values"): NaN where v is NaN (the NaN
// reaches every gradient it flows back to, as autograd of the formulas does),
// 0 where v is +-inf (a membrane infinitely far from threshold: the limit of
// every decaying surrogate, and a threshold of inf passes no gradient).
// atan, fast_sigmoid, sigmoid and spike_rate_escape give that by themselves;
// the surrogates with constant tails or a comparison on v go through this.
FS_FN float finite_only(float v, float g) {
  return FS_FABSF(v) <= kFloatMax ? g : (v == v ? 0.0f : v);
}

// d spike / d v at v = membrane - threshold; `s` is the spike fired there.
FS_FN float surrogate_grad(Surrogate g, float v, float s) {
  switch (g.id) {
    case kAtan: {
      // The host passes a = alpha; (pi/2 * alpha) is folded here in float
      // as snnTorch does with a Python-float scalar times a float tensor.
      float c = 1.57079632679489661923f * g.a * v;
      return (g.a * 0.5f) / (1.0f + c * c);
    }
    case kFastSigmoid: {
      float d = g.a * FS_FABSF(v) + 1.0f;
      return 1.0f / (d * d);
    }
    case kSigmoid: {
      // snnTorch writes a*exp(-a v)/(exp(-a v)+1)^2, which overflows to
      // inf/inf = NaN for a*v < -88. The function is even in v, so
      // exp(-a|v|) gives the same value without the overflow.
      float e = FS_EXPF(-g.a * FS_FABSF(v));
      float d = 1.0f + e;
      return g.a * e / (d * d);
    }
    case kTriangular:
      return finite_only(v, v < 0.0f ? g.a : -g.a);
    case kStraightThrough:
      return finite_only(v, 1.0f);
    case kHeaviside:
      return finite_only(v, s);
    case kSpikeRateEscape:
      return g.b * FS_EXPF(-g.a * FS_FABSF(v - 1.0f));
    case kSparseFastSigmoid: {
      float d = g.a * FS_FABSF(v) + 1.0f;
      return finite_only(v, v > g.b ? 1.0f / (d * d) : 0.0f);
    }
    case kLeakySpikeOperator:
      return finite_only(v, s > 0.0f ? 1.0f : g.a);
    default:
      return 0.0f;
  }
}

// snnTorch clamps beta to [0, 1] in the forward pass; written with
// comparisons so that NaN stays NaN (fminf/fmaxf would turn it into 0).
FS_FN float clamp_unit(float beta) {
  return beta < 0.0f ? 0.0f : (beta > 1.0f ? 1.0f : beta);
}

// Gradient mask of that clamp: torch passes the gradient where
// 0 <= beta <= 1, both ends included, and blocks it for NaN.
FS_FN float clamp_unit_mask(float beta) {
  return (beta >= 0.0f && beta <= 1.0f) ? 1.0f : 0.0f;
}

}  // namespace fs

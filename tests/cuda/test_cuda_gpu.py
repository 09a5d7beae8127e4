"""The fused CUDA kernels on a real GPU, against the CPU kernel.

Skipped unless MLX's CUDA backend has a GPU and flashsnn was built with its
CUDA kernels (docs/cuda.md). The contract (DESIGN.md section 2): float32
spikes and membranes bit-identical to the CPU kernel; gradients within
relative RMS 1e-5 in float32 (the GPU's expf differs from the CPU's by an ulp
or two in the sigmoid-type surrogates; everything else is the same IEEE
arithmetic in the same order).
"""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest

import flashsnn as fs

ext = pytest.importorskip("flashsnn._ext", reason="flashsnn._ext is not built")

if not (mx.cuda.is_available() and fs.gpu_backend() == "cuda"):
    pytest.skip("needs MLX's CUDA backend with a GPU and flashsnn built with its CUDA "
                f"kernels (mx.cuda.is_available()={mx.cuda.is_available()}, "
                f"flashsnn.gpu_backend()={fs.gpu_backend()!r})", allow_module_level=True)

RESETS = {"subtract": 0, "zero": 1, "none": 2}
MODES = {"delayed": 0, "immediate": 1, "same_step": 2}
DTYPES = {"float32": mx.float32, "float16": mx.float16, "bfloat16": mx.bfloat16}
# Relative RMS allowed on gradients: the contract for float32; for 16-bit
# outputs, a float32 ulp of difference can round to a 16-bit ulp.
GRAD_RTOL = {"float32": 1e-5, "float16": 1e-3, "bfloat16": 8e-3}
# Moderate slopes: this compares two devices, it does not stress the math
# (16-bit gradients of steep surrogates overflow over 63 steps on both).
SURROGATES = {
    "atan": (0, 2.0, 0.0), "fast_sigmoid": (1, 5.0, 0.0), "sigmoid": (2, 5.0, 0.0),
    "triangular": (3, 1.0, 0.0), "straight_through": (4, 0.0, 0.0), "heaviside": (5, 0.0, 0.0),
    "spike_rate_escape": (6, 1.0, 2.0), "sparse_fast_sigmoid": (7, 5.0, 1.0),
    "leaky_spike_operator": (8, 0.1, 0.0),
}
# (T, S): awkward sizes, then layers big enough for 4-neuron threads on an
# H100 (more than 384 x 132 neurons forward, 512 x 132 backward).
SHAPES = [(1, (31,)), (63, (33,)), (63, (5, 100)), (17, (1,)), (25, (80, 1024))]


def leaky(args, reset, mode, mem_all, sur, detach, stream):
    idx, a, b = sur
    return ext.leaky(*args, reset=reset, mode=mode, detach=detach, surrogate_id=idx,
                     surrogate_a=a, surrogate_b=b, mem_all=mem_all, stream=stream)


def inputs(T, S, dtype, seed, per_neuron=True):
    rng = np.random.default_rng(seed)
    x = mx.array(rng.normal(0.6, 0.8, (T, *S)).astype(np.float32)).astype(dtype)
    pshape = S if per_neuron else S[-1:]
    mem = mx.array(rng.normal(0.0, 0.5, S).astype(np.float32))
    beta = mx.array(rng.uniform(-0.2, 1.2, pshape).astype(np.float32))
    th = mx.array(rng.uniform(0.5, 1.5, pshape).astype(np.float32))
    return [x, mem, beta, th]


def bits_equal(a, b):
    a, b = np.array(a.astype(mx.float32)), np.array(b.astype(mx.float32))
    nan = np.isnan(a)
    return np.array_equal(nan, np.isnan(b)) and np.array_equal(a[~nan], b[~nan])


def rel_rms(a, b, max_nonfinite_mismatch=0.0):
    """Relative RMS difference over the elements finite in both. 16-bit
    outputs may overflow on one side only where a value rounds at the edge
    of the dtype's range: `max_nonfinite_mismatch` is the fraction allowed."""
    a, b = np.array(a.astype(mx.float32), np.float64), np.array(b.astype(mx.float32), np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    mismatch = np.count_nonzero(np.isfinite(a) != np.isfinite(b))
    assert mismatch <= max_nonfinite_mismatch * a.size, f"{mismatch} finite on one side only"
    if not ok.any():
        return 0.0
    d = np.sqrt(np.mean((a[ok] - b[ok]) ** 2))
    return d / max(np.sqrt(np.mean(b[ok] ** 2)), 1e-30)


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("reset", list(RESETS))
def test_forward_bit_identical_to_cpu(reset, mode, dtype):
    r, m, dt = RESETS[reset], MODES[mode], DTYPES[dtype]
    for k, (T, S) in enumerate(SHAPES):
        for mem_all in (False, True):
            args = inputs(T, S, dt, seed=k, per_neuron=k % 2 == 0)
            sur = SURROGATES["atan"]
            ref = leaky(args, r, m, mem_all, sur, False, mx.cpu)
            got = leaky(args, r, m, mem_all, sur, False, mx.gpu)
            mx.eval(ref, got)
            for what, g, c in zip(("spk", "mem"), got, ref):
                assert bits_equal(g, c), f"{what} differs: T={T} S={S} mem_all={mem_all}"


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("reset", list(RESETS))
def test_gradients_match_cpu(reset, mode, dtype):
    r, m, dt = RESETS[reset], MODES[mode], DTYPES[dtype]
    for k, (T, S) in enumerate(SHAPES):
        mem_all = k % 2 == 1
        args = inputs(T, S, dt, seed=10 + k, per_neuron=k % 2 == 1)
        rng = np.random.default_rng(k)
        cot = [mx.array(rng.normal(size=args[0].shape).astype(np.float32)).astype(dt),
               mx.array(rng.normal(size=args[0].shape if mem_all else S)
                        .astype(np.float32)).astype(dt)]
        for name, sur in SURROGATES.items():
            detach = (k + sur[0]) % 2 == 1
            ref, got = (mx.vjp(lambda *a: leaky(a, r, m, mem_all, sur, detach, dev), args,
                               cot)[1] for dev in (mx.cpu, mx.gpu))
            mx.eval(ref, got)
            for what, g, c in zip(("dx", "dmem", "dbeta", "dthreshold"), got, ref):
                assert g.shape == c.shape
                err = rel_rms(g, c, 0.0 if dtype == "float32" else 1e-3)
                assert err <= GRAD_RTOL[dtype], \
                    f"{what}: relRMS {err:.2e}: T={T} S={S} {name} detach={detach}"


def test_misaligned_input_takes_the_scalar_path():
    """A view whose data starts one element off a 16-byte boundary."""
    T, N = 40, 4096
    flat = mx.random.normal((T * N + 1,), key=mx.random.key(1))
    x = flat[1:].reshape(T, N)
    args = [x, mx.array(0.0), mx.array(0.9), mx.array(1.0)]
    ref = leaky(args, 0, 0, True, SURROGATES["atan"], False, mx.cpu)
    got = leaky(args, 0, 0, True, SURROGATES["atan"], False, mx.gpu)
    assert bits_equal(got[0], ref[0]) and bits_equal(got[1], ref[1])


def test_public_op_and_grad_on_gpu_are_deterministic():
    """fs.ops.leaky on the GPU (the default device there), under mx.grad,
    twice: no atomics, so the same bits; and against the reference path."""
    x = mx.random.normal((100, 64, 256), key=mx.random.key(2))
    beta = mx.full((256,), 0.9)
    th = mx.ones((256,))

    w = (mx.arange(x.size) % 7).reshape(x.shape).astype(mx.float32)

    def grad(backend):
        def loss(x, beta, th):
            spk, mem = fs.ops.leaky(x, beta=beta, threshold=th, backend=backend)
            return mx.sum(spk * w) + mx.sum(mem)
        return mx.grad(loss, argnums=(0, 1, 2))

    with mx.stream(mx.gpu):
        a = grad("fused")(x, beta, th)
        b = grad("fused")(x, beta, th)
        ref = grad("reference")(x, beta, th)
        mx.eval(a, b, ref)
    for ga, gb, gr in zip(a, b, ref):
        assert bits_equal(ga, gb)
        assert rel_rms(ga, gr) <= 1e-5

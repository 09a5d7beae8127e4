"""The CUDA kernels' per-thread code, run on the CPU, against the CPU kernel.

tests/cuda/host_leaky.cu compiles csrc/leaky.cuh (what every CUDA thread
runs) for the host with nvcc and runs it over the whole launch grid; these
tests feed it the same inputs as the CPU kernel (flashsnn._ext on mx.cpu)
and compare. Both run the same per-step functions in the same order on the
same CPU, so every output must match bit for bit: spikes, membranes, dx and
the reduced parameter gradients. The one exception is exp: the CPU kernel
has its own, which GCC vectorizes (src/step/common.h, exp_cpu), while CUDA
code calls expf, here libm's; gradients through a surrogate that uses it
are held to relative RMS 1e-5 instead (the GPU contract; a reduced
threshold gradient sums 31500 terms that cancel to 11: 5e-6 apart). On the
GPU the contract is looser for all gradients (expf differs by an ulp or
two); tests/cuda/test_cuda_gpu.py checks that there.
"""

from __future__ import annotations

import ctypes
from ctypes import c_float, c_int, c_int64, c_size_t, c_uint, c_void_p

import mlx.core as mx
import numpy as np
import pytest

import cudatest
from helpers import rel_rms

ext = pytest.importorskip("flashsnn._ext", reason="flashsnn._ext is not built")

RESETS = {"subtract": 0, "zero": 1, "none": 2}
MODES = {"delayed": 0, "immediate": 1, "same_step": 2}
DTYPES = {"float32": (0, mx.float32), "float16": (1, mx.float16), "bfloat16": (2, mx.bfloat16)}
# (id, a, b) for every surrogate in fs::SurrogateId, with snnTorch-like slopes.
SURROGATES = {
    "atan": (0, 2.0, 0.0),
    "fast_sigmoid": (1, 25.0, 0.0),
    "sigmoid": (2, 25.0, 0.0),
    "triangular": (3, 1.0, 0.0),
    "straight_through": (4, 0.0, 0.0),
    "heaviside": (5, 0.0, 0.0),
    "spike_rate_escape": (6, 1.0, 25.0),
    "sparse_fast_sigmoid": (7, 25.0, 1.0),
    "leaky_spike_operator": (8, 0.1, 0.0),
}
# N -> neuron shape S; the per-feature parameters take S's last axis.
SHAPES = {1: (1, 1), 31: (1, 31), 33: (3, 11), 500: (5, 100), 512: (4, 128)}


class FwdParams(ctypes.Structure):
    _fields_ = [(n, c_void_p) for n in ("x", "mem", "beta", "th", "spk", "mem_out", "h", "u")] + \
        [(n, c_int64) for n in ("T", "N", "P_mem", "P_beta", "P_th")] + [("mem_all", c_int)]


class Surrogate(ctypes.Structure):
    _fields_ = [("id", c_int), ("a", c_float), ("b", c_float)]


class BwdParams(ctypes.Structure):
    _fields_ = [(n, c_void_p) for n in ("h", "u", "mem", "beta", "th", "dspk", "dmem", "dx",
                                        "dmem0", "dbeta", "dth")] + \
        [(n, c_int64) for n in ("T", "N", "P_mem", "P_beta", "P_th", "dspk_step", "dmem_step")] + \
        [("mem_all", c_int), ("detach", c_int), ("g", Surrogate)]


@pytest.fixture(scope="module")
def lib(nvcc, tmp_path_factory):
    out = tmp_path_factory.mktemp("host_leaky") / "libhost_leaky.so"
    cudatest.run([nvcc, "-shared", "-Xcompiler", "-fPIC", "-std=c++17", "-O2",
                  f"-arch={cudatest.ARCH}", *cudatest.NUMERICS, *cudatest.STRICT,
                  str(cudatest.ROOT / "tests/cuda/host_leaky.cu"), "-o", str(out)])
    lib = ctypes.CDLL(str(out))
    for f in ("fs_leaky_forward", "fs_leaky_backward"):
        getattr(lib, f).restype = c_int
        getattr(lib, f).argtypes = [c_void_p, c_int, c_int, c_int, c_int, c_int]
    lib.fs_fwd_vec_ok.argtypes = [c_void_p, c_int]
    lib.fs_leaky_shape.argtypes = [c_int64, c_int, c_int, c_int, ctypes.POINTER(c_int),
                                   ctypes.POINTER(c_uint), ctypes.POINTER(c_uint)]
    lib.fs_leaky_shape.restype = None
    for f in ("fs_sizeof_fwd", "fs_sizeof_bwd", "fs_offsetof_fwd_T", "fs_offsetof_bwd_g"):
        getattr(lib, f).restype = c_size_t
    return lib


def aligned_empty(shape, dtype, offset_elems=0):
    """An uninitialized array whose data starts 64-byte aligned (+ offset)."""
    dtype = np.dtype(dtype)
    n = int(np.prod(shape))
    raw = np.empty((n + offset_elems) * dtype.itemsize + 64, np.uint8)
    start = (-raw.ctypes.data) % 64 + offset_elems * dtype.itemsize
    return raw[start:start + n * dtype.itemsize].view(dtype).reshape(shape)


def aligned_copy(a, offset_elems=0):
    out = aligned_empty(a.shape, a.dtype, offset_elems)
    out[...] = a
    return out


def to_np(a: mx.array) -> np.ndarray:
    """Kernel-format bytes: bfloat16 travels as its uint16 bit pattern."""
    if a.dtype == mx.bfloat16:
        a = a.view(mx.uint16)
    return aligned_copy(np.array(a))


def from_np(a: np.ndarray, dtype) -> mx.array:
    m = mx.array(a)
    return m.view(mx.bfloat16) if dtype == mx.bfloat16 else m


def ptr(a):
    return None if a is None else a.ctypes.data


def inputs(T, N, dtype, params, seed):
    """x [T, *S], mem, beta, threshold as the op passes them (suffix arrays)."""
    S = SHAPES[N]
    rng = np.random.default_rng(seed)
    th_full = rng.uniform(0.5, 1.5, S).astype(np.float32)
    # beta partly outside [0, 1]: the clamp and its gradient mask are exercised.
    beta_full = rng.uniform(-0.2, 1.2, S).astype(np.float32)
    mem_full = rng.normal(0.0, 0.5, S).astype(np.float32)
    shape = {"neuron": {"mem": S, "beta": S, "th": S},
             "scalar": {"mem": (), "beta": (), "th": ()},
             "mixed": {"mem": S, "beta": S[-1:], "th": ()}}[params]

    def take(full, s):
        return full.reshape(-1)[: int(np.prod(s))].reshape(s) if s != S else full

    mem = take(mem_full, shape["mem"])
    beta = take(beta_full, shape["beta"])
    th = take(th_full, shape["th"])
    x = rng.normal(0.6, 0.8, (T, *S)).astype(np.float32)
    # An exact tie with the threshold on the first step from a zero membrane:
    # > and >= (snnTorch vs same-step) must both be reproduced.
    if params == "scalar":
        mem = np.zeros((), np.float32)
        x[0].reshape(-1)[0] = th
    return (mx.array(x).astype(dtype), mx.array(mem), mx.array(beta), mx.array(th))


def cpu_leaky(args, reset, mode, mem_all, sur, detach):
    idx, a, b = sur
    return ext.leaky(*args, reset=reset, mode=mode, detach=detach, surrogate_id=idx,
                     surrogate_a=a, surrogate_b=b, mem_all=mem_all, save=1, stream=mx.cpu)


def host_forward(lib, args, dtype_id, reset, mode, mem_all, vec, sm_count=1):
    x, mem, beta, th = args
    T, N = x.shape[0], x.size // x.shape[0]
    xs = to_np(x.reshape(T, N))
    f32 = [aligned_copy(np.array(a).reshape(-1)) for a in (mem, beta, th)]
    spk = aligned_empty((T, N), xs.dtype)
    mem_out = aligned_empty((T, N) if mem_all else (N,), xs.dtype)
    h = aligned_empty((T, N), np.float32)
    u = aligned_empty((T, N), np.float32) if mode == MODES["immediate"] else None
    p = FwdParams(ptr(xs), ptr(f32[0]), ptr(f32[1]), ptr(f32[2]), ptr(spk), ptr(mem_out),
                  ptr(h), ptr(u), T, N, f32[0].size, f32[1].size, f32[2].size, int(mem_all))
    used = lib.fs_leaky_forward(ctypes.byref(p), dtype_id, reset, mode, sm_count, vec)
    assert used in (1, 4) and (vec == 0 or used == vec)
    return used, spk, mem_out, h, u


def host_backward(lib, saved, args, dspk, dmem, dtype_id, reset, mode, mem_all, sur, detach,
                  vec, sm_count=1, dspk_row=False, dmem_row=False):
    """dspk_row / dmem_row: that cotangent is one row [N] read at every step
    (step stride 0), as the glue passes a .sum() loss's cotangent."""
    h, u = saved
    _, mem, beta, th = args
    T, N = h.shape
    f32 = [aligned_copy(np.array(a).reshape(-1)) for a in (mem, beta, th)]
    ds = to_np(dspk.reshape(N if dspk_row else (T, N)))
    dm = to_np(dmem.reshape(-1))
    dx = aligned_empty((T, N), ds.dtype)
    part = [aligned_empty((N,), np.float32) for _ in range(3)]
    p = BwdParams(ptr(h), ptr(u), ptr(f32[0]), ptr(f32[1]), ptr(f32[2]), ptr(ds), ptr(dm),
                  ptr(dx), ptr(part[0]), ptr(part[1]), ptr(part[2]), T, N, f32[0].size,
                  f32[1].size, f32[2].size, 0 if dspk_row else N, 0 if dmem_row else N,
                  int(mem_all), int(detach), Surrogate(*sur))
    used = lib.fs_leaky_backward(ctypes.byref(p), dtype_id, reset, mode, sm_count, vec)
    assert used in (1, 4) and (vec == 0 or used == vec)
    return dx, part


def reduce_partial(part: np.ndarray, param: mx.array) -> mx.array:
    """As the op does (src/ops/leaky.cpp, reduce_partial): [N/P, P] summed
    over axis 0 by MLX on the CPU."""
    P = max(param.size, 1)
    g = mx.array(part).reshape(-1, P)
    if g.shape[0] != 1:
        g = mx.sum(g, axis=0, keepdims=True, stream=mx.cpu)
    return g.reshape(param.shape)


# Surrogates whose slope goes through exp (see the module docstring).
EXP_SURROGATES = {"sigmoid", "spike_rate_escape"}


def close(a: mx.array, b: mx.array, dtype: str) -> bool:
    """Inf and NaN in the same places, and relative RMS over the rest within
    1e-5 (float32; an exp an ulp apart can move a 16-bit rounding by one
    step: 1e-3)."""
    a, b = np.array(a.astype(mx.float32)), np.array(b.astype(mx.float32))
    fin = np.isfinite(a)
    if a.shape != b.shape or not np.array_equal(fin, np.isfinite(b)) or \
            not np.array_equal(a[~fin], b[~fin], equal_nan=True):
        return False
    return rel_rms(a[fin], b[fin]) <= (1e-5 if dtype == "float32" else 1e-3)


def same_bits(a: mx.array, b: mx.array) -> bool:
    """Bitwise equal, -0.0 apart from 0.0; NaN equals NaN whatever its sign
    (x86 makes -NaN, GPUs +NaN; long 16-bit gradients can overflow)."""
    a, b = np.array(a.astype(mx.float32)), np.array(b.astype(mx.float32))
    if a.shape != b.shape or not np.array_equal(np.isnan(a), np.isnan(b)):
        return False
    ok = ~np.isnan(a)
    return np.array_equal(a[ok].view(np.uint32), b[ok].view(np.uint32))


def diff(a, b) -> str:
    a, b = np.array(a.astype(mx.float32)), np.array(b.astype(mx.float32))
    d = np.abs(a - b)
    rel = np.sqrt(np.mean(d ** 2)) / max(np.sqrt(np.mean(b ** 2)), 1e-30)
    return f"max|d|={d.max() if d.size else 0:.3e} relRMS={rel:.3e} ({np.count_nonzero(d)} differ)"


def vec_widths(N):
    return (1, 4) if N % 4 == 0 else (1,)


# ---------------------------------------------------------------------------


def test_param_struct_layout_matches_ctypes(lib):
    assert lib.fs_sizeof_fwd() == ctypes.sizeof(FwdParams)
    assert lib.fs_sizeof_bwd() == ctypes.sizeof(BwdParams)
    assert lib.fs_offsetof_fwd_T() == FwdParams.T.offset
    assert lib.fs_offsetof_bwd_g() == BwdParams.g.offset


@pytest.mark.parametrize("N", [1, 31, 33, 500, 4096, 50688, 50692, 67584, 67588, 10**7])
@pytest.mark.parametrize("backward", [False, True])
@pytest.mark.parametrize("sm_count", [1, 132])
def test_launch_shape_covers_every_neuron(lib, N, backward, sm_count):
    for vec_ok in (0, 1):
        vec, block, grid = c_int(), c_uint(), c_uint()
        lib.fs_leaky_shape(N, int(backward), vec_ok, sm_count, vec, block, grid)
        v, blk, g = vec.value, block.value, grid.value
        assert v in (1, 4) and blk in (32, 64, 128)
        assert g * blk * v >= N > (g - 1) * blk * v, (v, blk, g)
        if v == 4:
            assert vec_ok and N % 4 == 0
        # Small layers: blocks shrink so that every SM gets work.
        if blk > 32:
            assert g >= 2 * sm_count


def test_launch_shape_choices_on_h100(lib):
    """The shapes the benchmark sizes get on 132 SMs (docs/cuda.md)."""
    def shape(N, backward):
        vec, block, grid = c_int(), c_uint(), c_uint()
        lib.fs_leaky_shape(N, int(backward), 1, 132, vec, block, grid)
        return vec.value, block.value, grid.value

    assert shape(64 * 4096, False) == (4, 128, 512)   # T=100 B=64 N=4096
    assert shape(64 * 4096, True) == (4, 128, 512)
    assert shape(32 * 1024, False) == (1, 64, 512)    # T=500 B=32 N=1024
    assert shape(128 * 256, True) == (1, 64, 512)     # T=25 B=128 N=256
    assert shape(32 * 4096, False) == (4, 64, 512)
    assert shape(8 * 256, False) == (1, 32, 64)


def test_misaligned_rows_take_the_scalar_path(lib):
    T, N = 3, 8
    x = aligned_empty((T, N), np.float32)
    x_off = aligned_empty((T, N), np.float32, offset_elems=1)
    bufs = [aligned_empty((T, N), np.float32) for _ in range(3)]
    for xs, ok in ((x, 1), (x_off, 0)):
        p = FwdParams(ptr(xs), None, None, None, ptr(bufs[0]), ptr(bufs[1]), ptr(bufs[2]),
                      None, T, N, 1, 1, 1, 1)
        assert lib.fs_fwd_vec_ok(ctypes.byref(p), 0) == ok
    p = FwdParams(ptr(x_off), None, None, None, ptr(bufs[0]), ptr(bufs[1]), None, None,
                  T, N, 1, 1, 1, 1)
    assert lib.fs_leaky_forward(ctypes.byref(p), 0, 0, 0, 1, 4) == -1


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("reset", list(RESETS))
def test_forward_matches_cpu_kernel(lib, reset, mode, dtype):
    dtype_id, mdt = DTYPES[dtype]
    r, m = RESETS[reset], MODES[mode]
    for T in (1, 63):
        for N in (1, 31, 33, 500):
            for params in ("neuron", "scalar", "mixed"):
                args = inputs(T, N, mdt, params, seed=T * 1000 + N)
                for mem_all in (False, True):
                    spk_ref, mem_ref = cpu_leaky(args, r, m, mem_all, SURROGATES["atan"], False)
                    for vec in vec_widths(N):
                        _, spk, mem_out, h, _ = host_forward(lib, args, dtype_id, r, m, mem_all, vec)
                        spk = from_np(spk, mdt).reshape(spk_ref.shape)
                        mem = from_np(mem_out, mdt).reshape(mem_ref.shape)
                        case = f"T={T} N={N} params={params} mem_all={mem_all} vec={vec}"
                        assert same_bits(spk, spk_ref), f"spikes differ: {case} {diff(spk, spk_ref)}"
                        assert same_bits(mem, mem_ref), f"membrane differs: {case} {diff(mem, mem_ref)}"
                        assert float(mx.sum(spk_ref.astype(mx.float32))) > 0 or T * N < 40, case


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("reset", list(RESETS))
def test_backward_matches_cpu_kernel(lib, reset, mode, dtype):
    dtype_id, mdt = DTYPES[dtype]
    r, m = RESETS[reset], MODES[mode]
    cases = [(1, 31, "neuron", False), (63, 500, "mixed", False), (63, 33, "scalar", True),
             (63, 512, "neuron", True), (17, 1, "neuron", True)]
    for k, (T, N, params, mem_all) in enumerate(cases):
        args = inputs(T, N, mdt, params, seed=7 + k)
        rng = np.random.default_rng(100 + k)
        dspk = mx.array(rng.normal(size=args[0].shape).astype(np.float32)).astype(mdt)
        mshape = args[0].shape if mem_all else args[0].shape[1:]
        dmem = mx.array(rng.normal(size=mshape).astype(np.float32)).astype(mdt)
        for name, sur in SURROGATES.items():
            detach = (k + sur[0]) % 2 == 1  # both settings across the table
            _, grads = mx.vjp(lambda *a: cpu_leaky(a, r, m, mem_all, sur, detach),
                              list(args), [dspk, dmem])
            for vec in vec_widths(N):
                _, _, _, h, u = host_forward(lib, args, dtype_id, r, m, mem_all, vec)
                dx, part = host_backward(lib, (h, u), args, dspk, dmem, dtype_id, r, m,
                                         mem_all, sur, detach, vec)
                got = [from_np(dx, mdt).reshape(args[0].shape)] + \
                      [reduce_partial(pt, a) for pt, a in zip(part, args[1:])]
                case = f"T={T} N={N} params={params} mem_all={mem_all} {name} " \
                       f"detach={detach} vec={vec}"
                for what, g, ref in zip(("dx", "dmem", "dbeta", "dthreshold"), got, grads):
                    assert g.shape == ref.shape, f"{what} shape {g.shape} != {ref.shape}: {case}"
                    if name in EXP_SURROGATES:
                        assert close(g, ref, dtype), f"{what} differs: {case} {diff(g, ref)}"
                    else:
                        assert same_bits(g, ref), f"{what} differs: {case} {diff(g, ref)}"


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_backward_row_cotangents_match_dense(lib, dtype):
    """Cotangents that are one row read at every step (step stride 0) give
    bitwise the gradients of the same values laid out over all T steps."""
    dtype_id, mdt = DTYPES[dtype]
    sur = SURROGATES["atan"]
    for k, (T, N, mem_all, mode) in enumerate([(63, 512, False, 0), (40, 33, True, 1),
                                               (17, 500, True, 2)]):
        args = inputs(T, N, mdt, "mixed", seed=50 + k)
        rng = np.random.default_rng(200 + k)
        row_s = mx.array(rng.normal(size=(N,)).astype(np.float32)).astype(mdt)
        row_m = mx.array(rng.normal(size=(N,)).astype(np.float32)).astype(mdt)
        S = args[0].shape[1:]
        full = lambda r: mx.array(np.broadcast_to(np.array(r.astype(mx.float32)), (T, N)).copy()
                                  ).astype(mdt).reshape(args[0].shape)
        dmem = full(row_m) if mem_all else row_m.reshape(S)
        _, grads = mx.vjp(lambda *a: cpu_leaky(a, 0, mode, mem_all, sur, False), list(args),
                          [full(row_s), dmem])
        for vec in vec_widths(N):
            _, _, _, h, u = host_forward(lib, args, dtype_id, 0, mode, mem_all, vec)
            dx, part = host_backward(lib, (h, u), args, row_s, row_m if mem_all else dmem,
                                     dtype_id, 0, mode, mem_all, sur, False, vec,
                                     dspk_row=True, dmem_row=mem_all)
            got = [from_np(dx, mdt).reshape(args[0].shape)] + \
                  [reduce_partial(pt, a) for pt, a in zip(part, args[1:])]
            for what, g, ref in zip(("dx", "dmem", "dbeta", "dthreshold"), got, grads):
                case = f"T={T} N={N} mem_all={mem_all} mode={mode} vec={vec}"
                assert same_bits(g, ref), f"{what} differs: {case} {diff(g, ref)}"


def test_auto_shape_matches(lib):
    """The launch shape the glue picks (vec 0): 512 neurons are one wave of
    V = 1 threads on 132 SMs, and take V = 4 on a one-SM device."""
    args = inputs(40, 512, mx.float32, "neuron", seed=3)
    spk_ref, mem_ref = cpu_leaky(args, 0, 0, False, SURROGATES["atan"], False)
    for sm_count, want in ((132, 1), (1, 4)):
        used, spk, mem_out, _, _ = host_forward(lib, args, 0, 0, 0, False, 0, sm_count)
        assert used == want
        assert same_bits(from_np(spk, mx.float32).reshape(spk_ref.shape), spk_ref)
        assert same_bits(from_np(mem_out, mx.float32).reshape(mem_ref.shape), mem_ref)

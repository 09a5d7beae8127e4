"""The selective scan's CUDA code run on the CPU (tests/cuda/host_scan.cu):
the kernels' per-thread forward, the per-block backward with its barriers
and shared-memory sums (each GPU thread an OS thread), and the final sums,
over the grids csrc/scan.cu launches. Outputs, last state and every
gradient against the pure-MLX reference (and the fused CPU kernel), in
every option, odd shapes, chunks shorter than L, both builds (one state per
lane up to N = 32, two up to 64), 1 to 32 lanes per channel, the path
without bounds checks and the checked one, and the three dtypes. Needs
nvcc, not a GPU."""

from __future__ import annotations

import ctypes
from ctypes import POINTER, c_float, c_int, c_int64, c_void_p

import mlx.core as mx
import numpy as np
import pytest

import cudatest

ext = pytest.importorskip("flashsnn._ext", reason="flashsnn._ext is not built")
from scan_cases import cotangents, make, vjp  # noqa: E402

DTYPE_ID = {mx.float32: 0, mx.float16: 1, mx.bfloat16: 2}


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    nvcc = cudatest.require_nvcc()
    out = tmp_path_factory.mktemp("scan")
    so = out / "libhost_scan.so"
    cudatest.run([nvcc, "-shared", "-Xcompiler", "-fPIC", "-Xcompiler", "-pthread",
                  "-std=c++17", "-O2", f"-arch={cudatest.ARCH}", *cudatest.NUMERICS,
                  *cudatest.STRICT, str(cudatest.ROOT / "tests/cuda/host_scan.cu"), "-o", str(so)])
    lib = ctypes.CDLL(str(so))
    lib.fs_scan_host.restype = c_int
    lib.fs_scan_host.argtypes = [c_int, c_int, POINTER(c_void_p), POINTER(c_int64),
                                 POINTER(c_int), POINTER(POINTER(c_float))]
    return lib


@pytest.fixture(autouse=True)
def on_cpu():
    old = mx.default_device()
    mx.set_default_device(mx.cpu)
    yield
    mx.set_default_device(old)


def to_np(a):
    """An MLX array as numpy storage the kernel reads (bfloat16 as its bits)."""
    if a.dtype == mx.bfloat16:
        return np.ascontiguousarray(np.array(a.view(mx.uint16)))
    return np.ascontiguousarray(np.array(a))


def from_np(a, dtype):
    return mx.array(a).view(mx.bfloat16) if dtype == mx.bfloat16 else mx.array(a)


def host(lib, inp, softplus, chunk, cot):
    """Forward then backward through the host library: (out, last), grads."""
    u = inp["u"]
    b, L, D = u.shape
    N = inp["A"].shape[1]
    store = np.uint16 if u.dtype == mx.bfloat16 else np.dtype(to_np(u[:0]).dtype)
    nchk = (L + chunk - 1) // chunk
    arr = {k: (to_np(v) if v is not None else None) for k, v in inp.items()}
    out = np.full((b, L, D), 0xFFFF if store == np.uint16 else np.nan, store)
    last = np.full((b, D, N), np.nan, np.float32)
    chk = np.full((b, nchk, D, N), np.nan, np.float32)
    dout, dlast = to_np(cot[0]), to_np(cot[1])
    du, ddelta, dz = (np.full((b, L, D), 0xFFFF if store == np.uint16 else np.nan, store)
                      for _ in range(3))
    dh0 = np.full((b, D, N), np.nan, np.float32)
    p = lambda a: None if a is None else a.ctypes.data  # noqa: E731
    ptrs = [p(arr["u"]), p(arr["delta"]), p(arr["A"]), p(arr["B"]), p(arr["C"]), p(arr["D"]),
            p(arr["z"]), p(arr["delta_bias"]), p(arr["initial_state"]), p(chk), p(dout),
            p(dlast), p(out), p(last), p(chk), p(du), p(ddelta), p(dz), p(dh0)]
    dims = (c_int64 * 5)(b, L, D, N, chunk)
    flags = (c_int * 7)(inp["D"] is not None, inp["z"] is not None,
                        inp["delta_bias"] is not None, inp["initial_state"] is not None,
                        softplus, inp["B"].ndim == 3, inp["C"].ndim == 3)
    grads = {n: np.full(inp[n].shape, np.nan, np.float32) for n in ("A", "B", "C")}
    for n in ("D", "delta_bias"):
        if inp[n] is not None:
            grads[n] = np.full(inp[n].shape, np.nan, np.float32)
    gp = (POINTER(c_float) * 5)(*[ctypes.cast(grads[n].ctypes.data, POINTER(c_float))
                                  if n in grads else None
                                  for n in ("A", "B", "C", "D", "delta_bias")])
    cptrs = (c_void_p * 19)(*ptrs)
    dt = DTYPE_ID[u.dtype]
    assert lib.fs_scan_host(dt, 0, cptrs, dims, flags, gp) == 0
    assert lib.fs_scan_host(dt, 1, cptrs, dims, flags, gp) == 0
    g = {"u": from_np(du, u.dtype), "delta": from_np(ddelta, u.dtype),
         **{n: mx.array(v) for n, v in grads.items()}}
    if inp["z"] is not None:
        g["z"] = from_np(dz, u.dtype)
    if inp["initial_state"] is not None:
        g["initial_state"] = mx.array(dh0)
    return (from_np(out, u.dtype), mx.array(last)), g


def rel(a, b) -> float:
    a, b = (np.array(x.astype(mx.float32), np.float64) for x in (a, b))
    return float(np.sqrt(np.mean((a - b) ** 2)) / (np.sqrt(np.mean(b ** 2)) + 1e-30))


def check(lib, inp, softplus=True, chunk=64, tol=1e-5):
    cot = cotangents(inp)
    (yh, hh), gh = host(lib, inp, softplus, chunk, cot)
    for backend in ("reference", "fused"):
        (y, h), g = vjp(inp, backend, cot, softplus, chunk)
        assert rel(yh, y) <= tol and rel(hh, h) <= tol, (backend, rel(yh, y), rel(hh, h))
        assert set(gh) == set(g), (set(gh) ^ set(g))
        for n in g:
            gn = g[n].astype(mx.float32)
            assert np.all(np.isfinite(np.array(gh[n].astype(mx.float32)))), n
            assert rel(gh[n], gn) <= tol, (backend, n, rel(gh[n], gn))


@pytest.mark.parametrize("with_D,with_z,with_bias,with_h0,softplus", [
    (True, True, True, True, True), (False, False, False, False, False),
    (True, False, True, False, True), (False, True, False, True, False)])
def test_options(lib, with_D, with_z, with_bias, with_h0, softplus):
    """Every optional input present or absent; D = 37 leaves 27 idle threads
    in the second block, which must still meet every barrier."""
    check(lib, make(2, 23, 37, 5, with_D=with_D, with_z=with_z, with_bias=with_bias,
                    with_h0=with_h0, softplus=softplus), softplus, chunk=8)


@pytest.mark.parametrize("B_varies,C_varies", [(True, False), (False, True), (False, False)])
def test_time_invariant_B_and_C(lib, B_varies, C_varies):
    check(lib, make(3, 19, 33, 4, B_varies=B_varies, C_varies=C_varies), chunk=5)


@pytest.mark.parametrize("b,L,D,N,chunk", [(1, 1, 1, 1, 64), (2, 11, 5, 3, 4), (1, 40, 64, 16, 7),
                                           (2, 9, 3, 17, 64), (1, 13, 40, 64, 6),
                                           (1, 7, 70, 33, 3), (2, 70, 2, 2, 64)])
def test_shapes_and_both_state_builds(lib, b, L, D, N, chunk):
    """L = 1, chunks shorter than L and not dividing it; 1, 2, 4, 16 and 32
    lanes per channel (N = 1, 2, 3, 16, 17); two states per lane (N = 33, 64,
    lanes past N idle); rounds of 256 / N positions across chunk ends."""
    check(lib, make(b, L, D, N), chunk=chunk)


@pytest.mark.parametrize("b,L,D,N,chunk,kw", [
    (2, 100, 8, 16, 64, {}), (1, 70, 4, 32, 64, {}), (1, 70, 4, 64, 64, {}),
    (2, 45, 9, 16, 32, {}), (1, 40, 16, 8, 24, {}), (1, 33, 40, 4, 33, {}),
    (1, 30, 64, 2, 16, {}), (1, 20, 128, 1, 20, {}), (2, 1, 8, 16, 64, {}),
    (2, 40, 8, 16, 32, {"C_varies": False})])
def test_spans_without_checks(lib, b, L, D, N, chunk, kw):
    """The path without per-position checks (scan.cuh's kDense: N = P SPL,
    B and C per step, every lane of the block with a channel, whole spans
    inside a chunk or round) beside the checked one: 1 to 32 lanes and 2
    states per lane (spans of several groups, several owned positions per
    lane, the dD sums' redistribution), chunks and L ending mid-span, D = 9
    (blocks with idle lanes next to full ones), L = 1, and a time-invariant
    C at N = 16 (all checked)."""
    check(lib, make(b, L, D, N, **kw), chunk=chunk)


@pytest.mark.parametrize("dtype,rtol,atol", [(mx.float16, 3e-3, 5e-3), (mx.bfloat16, 3e-2, 5e-2)])
@pytest.mark.parametrize("shape,chunk", [((2, 17, 35, 4), 6), ((2, 50, 8, 16), 32)])
def test_16_bit(lib, dtype, rtol, atol, shape, chunk):
    """Against the fused CPU kernel in the same dtype (mamba_ssm's 16-bit
    tolerances; both keep float32 states); the second shape runs spans
    without checks."""
    inp = make(*shape, dtype=dtype)
    cot = cotangents(inp)
    (yh, hh), gh = host(lib, inp, True, chunk, cot)
    (y, h), g = vjp(inp, "fused", cot, True, chunk)
    for a, ref in [(yh, y), (hh, h), *((gh[n], g[n]) for n in g)]:
        np.testing.assert_allclose(np.array(a.astype(mx.float32)),
                                   np.array(ref.astype(mx.float32)), rtol=rtol,
                                   atol=atol * max(1.0, float(mx.abs(ref).max())))


def test_a_wrong_kernel_is_caught(lib):
    """The comparison can fail: a perturbed cotangent gives gradients off by
    far more than the tolerance."""
    inp = make(2, 12, 9, 3)
    cot = cotangents(inp)
    _, gh = host(lib, inp, True, 4, cot)
    _, g = vjp(inp, "reference", [cot[0] * 1.001, cot[1]], True, 4)
    assert max(rel(gh[n], g[n].astype(mx.float32)) for n in g) > 1e-4


def test_more_states_than_built_are_refused(lib):
    inp = make(1, 2, 2, 65)
    b, L, D = inp["u"].shape
    dims = (c_int64 * 5)(b, L, D, 65, 64)
    flags = (c_int * 7)(0, 0, 0, 0, 0, 1, 1)
    assert lib.fs_scan_host(0, 0, (c_void_p * 19)(), dims, flags,
                            (POINTER(c_float) * 5)()) == 1

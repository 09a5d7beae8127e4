"""The selective scan's op with its Metal kernels emulated, and what the tests
compare it with.

``emulated(emu)`` swaps ``_ext.selective_scan`` for a custom function whose
forward runs ScanForward's dispatches (metal/scan.h) in the emulator and
whose vjp does what ScanForward::vjp does (src/ops/scan.cpp): the forward's
chunk states, the cotangents cast to u's dtype and float32, ScanBackward's
dispatches (the per-group backward, then the fixed-order sums), and each
gradient cast back to its input's dtype. So the whole op runs as on a GPU
stream: its argument checks, the option lists, and the primitives' array
order, against the CPU kernel (`backend="fused"` on mx.cpu) and the pure-MLX
reference.
"""

from __future__ import annotations

import contextlib

import mlx.core as mx
import numpy as np

import metal_emu
from flashsnn import _backend
from scan_cases import NAMES, cotangents, make, vjp  # noqa: F401 (re-exported to the tests)
from metal_family import DTYPE_NAMES, DTYPES, from_np, rel_rms, to_np


def _poison(shape, dtype: str) -> metal_emu.Buffer:
    """An output buffer full of NaN, so that an element no kernel writes shows."""
    if dtype == "bfloat16":
        return metal_emu._typed(np.full(shape, 0x7FC0, np.uint16), dtype)
    return metal_emu._typed(np.full(shape, np.nan, metal_emu.NP_STORAGE[dtype]), dtype)


class EmulatedScan:
    """The replacement for ``_backend.ext``: ``selective_scan`` runs in the
    emulator, everything else is the real extension's. launch: order,
    max_threads, ftz for every dispatch; calls: the directions run."""

    def __init__(self, emu, **launch):
        self.emu, self.launch = emu, launch
        self.real = _backend.ext
        self.calls: list[str] = []

    def __getattr__(self, name):
        return getattr(self.real, name)

    def selective_scan(self, u, delta, A, B, C, *, D, z, delta_bias, initial_state, softplus, chunk=64,
                       stream=None):
        emu, dt = self.emu, DTYPE_NAMES[u.dtype]
        Bt, L, Dc = u.shape
        N = A.shape[1]
        opt = [*D, *z, *delta_bias, *initial_state]
        lau = metal_emu.ScanLaunch(Bt, L, Dc, N, chunk, len(D), len(z), len(delta_bias), len(initial_state),
                                   int(softplus), int(B.ndim == 3), int(C.ndim == 3), metal_emu.DTYPES[dt])
        nchk = (L + chunk - 1) // chunk

        def seq(a):  # a sequence input in u's dtype, or a float32 one
            return metal_emu._typed(to_np(a), dt) if a.dtype == u.dtype and a.ndim == 3 else \
                metal_emu._typed(np.array(a, np.float32), "float32")

        def forward(prim):
            ins = [seq(a) for a in prim]
            outs = [_poison((Bt, L, Dc), dt), _poison((Bt, Dc, N), "float32"), _poison((Bt, nchk, Dc, N), "float32")]
            self.calls.append("fwd")
            return ins, emu.scan(False, lau, ins, outs, **self.launch)

        @mx.custom_function
        def f(*prim):
            _, out = forward(prim)
            return [from_np(out[0], u.dtype), mx.array(out[1])]

        @f.vjp
        def f_vjp(primals, cotangents, outputs):
            ins, fwd = forward(primals)
            ins += [fwd[2], metal_emu._typed(to_np(cotangents[0].astype(u.dtype)), dt),
                    metal_emu._typed(np.array(cotangents[1].astype(mx.float32)), "float32")]
            none = (0,)
            outs = [_poison(u.shape, dt), _poison(u.shape, dt), _poison(A.shape, "float32"),
                    _poison(B.shape, "float32"), _poison(C.shape, "float32"),
                    _poison(D[0].shape if D else none, "float32"), _poison(u.shape if z else none, dt),
                    _poison(delta_bias[0].shape if delta_bias else none, "float32"),
                    _poison(initial_state[0].shape if initial_state else none, "float32")]
            self.calls.append("bwd")
            g = emu.scan(True, lau, ins, outs, **self.launch)
            kept = [0, 1, 2, 3, 4] + [k for k, a in zip((5, 6, 7, 8), (D, z, delta_bias, initial_state)) if a]
            grads = []
            for k, p in zip(kept, primals):
                a = from_np(g[k], u.dtype) if g[k].elem != metal_emu.ELEM["float32"] else mx.array(g[k])
                grads.append(a.astype(p.dtype))
            return tuple(grads)

        return f(u, delta, A, B, C, *opt)


@contextlib.contextmanager
def emulated(emu, **launch):
    """Inside, every fused selective_scan runs the emulated Metal kernels."""
    e = EmulatedScan(emu, **launch)
    _backend.ext = e
    try:
        yield e
    finally:
        _backend.ext = e.real


def run_emulated(emu, inp, cot, softplus=True, chunk=64, **launch):
    with mx.stream(mx.cpu), emulated(emu, **launch) as e:
        got = vjp(inp, "fused", cot, softplus, chunk)
    assert e.calls[-1] == "bwd", e.calls
    return got


def run_cpu(inp, cot, softplus=True, chunk=64):
    with mx.stream(mx.cpu):
        return vjp(inp, "fused", cot, softplus, chunk)


def run_reference(inp, cot, softplus=True, chunk=64):
    with mx.stream(mx.cpu):
        return vjp(inp, "reference", cot, softplus, chunk)


# Relative RMS bars: float32 as the op's own tests (the 1e-5). In 16
# bits every output and gradient is a float32 result rounded once: against
# the CPU kernel (same algorithm, its own exp and log1p) the two roundings
# part by one unit in the last place where float32 round-off moves a value
# across a rounding boundary (2^-11 float16, 2^-8 bfloat16 relative each);
# against the reference (float32 arithmetic in another order, on 16-bit
# inputs), mamba_ssm's own 16-bit tolerances, 3e-3 and 3e-2.
TOL_CPU = {"float32": 1e-5, "float16": 2 ** -11, "bfloat16": 2 ** -8}
TOL_REF = {"float32": 1e-5, "float16": 3e-3, "bfloat16": 3e-2}


def check(got, want, tol: float, what: str) -> list[str]:
    """Every output and gradient within relative RMS `tol` (shapes and
    dtypes equal); returns the measured errors for the failure message."""
    (outs, g), (routs, rg) = got, want
    report = []
    assert set(g) == set(rg), f"{what}: gradients of {sorted(g)} vs {sorted(rg)}"
    pairs = [("out", outs[0], routs[0]), ("last", outs[1], routs[1])] + [(f"d{k}", g[k], rg[k]) for k in rg]
    for name, a, b in pairs:
        assert a.shape == b.shape and a.dtype == b.dtype, f"{what} {name}: {a.shape} {a.dtype} vs {b.shape} {b.dtype}"
        err, mabs = rel_rms(a, b)
        report.append(f"{name} {err:.2g}")
        assert err <= tol, f"{what} {name}: rel RMS {err:.3g} > {tol:.3g} (max abs {mabs:.3g}); all: {report}"
    return report

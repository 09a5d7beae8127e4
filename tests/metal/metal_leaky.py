"""fs.ops.leaky's fused path with the Metal kernels emulated, and what the
tests compare it with.

``emulated_leaky`` does what the op does on a GPU stream: the Python op's
argument handling (``check_args``, ``suffix_param``), LeakyForward with the
saved h (and u), then LeakyForward::vjp: LeakyBackward over the saved arrays
and the cotangents in x's dtype, and the per-neuron partials summed with
mx.sum, as ``reduce_partial`` in src/ops/leaky.cpp. Only the two kernel
launches differ: they run in the emulator.
"""

from __future__ import annotations

import math

import mlx.core as mx
import numpy as np

import flashsnn as fs
from flashsnn.ops import _checks
from flashsnn.ops.leaky import RESETS as RESET_IDS, check_args

DTYPE_NAMES = {mx.float32: "float32", mx.float16: "float16", mx.bfloat16: "bfloat16"}


def to_np(a: mx.array) -> np.ndarray:
    """Kernel storage: bfloat16 as its uint16 bits."""
    if a.dtype == mx.bfloat16:
        return np.array(a.view(mx.uint16))
    return np.array(a)


def from_np(a: np.ndarray, dtype) -> mx.array:
    if dtype == mx.bfloat16:
        return mx.array(np.ascontiguousarray(a).view(np.uint16)).view(mx.bfloat16)
    return mx.array(a)


def options(x, mem, beta, threshold, **kw):
    """LeakyArgs as the op builds them, and the kernels' option dict."""
    a = check_args(x, mem, beta, threshold, kw.get("reset_mechanism", "subtract"),
                   kw.get("reset_delay", True), kw.get("spike_grad", fs.surrogate.atan()),
                   kw.get("output_mem", "last"), kw.get("convention", "snntorch"),
                   kw.get("detach_reset", False))
    g = a.spike_grad
    opts = dict(reset=RESET_IDS[a.reset], mode=a.mode, detach=a.detach, surrogate_id=g.kernel_id,
                surrogate_a=g.a, surrogate_b=g.b, mem_all=a.mem_all, save=True)
    return a, opts


def _reduce(partial: np.ndarray, p: mx.array, N: int) -> mx.array:
    P = p.size
    g = mx.array(partial).reshape(N // P, P)
    if N // P > 1:
        g = mx.sum(g, axis=0, keepdims=True)
    return g.reshape(p.shape)


def emulated_leaky(emu, x, mem, beta, threshold, cot_spk, cot_mem, *, order=0, max_threads=1024,
                   save=True, ftz=False, rows=False, **kw):
    """(spk, mem_out, grads, partials): grads = {"x", "mem", "beta",
    "threshold"} for the kernel-form arrays (the tests pass suffix-shaped
    float32 ones), partials = the per-neuron sums over T that the backward
    kernel writes, shaped [*S], before the op's mx.sum. rows: the [T, *S]
    cotangents are the same at every step, and the backward reads step 0's
    row alone (dspk_row, and dmem_row with output_mem="all"), as the op
    passes a .sum() loss's cotangent."""
    a, opts = options(x, mem, beta, threshold, **kw)
    opts["save"] = save
    S, T = a.S, x.shape[0]
    N = math.prod(S)
    name = DTYPE_NAMES[x.dtype]
    mem_k = a.mem if a.mem is not None else mx.array(0.0, dtype=mx.float32)
    beta_k = _checks.suffix_param(a.beta, S)
    th_k = _checks.suffix_param(a.threshold, S)
    params = [np.array(p).reshape(-1) for p in (mem_k, beta_k, th_k)]
    launch = dict(order=order, max_threads=max_threads, ftz=ftz)
    fwd = emu.leaky_forward(to_np(x).reshape(T, N), *params, opts, name, **launch)
    spk = from_np(fwd[0], x.dtype).reshape(x.shape)
    mem_out = from_np(fwd[1], x.dtype).reshape(x.shape if a.mem_all else S)
    if not save:
        return spk, mem_out, None, None
    dspk = to_np(cot_spk.astype(x.dtype)).reshape(T, N)
    dmem = to_np(cot_mem.astype(x.dtype)).reshape((T, N) if a.mem_all else (N,))
    if rows:
        opts.update(dspk_row=True, dmem_row=a.mem_all)
        dspk = np.ascontiguousarray(dspk[0])
        dmem = np.ascontiguousarray(dmem[0]) if a.mem_all else dmem
    bwd = emu.leaky_backward(fwd[2:], *params, dspk, dmem, opts, name, **launch)
    grads = {"x": from_np(bwd[0], x.dtype).reshape(x.shape)}
    partials = {}
    for key, p, part in zip(("mem", "beta", "threshold"), (mem_k, beta_k, th_k), bwd[1:]):
        grads[key] = _reduce(part, p, N)
        partials[key] = mx.array(part).reshape(S)
    return spk, mem_out, grads, partials


def _vjp(f, x, mem, beta, threshold, cot_spk, cot_mem):
    names = ["x", "beta", "threshold"] + (["mem"] if mem is not None else [])
    primals = [x, beta, threshold] + ([mem] if mem is not None else [])

    def g(x, beta, threshold, *m):
        return f(x, m[0] if m else None, beta, threshold)

    (spk, mem_out), vjps = mx.vjp(g, primals, [cot_spk, cot_mem])
    return spk, mem_out, dict(zip(names, vjps))


def per_neuron(p: mx.array | None, S: tuple) -> mx.array | None:
    """p materialized to [*S]: its gradient is then per neuron, as the
    kernel's partials are."""
    return None if p is None else mx.array(np.broadcast_to(np.array(p), S))


def reference_leaky(x, mem, beta, threshold, cot_spk, cot_mem, **kw):
    """The pure-MLX reference (flashsnn.reference.leaky) and its mx.vjp."""
    return _vjp(lambda x, m, b, t: fs.reference.leaky(x, m, beta=b, threshold=t, **kw),
                x, mem, beta, threshold, cot_spk, cot_mem)


def cpu_kernel_leaky(x, mem, beta, threshold, cot_spk, cot_mem, **kw):
    """The CPU kernel (src/cpu/leaky.cpp) through fs.ops.leaky and mx.vjp."""
    with mx.stream(mx.cpu):
        return _vjp(lambda x, m, b, t: fs.ops.leaky(x, m, beta=b, threshold=t, backend="fused", **kw),
                    x, mem, beta, threshold, cot_spk, cot_mem)


def rel_rms(a: mx.array, b: mx.array) -> tuple[float, float]:
    """(relative RMS error of a against b, max abs error), in float64, over
    the finite elements; inf / nan must sit in the same places with the same
    values (a 16-bit gradient can overflow, and then must overflow alike)."""
    a = np.array(a.astype(mx.float32), dtype=np.float64)
    b = np.array(b.astype(mx.float32), dtype=np.float64)
    fa, fb = np.isfinite(a), np.isfinite(b)
    if not (np.array_equal(fa, fb) and np.array_equal(a[~fa], b[~fb], equal_nan=True)):
        return math.inf, math.inf
    a, b = a[fa], b[fb]
    if a.size == 0:
        return 0.0, 0.0
    err = float(np.sqrt(np.mean((a - b) ** 2)))
    scale = float(np.sqrt(np.mean(b ** 2)))
    mx_abs = float(np.max(np.abs(a - b)))
    if err == 0.0:
        return 0.0, mx_abs
    return (err / scale if scale > 0 else math.inf), mx_abs


# --------------------------------------------------------------------------
# The cases (shared by the emulator tests and the tests on a Metal device)
# --------------------------------------------------------------------------

RESETS = ("subtract", "zero", "none")
CONVENTIONS = {
    "delayed": dict(reset_delay=True),            # snnTorch's default
    "immediate": dict(reset_delay=False),         # snnTorch, reset_delay=False
    "same_step": dict(convention="same_step"),    # SpikingJelly / mlx-snn
}
DTYPES = {"float32": mx.float32, "float16": mx.float16, "bfloat16": mx.bfloat16}
SURROGATES = {
    "atan": fs.surrogate.atan(),
    "fast_sigmoid": fs.surrogate.fast_sigmoid(),
    "sigmoid": fs.surrogate.sigmoid(slope=5),
    "triangular": fs.surrogate.triangular(),
    "straight_through": fs.surrogate.straight_through(),
    "heaviside": fs.surrogate.heaviside(),
    "spike_rate_escape": fs.surrogate.spike_rate_escape(beta=2, slope=3),
    "sparse_fast_sigmoid": fs.surrogate.SFS(slope=10, B=-0.2),
    "leaky_spike_operator": fs.surrogate.LSO(slope=0.2),
}
# Relative RMS of the gradients against the reference. Both compute in
# float32 and round each dx_t to x's dtype once; they differ only where a
# float32 round-off difference in the reverse recursion moves dx_t across a
# rounding boundary of the 16-bit type, i.e. by one unit in its last place
# (2^-11 for float16, 2^-8 for bfloat16) on a few elements. The bounds are
# those units; the parameter gradients are float32 sums, as for float32 x.
GRAD_TOL = {"float32": 1e-5, "float16": 2 ** -11, "bfloat16": 2 ** -8}
PARAM_TOL = 1e-5
NEURONS = {1: (1,), 31: (31,), 33: (33,), 500: (20, 25)}


def make_case(reset, conv, dtype, T, n, seed, form):
    """Inputs for one case. form: 'scalar' (mx scalars, no initial mem),
    'neuron' (beta/threshold/mem per neuron), 'feature' (per last axis)."""
    rng = np.random.default_rng(seed)
    S = NEURONS[n]
    x = mx.array(rng.normal(0.35, 0.6, (T, *S)).astype(np.float32)).astype(DTYPES[dtype])
    if form == "scalar":
        beta, th, mem = mx.array(0.85), mx.array(0.9), None
    else:
        P = S if form == "neuron" else S[-1:]
        # Some beta outside [0, 1]: the forward clamps it, the gradient is masked there.
        beta = mx.array(rng.uniform(-0.15, 1.15, P).astype(np.float32))
        th = mx.array(rng.uniform(0.6, 1.4, P).astype(np.float32))
        mem = mx.array(rng.uniform(-0.5, 1.2, S).astype(np.float32))
    cot_spk = mx.array(rng.normal(size=(T, *S)).astype(np.float32)).astype(DTYPES[dtype])
    return x, mem, beta, th, cot_spk, rng


def cot_mem_for(rng, x, output_mem):
    shape = x.shape if output_mem == "all" else x.shape[1:]
    return mx.array(rng.normal(size=shape).astype(np.float32)).astype(x.dtype)


def exact(a: mx.array, b: mx.array) -> bool:
    return np.array_equal(np.array(a.astype(mx.float32)), np.array(b.astype(mx.float32)), equal_nan=True)


def check(got, want, dtype, what=""):
    """got: (spk, mem, grads, partials) with partials the per-neuron
    parameter gradients (emulated_leaky's result); want: the reference's with
    per-neuron (materialized) parameters."""
    spk, mem, grads, partials = got
    rspk, rmem, rg = want
    assert exact(spk, rspk), f"{what}spikes differ at {int(mx.sum(spk != rspk).item())} places"
    err, mxabs = rel_rms(mem, rmem)
    assert exact(mem, rmem), f"{what}membrane differs: rel RMS {err:.3g}, max abs {mxabs:.3g}"
    for key, ref in rg.items():
        g = grads["x"] if key == "x" else partials[key]
        assert g.shape == ref.shape, f"{what}d{key} shape {g.shape} != {ref.shape}"
        err, mxabs = rel_rms(g, ref)
        tol = GRAD_TOL[dtype] if key == "x" else PARAM_TOL
        assert err <= tol, f"{what}d{key}: rel RMS {err:.3g} > {tol:.3g} (max abs {mxabs:.3g})"

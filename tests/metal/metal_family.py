"""Every fused family's op with its Metal kernels emulated, and what the
tests compare it with; the cases are generated from the family table
(flashsnn.ops._table.FAMILIES).

``emulated(emu)`` swaps ``_ext.fused`` for a custom function that runs the
two Metal launches in the emulator, so the whole op runs as on a GPU stream:
the op's own argument handling (checks, suffix parameters, Alpha's derived
tau in MLX), FamilyForward (without saves, as inference does), and under
mx.vjp what FamilyForward::vjp does (src/ops/family.cpp): the forward again
with its saves, the cotangents cast to x's dtype, FamilyBackward, and the
per-neuron partials summed with mx.sum to each input's shape.
"""

from __future__ import annotations

import contextlib
import itertools
import math

import mlx.core as mx
import numpy as np

import flashsnn as fs
from flashsnn import _backend
from flashsnn.ops._table import FAMILIES, RESETS

DTYPES = {"float32": mx.float32, "float16": mx.float16, "bfloat16": mx.bfloat16}
DTYPE_NAMES = {v: k for k, v in DTYPES.items()}
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
# Through exp: the CPU kernel has its own (exp_cpu, src/step/common.h), the
# shim's metal::precise::exp is libm's, so their gradients are not bitwise.
EXP_SURROGATES = {"sigmoid", "spike_rate_escape"}
# Relative RMS against the reference: float32 sums in both; a 16-bit dx may
# differ by one unit in the last place where float32 round-off moves it
# across a rounding boundary (2^-11 float16, 2^-8 bfloat16).
GRAD_TOL = {"float32": 1e-5, "float16": 2 ** -11, "bfloat16": 2 ** -8}
PARAM_TOL = 1e-5
# One neuron's state or parameter gradient (the N = 1 cases) is one float32
# sum over T whose terms can cancel to near 0, where its relative error is
# the cancellation's, not the kernel's. Measured with the CPU kernel against
# the reference (60 seeds per family, T = 23, float32, surrogates without
# exp): 3 of 2,115 one-neuron gradients above 1e-5, up to 4.9e-4 (ALIF's
# dadapt, 4.249e-4 against 4.247e-4 next to gradients of 1 to 60), and none
# of 2,115 over 33 neurons (at most 2.6e-6). Such a gradient's error is
# measured against the RMS of all the case's state and parameter gradients
# instead, when that is larger. (Every emulated gradient is also the CPU
# kernel's bits there, check_against_cpu.)


def to_np(a: mx.array) -> np.ndarray:
    """Kernel storage: bfloat16 as its uint16 bits."""
    if a.dtype == mx.bfloat16:
        return np.array(a.view(mx.uint16))
    return np.array(a)


def from_np(a: np.ndarray, dtype) -> mx.array:
    if dtype == mx.bfloat16:
        return mx.array(np.ascontiguousarray(a).view(np.uint16)).view(mx.bfloat16)
    return mx.array(a)


def _flat(a: mx.array) -> np.ndarray:
    return np.array(a.astype(mx.float32)).reshape(-1)


def _reduce(partial: np.ndarray, p: mx.array, N: int) -> mx.array:
    """reduce_partial (src/ops/family.cpp): [N/P, P] summed over axis 0."""
    P = p.size
    g = mx.array(partial).reshape(N // P, P)
    if N // P > 1:
        g = mx.sum(g, axis=0, keepdims=True)
    return g.reshape(p.shape)


class Emulated:
    """The replacement for ``_backend.ext``: ``fused`` runs in the emulator,
    everything else is the real extension's. launch: order, max_threads,
    ftz for every dispatch; rows: pass cotangents that are the same at every
    step as one row (dspk_row / dstate_rows), as step_row does for a .sum()
    loss; calls: every launch made, (forward or backward, kernel options)."""

    def __init__(self, emu, rows: bool = False, **launch):
        self.emu, self.rows, self.launch = emu, rows, launch
        self.real = _backend.ext
        self.calls: list[tuple[str, dict]] = []

    def __getattr__(self, name):
        return getattr(self.real, name)

    def fused(self, fid, x, states, params, *, reset, mode, detach, surrogate_id, surrogate_a, surrogate_b,
              mem_all, save=-1):
        emu, fam = self.emu, self.emu.family(fid, mode)
        S, T = x.shape[1:], x.shape[0]
        N = math.prod(S)
        dt = DTYPE_NAMES[x.dtype]
        opts = dict(family=fid, reset=reset, mode=mode, detach=detach, surrogate_id=surrogate_id,
                    surrogate_a=surrogate_a, surrogate_b=surrogate_b, mem_all=mem_all)
        # Every state is an input (initial values, a gradient); only the
        # first `no` are outputs with cotangents (the rest are carried only).
        ns, no = len(states), fam["outputs"]
        assert ns == fam["states"] and len(params) == fam["params"], (fid, ns, len(params))
        assert 1 <= no <= ns, (fid, no, ns)

        def run_forward(xv, sv, pv, save):
            o = dict(opts, save=save)
            self.calls.append(("fwd", o))
            return emu.forward(o, to_np(xv).reshape(T, N), [_flat(s) for s in sv], [_flat(p) for p in pv],
                               fam["saves"] if save else 0, dt, **self.launch)

        @mx.custom_function
        def f(xv, *sp):
            out = run_forward(xv, sp[:ns], sp[ns:], False)
            shape = x.shape if mem_all else S
            assert len(out) == 1 + no, (fid, len(out), no)
            return [from_np(out[0], x.dtype).reshape(x.shape),
                    *(from_np(o, x.dtype).reshape(shape) for o in out[1:])]

        @f.vjp
        def f_vjp(primals, cotangents, outputs):
            xv, sv, pv = primals[0], primals[1:1 + ns], primals[1 + ns:]
            saves = run_forward(xv, sv, pv, True)[1 + no:]
            assert len(saves) == fam["saves"] and len(cotangents) == 1 + no, (fid, len(saves), len(cotangents))
            cot = [to_np(c.astype(x.dtype)) for c in cotangents]
            o = dict(opts)
            dspk = cot[0].reshape(T, N)
            dst = [c.reshape((T, N) if mem_all else (N,)) for c in cot[1:]]
            if self.rows:
                assert (dspk == dspk[:1]).all(), "rows=True needs a cotangent equal at every step"
                o["dspk_row"], dspk = True, np.ascontiguousarray(dspk[0])
                if mem_all:
                    for j, d in enumerate(dst):
                        assert (d == d[:1]).all()
                        o["dstate_rows"] = o.get("dstate_rows", 0) | 1 << j
                        dst[j] = np.ascontiguousarray(d[0])
            self.calls.append(("bwd", o))
            xk = to_np(xv).reshape(T, N) if fam["backward_x"] else None
            out = emu.backward(o, saves, xk, [_flat(s) for s in sv], [_flat(p) for p in pv], dspk, dst, dt,
                               **self.launch)
            assert len(out) == 1 + ns + len(pv), (fid, len(out))
            grads = [from_np(out[0], x.dtype).reshape(x.shape)]
            grads += [_reduce(part, p, N) for part, p in zip(out[1:], primals[1:])]
            return tuple(grads)

        return f(x, *states, *params)


@contextlib.contextmanager
def emulated(emu, rows: bool = False, **launch):
    """Inside, every fused op call runs the emulated Metal kernels."""
    e = Emulated(emu, rows, **launch)
    _backend.ext = e
    try:
        yield e
    finally:
        _backend.ext = e.real


# --------------------------------------------------------------------------
# Running an op: the emulated kernels, the CPU kernel, the reference
# --------------------------------------------------------------------------

def op(fam, backend: str, x, states: dict, params: dict, cot: list, **kw):
    """(outputs, grads): the family's op and its mx.vjp with respect to x,
    every initial state given (by keyword: RLeaky's op takes spk before mem,
    the kernel mem before spk) and every parameter; grads by name."""
    names = ["x", *states, *params]

    def g(xv, *rest):
        st = dict(zip(states, rest[:len(states)]))
        pa = dict(zip(params, rest[len(states):]))
        return getattr(fs.ops, fam.name)(xv, **st, **pa, backend=backend, **kw)

    outs, vjps = mx.vjp(g, [x, *states.values(), *params.values()], cot)
    mx.eval(outs, vjps)
    return list(outs), dict(zip(names, vjps))


def run_emulated(emu, fam, x, states, params, cot, *, rows=False, launch=None, **kw):
    with emulated(emu, rows, **(launch or {})):
        return op(fam, "fused", x, states, params, cot, **kw)


def run_cpu(fam, x, states, params, cot, **kw):
    with mx.stream(mx.cpu):
        return op(fam, "fused", x, states, params, cot, **kw)


def run_reference(fam, x, states, params, cot, **kw):
    return op(fam, "reference", x, states, params, cot, **kw)


# --------------------------------------------------------------------------
# The cases, from the table
# --------------------------------------------------------------------------

def mode_options(fam) -> dict[int, dict]:
    """kernel mode -> the op keywords that select it, found by calling the op
    with every combination of the table's options and recording the mode
    the kernel receives (no kernel runs)."""
    found: dict[int, dict] = {}

    class Probe:
        def __getattr__(self, name):
            return getattr(real, name)

        def fused(self, fid, x, states, params, *, mode, mem_all, **_):
            seen.append(mode)
            return [x, *(x[0] for _ in range(fam.n_outputs))]

    real, keys = _backend.ext, list(fam.options)
    _backend.ext = Probe()
    try:
        for values in itertools.product(*(fam.options[k] for k in keys)):
            seen: list[int] = []
            kw = dict(zip(keys, values))
            x = mx.zeros((1, 1))
            params = {p: mx.array(float(np.mean(fam.sample[p]))) for p in fam.params}
            try:
                getattr(fs.ops, fam.name)(x, **params, backend="fused", **kw)
            except ValueError:
                continue  # a combination the op refuses
            found.setdefault(seen[0], kw)
    finally:
        _backend.ext = real
    assert sorted(found) == sorted(fam.modes), (fam.name, sorted(found), fam.modes)
    return found


NEURONS = {1: (1,), 33: (33,), 500: (20, 25)}
# Initial states the table gives no range for (Family.sample has Izhikevich's
# mV and current units): a spike trace is a sum of decayed spikes, >= 0.
STATE_SAMPLE = {"adapt": (0.0, 1.0)}


def initial_state(fam, name: str, S: tuple, rng) -> np.ndarray:
    """A sensible initial value of state `name` over S: 0/1 for a fed-back
    spike (RLeaky's and RSynaptic's spk, ALIF's carried one), else uniform
    over the table's range, else over [-0.3, 0.8) as for every state
    before (the same draws, so the older families' cases are unchanged)."""
    if name == "spk":
        return (rng.uniform(size=S) < 0.3).astype(np.float32)
    lo, hi = fam.sample.get(name, STATE_SAMPLE.get(name, (-0.3, 0.8)))
    return rng.uniform(lo, hi, S).astype(np.float32)


def reset_kw(fam, reset: str) -> dict:
    """The reset option, for the families whose op takes one (Izhikevich has
    one reset and no reset_mechanism)."""
    assert reset in fam.resets, (fam.name, reset)
    return {"reset_mechanism": reset} if len(fam.resets) > 1 else {}


def make_case(fam, dtype: str, T: int, n: int, seed: int, form: str = "neuron", output_mem: str = "last"):
    """x, initial states (those the op takes), parameters and cotangents (on
    spk and the output states) for one case. form:
    'neuron' (per-neuron parameters, so that every parameter gradient is
    per neuron, as the kernel's partials are, and comparing it measures the
    kernel, not the order of a cancelling sum over neurons), 'feature'
    (per last axis) or 'scalar'."""
    rng = np.random.default_rng(seed)
    S = NEURONS[n]
    mean, std = fam.sample.get("x", (0.35, 0.6))  # Izhikevich: currents of ~0..20
    x = mx.array(rng.normal(mean, std, (T, *S)).astype(np.float32)).astype(DTYPES[dtype])
    P = {"neuron": S, "feature": S[-1:], "scalar": ()}[form]
    params = {p: mx.array(rng.uniform(*fam.sample[p], P).astype(np.float32)) for p in fam.params}
    # The states the op takes (ALIF makes its initial spike from mem and adapt).
    states = {s: mx.array(initial_state(fam, s, S, rng)) for s in fam.arg_states}
    shape = x.shape if output_mem == "all" else S
    cot = [mx.array(rng.normal(size=x.shape).astype(np.float32)).astype(x.dtype),
           *(mx.array(rng.normal(size=shape).astype(np.float32)).astype(x.dtype) for _ in range(fam.n_outputs))]
    return x, states, params, cot


def exact(a: mx.array, b: mx.array) -> bool:
    return np.array_equal(np.array(a.astype(mx.float32)), np.array(b.astype(mx.float32)), equal_nan=True)


def rel_rms(a: mx.array, b: mx.array) -> tuple[float, float]:
    """(relative RMS error of a against b, max abs error) in float64 over the
    finite elements; inf / nan must sit in the same places with the same
    values."""
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


def check_against_cpu(got, want, dtype: str, what: str = "", bitwise_grads: bool = True):
    """Spikes and states identical; with bitwise_grads (the surrogates that
    do not go through exp), every gradient identical too, in every dtype:
    dx, each initial state's and each parameter's (the CPU kernel compiles
    the same trait calls in the same order, both round float32 to 16 bits
    the same way, and the op sums the same per-neuron partials)."""
    (outs, g), (routs, rg) = got, want
    assert len(outs) == len(routs), f"{what}{len(outs)} outputs, the CPU kernel's op {len(routs)}"
    for k, (a, b) in enumerate(zip(outs, routs)):
        assert exact(a, b), f"{what}output {k} differs at {int(mx.sum(a != b).item())} places"
    if bitwise_grads:
        assert set(g) == set(rg), what
        for key in rg:
            err, mabs = rel_rms(g[key], rg[key])
            assert g[key].shape == rg[key].shape and exact(g[key], rg[key]), \
                f"{what}d{key} differs from the CPU kernel: rel RMS {err:.3g}"


def check_against_reference(got, want, dtype: str, what: str = ""):
    """Gradients within relative RMS of the pure-MLX reference's."""
    g, rg = got[1], want[1]
    others = [np.array(v.astype(mx.float32), dtype=np.float64).ravel() for k, v in rg.items() if k != "x"]
    others = np.concatenate(others) if others else np.zeros(0)
    others = others[np.isfinite(others)]
    case_scale = float(np.sqrt(np.mean(others ** 2))) if others.size else 0.0
    for key, ref in rg.items():
        assert g[key].shape == ref.shape, f"{what}d{key} shape {g[key].shape} != {ref.shape}"
        err, mabs = rel_rms(g[key], ref)
        tol = GRAD_TOL[dtype] if key == "x" else PARAM_TOL
        if key != "x" and ref.size == 1 and math.isfinite(mabs) and err > tol and case_scale > 0:
            err = min(err, mabs / case_scale)  # one neuron's cancelling sum: see PARAM_TOL
        assert err <= tol, f"{what}d{key}: rel RMS {err:.3g} > {tol:.3g} (max abs {mabs:.3g})"

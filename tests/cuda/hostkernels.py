"""The ctypes side of tests/cuda/host_family.cu: its parameter structs, the
host library's build, and the helpers the per-thread checks of
test_cuda_kernel_logic.py share (inputs, guards, host launches, the CPU
kernel's answer, comparisons)."""

from __future__ import annotations

import ctypes
import types
from concurrent.futures import ThreadPoolExecutor
from ctypes import c_float, c_int, c_int64, c_size_t, c_uint, c_void_p

import mlx.core as mx
import numpy as np
import pytest

import cudatest
from helpers import rel_rms

ext = pytest.importorskip("flashsnn._ext", reason="flashsnn._ext is not built")
from flashsnn.ops._table import FAMILIES  # noqa: E402

MAX_STATES, MAX_PARAMS, MAX_SAVES = cudatest.limits()  # fs::kMax* (src/step/family.h)

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
SUR_NAMES = list(SURROGATES)
# Surrogates whose slope goes through exp (see the module docstring).
EXP_SURROGATES = {"sigmoid", "spike_rate_escape"}
# N -> neuron shape S; the per-feature parameters take S's last axis.
SHAPES = {1: (1, 1), 31: (1, 31), 33: (3, 11), 500: (5, 100), 512: (4, 128)}

# The C++ side's table: name -> (states, params, backward reads x, reset mask, mode mask,
# saves per mode, output states).
CXX = {name: (s, p, bx, rm, mm, sv, o) for name, s, p, bx, rm, mm, sv, o in ext.families()}
# Bytes in the output slots that must stay unwritten (the carried-only
# states' state_out, the partials' slots past a family's counts), and the
# value in the input slots that must stay unread (a carried-only state's
# dstate): a read NaN reaches the gradients, which the comparisons see.
GUARD_BYTE = 0xA5


def combos():
    """(family, reset, mode) for every reset and mode each family has."""
    out = []
    for name, fam in FAMILIES.items():
        rmask, mmask = CXX[name][3], CXX[name][4]
        for r in range(3):
            for m in range(3):
                if (rmask >> r) & 1 and (mmask >> m) & 1:
                    out.append((name, r, m))
    return out


def cases():
    """float32 for every (family, reset, mode); float16 and bfloat16 for the
    subtract reset in every mode and every reset in the family's first mode
    (each dtype's loads and stores in every family, without the full cube)."""
    out = []
    for name, r, m in combos():
        first_mode = min(FAMILIES[name].modes)
        for dt in DTYPES:
            if dt == "float32" or r == 0 or m == first_mode:
                out.append(pytest.param(name, r, m, dt, id=f"{name}-r{r}-m{m}-{dt}"))
    return out


class Surrogate(ctypes.Structure):
    _fields_ = [("id", c_int), ("a", c_float), ("b", c_float)]


class FwdParams(ctypes.Structure):
    _fields_ = [("x", c_void_p), ("state0", c_void_p * MAX_STATES),
                ("param", c_void_p * MAX_PARAMS), ("spk", c_void_p),
                ("state_out", c_void_p * MAX_STATES), ("save", c_void_p * MAX_SAVES),
                ("T", c_int64), ("N", c_int64), ("P_state", c_int64 * MAX_STATES),
                ("P_param", c_int64 * MAX_PARAMS), ("mem_all", c_int)]


class BwdParams(ctypes.Structure):
    _fields_ = [("save", c_void_p * MAX_SAVES), ("x", c_void_p),
                ("state0", c_void_p * MAX_STATES), ("param", c_void_p * MAX_PARAMS),
                ("dspk", c_void_p), ("dstate", c_void_p * MAX_STATES), ("dx", c_void_p),
                ("dstate0", c_void_p * MAX_STATES), ("dparam", c_void_p * MAX_PARAMS),
                ("T", c_int64), ("N", c_int64), ("P_state", c_int64 * MAX_STATES),
                ("P_param", c_int64 * MAX_PARAMS), ("dspk_step", c_int64),
                ("dstate_step", c_int64 * MAX_STATES), ("mem_all", c_int), ("detach", c_int),
                ("g", Surrogate)]



def build_host_library(nvcc: str, out) -> ctypes.CDLL:
    """One host library for every family: the three dtype parts and the entry
    points compiled in parallel (about a minute on 2 cores), then linked."""
    src = str(cudatest.ROOT / "tests/cuda/host_family.cu")
    flags = ["-Xcompiler", "-fPIC", "-std=c++17", "-O2", f"-arch={cudatest.ARCH}",
             *cudatest.NUMERICS, *cudatest.STRICT]
    parts = [(f"part{d}.o", [f"-DFS_HOST_DTYPE={d}"]) for d in range(3)] + \
        [("common.o", ["-DFS_HOST_COMMON"])]
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda p: cudatest.run([nvcc, "-c", *flags, *p[1], src, "-o",
                                               str(out / p[0])]), parts))
    so = out / "libhost_family.so"
    cudatest.run([nvcc, "-shared", *[str(out / p[0]) for p in parts], "-o", str(so)])
    lib = ctypes.CDLL(str(so))
    for f in ("fs_forward", "fs_backward"):
        getattr(lib, f).restype = c_int
        getattr(lib, f).argtypes = [c_void_p, c_int, c_int, c_int, c_int, c_int, c_int]
    lib.fs_fwd_vec_ok.argtypes = [c_void_p, c_int]
    lib.fs_bwd_vec_ok.argtypes = [c_void_p, c_int]
    lib.fs_unroll.argtypes = [c_int, c_int, c_int]
    lib.fs_shape.argtypes = [c_int64, c_int, c_int, c_int, ctypes.POINTER(c_int),
                             ctypes.POINTER(c_uint), ctypes.POINTER(c_uint)]
    lib.fs_shape.restype = None
    for f in ("fs_sizeof_fwd", "fs_sizeof_bwd", "fs_offsetof_fwd_mem_all",
              "fs_offsetof_bwd_dstate_step", "fs_offsetof_bwd_g"):
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


def table(ctype, arrays, n):
    return ctype(*([ptr(a) for a in arrays] + [None] * (n - len(arrays))))


def sizes(arrays, n):
    return (c_int64 * n)(*([a.size for a in arrays] + [1] * (n - len(arrays))))


class Case:
    """A family's kernel inputs as the op passes them: x [T, *S], initial
    states and parameters as float32 suffix arrays (the derived ones, Alpha's
    tau, made in MLX as the op makes them). Values from cudatest's samplers:
    the table's parameter ranges, and per family x and the initial states
    the op makes itself (Family.initial)."""

    def __init__(self, name, T, N, dtype, params, seed, stretch=False):
        fam = FAMILIES[name]
        self.name, self.fam, self.id = name, fam, fam.id
        S = SHAPES[N]
        rng = np.random.default_rng(seed)
        shape = {"neuron": lambda k: S, "scalar": lambda k: (),
                 "mixed": lambda k: (S, S[-1:], ())[k % 3]}[params]
        states = [cudatest.sample_state(fam, k, rng, shape(k)) for k in range(len(fam.states))]
        # Clamped parameters outside [0, 1]: the clamp and its gradient mask
        # are exercised (families whose derived parameters allow it).
        vals = {p: mx.array(cudatest.sample_param(fam, p, rng, shape(k + 1), stretch))
                for k, p in enumerate(fam.params)}
        x = cudatest.sample_x(fam, rng, (T, *S))
        if params == "scalar":
            # An exact tie with the threshold on the first step: > and >= must
            # both be reproduced. From zero states (fed-back spikes 0 too,
            # Izhikevich's u = 0 in its range), x = threshold ties the
            # membrane (Leaky, Synaptic, the recurrent families, ALIF);
            # Izhikevich's membrane starts at the threshold instead, a tie of
            # its >= reset.
            th = float(np.array(vals["threshold"]).reshape(-1)[0])
            states = [np.zeros((), np.float32) for _ in states]
            if name == "izhikevich":
                states[fam.states.index("mem")] = np.float32(th)
            else:
                x[0].reshape(-1)[0] = th
        self.states = [mx.array(np.asarray(a, np.float32)) for a in states]
        self.params = fam.kernel_params(types.SimpleNamespace(**vals))
        self.x = mx.array(x).astype(dtype)
        self.T, self.N, self.S, self.dtype = T, N, S, dtype
        self.outputs = fam.n_outputs

    def args(self):
        return [self.x, *self.states, *self.params]

    def f32(self):
        return [aligned_copy(np.array(a).reshape(-1)) for a in self.states], \
               [aligned_copy(np.array(a).reshape(-1)) for a in self.params]


def cpu_fused(case, args, reset, mode, mem_all, sur, detach):
    ns = len(case.states)
    idx, a, b = sur
    return ext.fused(case.id, args[0], list(args[1:1 + ns]), list(args[1 + ns:]), reset=reset,
                     mode=mode, detach=detach, surrogate_id=idx, surrogate_a=a, surrogate_b=b,
                     mem_all=mem_all, save=1, stream=mx.cpu)


def guard(shape, dtype):
    """An output slot that must stay unwritten: GUARD_BYTE everywhere."""
    g = aligned_empty(shape, dtype)
    g.view(np.uint8)[...] = GUARD_BYTE
    return g


def untouched(guards) -> bool:
    return all(np.all(g.view(np.uint8) == GUARD_BYTE) for g in guards)


def host_forward(lib, case, dtype_id, reset, mode, mem_all, vec, sm_count=1):
    """The host-run forward with the glue's slots: spk, the first O states'
    outputs, the mode's saves. The carried-only states' state_out slots, the
    slots past the family's states and past the mode's saves hold guards
    that must stay unwritten."""
    T, N = case.T, case.N
    xs = to_np(case.x.reshape(T, N))
    st0, par = case.f32()
    spk = aligned_empty((T, N), xs.dtype)
    oshape = (T, N) if mem_all else (N,)
    outs = [aligned_empty(oshape, xs.dtype) for _ in range(case.outputs)]
    g_out = [guard(oshape, xs.dtype) for _ in range(case.outputs, MAX_STATES)]
    saves = [aligned_empty((T, N), np.float32) for _ in range(CXX[case.name][5][mode])]
    g_save = [guard((T, N), np.float32) for _ in range(len(saves), MAX_SAVES)]
    guards = g_out + g_save
    p = FwdParams(ptr(xs), table(c_void_p * MAX_STATES, st0, MAX_STATES),
                  table(c_void_p * MAX_PARAMS, par, MAX_PARAMS), ptr(spk),
                  table(c_void_p * MAX_STATES, outs + g_out, MAX_STATES),
                  table(c_void_p * MAX_SAVES, saves + g_save, MAX_SAVES), T, N,
                  sizes(st0, MAX_STATES), sizes(par, MAX_PARAMS), int(mem_all))
    used = lib.fs_forward(ctypes.byref(p), case.id, dtype_id, reset, mode, sm_count, vec)
    assert used in (1, 4) and (vec == 0 or used == vec), used
    assert untouched(guards), f"{case.name}: a state with no output, or a save slot the " \
        "mode lacks, was written"
    return used, spk, outs, saves, xs


def host_backward(lib, case, saves, xs, dspk, dstates, dtype_id, reset, mode, mem_all, sur,
                  detach, vec, dspk_row=False, dstate_rows=()):
    """The primitive's backward inputs (src/ops/family.h): cotangents dspk
    and dstate[O] for the O output states only, the mode's saves. The
    carried-only states' dstate slots and the save slots past the mode's
    hold NaN (a read would reach the gradients), the partials' slots past
    the family's counts guards that must stay unwritten.
    dspk_row / dstate_rows[k]: that cotangent is one row [N] read at every
    step (step stride 0), as the glue passes a .sum() loss's cotangent."""
    T, N = case.T, case.N
    st0, par = case.f32()
    assert len(dstates) == case.outputs
    ds = to_np(dspk.reshape(N if dspk_row else (T, N)))
    dm = [to_np(d.reshape(-1)) for d in dstates]
    nan = aligned_empty((T, N) if mem_all else (N,), ds.dtype)
    nan[...] = np.uint16(0x7FC0) if ds.dtype == np.uint16 else np.nan  # bfloat16's bits
    dm += [nan] * (MAX_STATES - len(dm))
    saves = list(saves)
    for _ in range(len(saves), MAX_SAVES):
        saves.append(aligned_empty((T, N), np.float32))
        saves[-1][...] = np.nan
    dx = aligned_empty((T, N), ds.dtype)
    d0 = [aligned_empty((N,), np.float32) for _ in st0]
    dp = [aligned_empty((N,), np.float32) for _ in par]
    g0 = [guard((N,), np.float32) for _ in range(MAX_STATES - len(d0))]
    gp = [guard((N,), np.float32) for _ in range(MAX_PARAMS - len(dp))]
    rows = [k in dstate_rows for k in range(case.outputs)]
    steps = (c_int64 * MAX_STATES)(*([0 if r else N for r in rows] + [N] * (MAX_STATES - len(rows))))
    p = BwdParams(table(c_void_p * MAX_SAVES, saves, MAX_SAVES),
                  ptr(xs) if CXX[case.name][2] else None,
                  table(c_void_p * MAX_STATES, st0, MAX_STATES),
                  table(c_void_p * MAX_PARAMS, par, MAX_PARAMS), ptr(ds),
                  table(c_void_p * MAX_STATES, dm, MAX_STATES), ptr(dx),
                  table(c_void_p * MAX_STATES, d0 + g0, MAX_STATES),
                  table(c_void_p * MAX_PARAMS, dp + gp, MAX_PARAMS), T, N,
                  sizes(st0, MAX_STATES), sizes(par, MAX_PARAMS), 0 if dspk_row else N, steps,
                  int(mem_all), int(detach), Surrogate(*sur))
    used = lib.fs_backward(ctypes.byref(p), case.id, dtype_id, reset, mode, 1, vec)
    assert used in (1, 4) and (vec == 0 or used == vec), used
    assert untouched(g0 + gp), f"{case.name}: a partial past the family's counts was written"
    return dx, d0 + dp


def reduce_partial(part: np.ndarray, param: mx.array) -> mx.array:
    """As the op does (src/ops/family.cpp, reduce_partial): [N/P, P] summed
    over axis 0 by MLX on the CPU."""
    P = max(param.size, 1)
    g = mx.array(part).reshape(-1, P)
    if g.shape[0] != 1:
        g = mx.sum(g, axis=0, keepdims=True, stream=mx.cpu)
    return g.reshape(param.shape)


def close(a: mx.array, b: mx.array, tol: float) -> bool:
    """Inf and NaN in the same places, and relative RMS over the rest within tol."""
    a, b = np.array(a.astype(mx.float32)), np.array(b.astype(mx.float32))
    fin = np.isfinite(a)
    if a.shape != b.shape or not np.array_equal(fin, np.isfinite(b)) or \
            not np.array_equal(a[~fin], b[~fin], equal_nan=True):
        return False
    return rel_rms(a[fin], b[fin]) <= tol


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


# Gradients that are zero by construction: Alpha's initial membrane reaches
# the step only through the detached reset (src/step/alpha.h).
ZERO_GRADIENTS = {"alpha": ("dmem0",)}


def nonzero(a: mx.array) -> bool:
    a = np.array(a.astype(mx.float32))
    return bool(np.any(np.isfinite(a) & (a != 0)))


def vec_widths(N):
    return (1, 4) if N % 4 == 0 else (1,)


def check_grads(got, ref, names, sur_name, dtype, case):
    """dx bitwise; partials bitwise or within 1e-6 relative; through exp
    (EXP_SURROGATES) relative RMS 1e-5 in float32, 1e-3 in 16-bit."""
    for k, (what, g, r) in enumerate(zip(names, got, ref)):
        assert g.shape == r.shape, f"{what} shape {g.shape} != {r.shape}: {case}"
        if sur_name in EXP_SURROGATES:
            tol = 1e-5 if dtype == "float32" else 1e-3
            assert close(g, r, tol), f"{what} differs: {case} {diff(g, r)}"
        elif k == 0:
            assert same_bits(g, r), f"{what} differs: {case} {diff(g, r)}"
        else:
            assert same_bits(g, r) or close(g, r, 1e-6), f"{what} differs: {case} {diff(g, r)}"


# ---------------------------------------------------------------------------

"""The CUDA kernels' per-thread code, run on the CPU, against the CPU kernel.

tests/cuda/host_family.cu compiles csrc/family.cuh (what every CUDA thread
runs) for the host with nvcc and runs it over the whole launch grid; these
tests feed it the same inputs as the CPU kernel (``flashsnn._ext.fused`` on
mx.cpu, and its backward through mx.vjp) and compare, for every family of
``flashsnn.ops._table.FAMILIES`` with the resets and modes the extension
says it has (``_ext.families()``). Both run the same per-step functions of
the family trait in the same order on the same CPU, so spikes, states and
dx must match bit for bit, and the parameter and initial-state partials
(per-neuron sums over T, reduced by MLX as the op does) bit for bit or
within 1e-6 relative. The one exception is exp: the CPU kernel has its own,
which GCC vectorizes (src/step/common.h, exp_cpu), while CUDA code calls
expf, here libm's; gradients through a surrogate that uses it are held to
relative RMS 1e-5 instead (the GPU contract). On the GPU the contract is
looser for all gradients (expf differs by an ulp or two);
tests/cuda/test_cuda_gpu.py checks that there.
"""

from __future__ import annotations

import copy
import ctypes
from ctypes import c_int, c_int64, c_uint, c_void_p

import mlx.core as mx
import numpy as np
import pytest

import cudatest

pytest.importorskip("flashsnn._ext", reason="flashsnn._ext is not built")
from flashsnn.ops._table import FAMILIES, RESETS  # noqa: E402
from hostkernels import (  # noqa: E402
    CXX, DTYPES, MAX_PARAMS, MAX_SAVES, MAX_STATES, SUR_NAMES, SURROGATES, ZERO_GRADIENTS,
    BwdParams, Case, FwdParams, aligned_empty, build_host_library, cases, check_grads,
    combos, cpu_fused, diff, from_np, host_backward, host_forward, nonzero, ptr,
    reduce_partial, same_bits, sizes, table, to_np, vec_widths,
)


@pytest.fixture(scope="module")
def lib(nvcc, tmp_path_factory):
    return build_host_library(nvcc, tmp_path_factory.mktemp("host_family"))


def test_every_family_has_a_case():
    """The generated grid covers every family of both tables, which agree on
    each family's states, output states, resets and modes; the pointer tables
    (fs::kMax*) fit the largest family; and every initial state the op makes
    itself has a sampler here (cudatest.INITIAL_SAMPLE)."""
    assert set(CXX) == set(FAMILIES)
    assert {c[0] for c in combos()} == set(FAMILIES)
    for name, fam in FAMILIES.items():
        states, params, _, rmask, mmask, _, outputs = CXX[name]
        assert tuple(states) == fam.states and outputs == fam.n_outputs, name
        assert 1 <= outputs <= len(states), name
        assert len(params) == len(fam.params) + len(fam.derived), name
        assert rmask == sum(1 << RESETS[r] for r in fam.resets), name
        assert mmask == sum(1 << m for m in fam.modes), name
        for k in fam.initial:
            assert (name, k) in cudatest.INITIAL_SAMPLE, f"{name}.{k}: no sampler"
    assert MAX_STATES == max(len(v[0]) for v in CXX.values())
    assert MAX_PARAMS == max(len(v[1]) for v in CXX.values())
    assert MAX_SAVES == max(max(v[5]) for v in CXX.values())


def test_param_struct_layout_matches_ctypes(lib):
    assert lib.fs_sizeof_fwd() == ctypes.sizeof(FwdParams)
    assert lib.fs_sizeof_bwd() == ctypes.sizeof(BwdParams)
    assert lib.fs_offsetof_fwd_mem_all() == FwdParams.mem_all.offset
    assert lib.fs_offsetof_bwd_dstate_step() == BwdParams.dstate_step.offset
    assert lib.fs_offsetof_bwd_g() == BwdParams.g.offset


def test_unroll_depths(lib):
    """Leaky keeps the steps ahead it was measured with (forward 8 / 32,
    backward 4 / 16 for V = 4 / 1); larger families load fewer, never none."""
    leaky = FAMILIES["leaky"].id
    assert [lib.fs_unroll(leaky, b, v) for b in (0, 1) for v in (4, 1)] == [8, 32, 4, 16]
    for name, fam in FAMILIES.items():
        for b, v, most in ((0, 4, 8), (0, 1, 32), (1, 4, 4), (1, 1, 16)):
            assert 1 <= lib.fs_unroll(fam.id, b, v) <= most, (name, b, v)
    assert lib.fs_unroll(99, 0, 1) == -1


@pytest.mark.parametrize("N", [1, 31, 33, 500, 4096, 50688, 50692, 67584, 67588, 10**7])
@pytest.mark.parametrize("backward", [False, True])
@pytest.mark.parametrize("sm_count", [1, 132])
def test_launch_shape_covers_every_neuron(lib, N, backward, sm_count):
    for vec_ok in (0, 1):
        vec, block, grid = c_int(), c_uint(), c_uint()
        lib.fs_shape(N, int(backward), vec_ok, sm_count, vec, block, grid)
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
        lib.fs_shape(N, int(backward), 1, 132, vec, block, grid)
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
    bufs = [aligned_empty((T, N), np.float32) for _ in range(4)]
    ones = (c_int64 * MAX_STATES)(*[1] * MAX_STATES)
    onep = (c_int64 * MAX_PARAMS)(*[1] * MAX_PARAMS)

    def fwd(xs, save1):
        return FwdParams(ptr(xs), (c_void_p * MAX_STATES)(), (c_void_p * MAX_PARAMS)(),
                         ptr(bufs[0]), table(c_void_p * MAX_STATES, [bufs[1]], MAX_STATES),
                         table(c_void_p * MAX_SAVES, [bufs[2], save1], MAX_SAVES), T, N,
                         ones, onep, 1)

    assert lib.fs_fwd_vec_ok(ctypes.byref(fwd(x, bufs[3])), 0) == 1
    assert lib.fs_fwd_vec_ok(ctypes.byref(fwd(x_off, bufs[3])), 0) == 0
    # A misaligned second save (a slot the Leaky kernel never had) counts too.
    assert lib.fs_fwd_vec_ok(ctypes.byref(fwd(x, x_off)), 0) == 0
    p = fwd(x_off, None)
    assert lib.fs_forward(ctypes.byref(p), 0, 0, 0, 0, 1, 4) == -1
    b = BwdParams()
    b.N, b.dx, b.dspk = N, ptr(x), ptr(x)
    assert lib.fs_bwd_vec_ok(ctypes.byref(b), 0) == 1
    # Every partial's slot counts, the last parameter's (Izhikevich's sixth) too.
    for k in range(MAX_PARAMS):
        b.dparam[k] = ptr(x_off)
        assert lib.fs_bwd_vec_ok(ctypes.byref(b), 0) == 0, k
        b.dparam[k] = None
    for k in range(MAX_STATES):
        b.dstate0[k] = ptr(x_off)
        assert lib.fs_bwd_vec_ok(ctypes.byref(b), 0) == 0, k
        b.dstate0[k] = None
    assert lib.fs_bwd_vec_ok(ctypes.byref(b), 0) == 1


def test_unknown_reset_or_mode_runs_nothing(lib):
    """A reset or mode a family lacks has no kernel (fs::has_reset /
    fs::has_mode; Izhikevich has one reset): the host runner says so instead
    of running another's code, forward and backward."""
    T, N = 2, 1
    missing = 0
    for name, fam in FAMILIES.items():
        rmask, mmask = CXX[name][3], CXX[name][4]
        case = Case(name, T, N, mx.float32, "neuron", seed=0)
        for r in range(3):
            for m in range(3):
                if (rmask >> r) & 1 and (mmask >> m) & 1:
                    continue
                missing += 1
                xs = to_np(case.x.reshape(T, N))
                st0, par = case.f32()
                bufs = [aligned_empty((T, N), np.float32) for _ in range(2 * MAX_STATES + 2)]
                p = FwdParams(ptr(xs), table(c_void_p * MAX_STATES, st0, MAX_STATES),
                              table(c_void_p * MAX_PARAMS, par, MAX_PARAMS), ptr(bufs[0]),
                              table(c_void_p * MAX_STATES, bufs[1:1 + MAX_STATES], MAX_STATES),
                              (c_void_p * MAX_SAVES)(), T, N, sizes(st0, MAX_STATES),
                              sizes(par, MAX_PARAMS), 0)
                assert lib.fs_forward(ctypes.byref(p), fam.id, 0, r, m, 1, 1) == -2, (name, r, m)
                b = BwdParams()
                b.T, b.N, b.dx, b.dspk = T, N, ptr(bufs[-1]), ptr(bufs[-2])
                assert lib.fs_backward(ctypes.byref(b), fam.id, 0, r, m, 1, 1) == -2, (name, r, m)
    # Izhikevich's resets 1 and 2 and the modes most families lack.
    assert missing >= 2


@pytest.mark.parametrize("name,reset,mode,dtype", cases())
def test_forward_matches_cpu_kernel(lib, name, reset, mode, dtype):
    dtype_id, mdt = DTYPES[dtype]
    spiked = 0
    for T in (1, 63):
        for N in (1, 31, 33, 500):
            for params in ("neuron", "scalar", "mixed"):
                case = Case(name, T, N, mdt, params, seed=T * 1000 + N,
                            stretch=not FAMILIES[name].derived)
                for mem_all in (False, True):
                    ref = cpu_fused(case, case.args(), reset, mode, mem_all,
                                    SURROGATES["atan"], False)
                    spiked += float(mx.sum(ref[0].astype(mx.float32)))
                    for vec in vec_widths(N):
                        _, spk, outs, _, _ = host_forward(lib, case, dtype_id, reset, mode,
                                                          mem_all, vec)
                        got = [from_np(spk, mdt)] + [from_np(o, mdt) for o in outs]
                        what = ["spk"] + [f"state {s}" for s in
                                          FAMILIES[name].states[:case.outputs]]
                        tag = f"T={T} N={N} params={params} mem_all={mem_all} vec={vec}"
                        assert len(ref) == len(got) == len(what) == 1 + case.outputs
                        for w, g, r in zip(what, got, ref):
                            g = g.reshape(r.shape)
                            assert same_bits(g, r), f"{w} differs: {tag} {diff(g, r)}"
    assert spiked > 0, "no spike anywhere: the comparison would not see the fire path"


@pytest.mark.parametrize("name,reset,mode,dtype", cases())
def test_backward_matches_cpu_kernel(lib, name, reset, mode, dtype):
    dtype_id, mdt = DTYPES[dtype]
    fam = FAMILIES[name]
    names = ["dx"] + [f"d{s}0" for s in fam.states] + \
        [f"d{p}" for p in (*fam.params, *(d for d, _ in fam.derived))]
    layouts = [(1, 31, "neuron", False), (63, 500, "mixed", False), (63, 33, "scalar", True),
               (63, 512, "neuron", True), (17, 1, "neuron", True)]
    # Gradients nonzero somewhere over the layouts, so that none of the
    # comparisons (a carried-only state's initial gradient above all) is
    # of zeros against zeros; but those zero by construction.
    seen = set(ZERO_GRADIENTS.get(name, ()))
    for k, (T, N, params, mem_all) in enumerate(layouts):
        case = Case(name, T, N, mdt, params, seed=7 + k, stretch=not fam.derived)
        rng = np.random.default_rng(100 + k)
        dspk = mx.array(rng.normal(size=case.x.shape).astype(np.float32)).astype(mdt)
        sshape = case.x.shape if mem_all else case.x.shape[1:]
        # Cotangents of the output states only (the primitive's dstate[O]).
        dst = [mx.array(rng.normal(size=sshape).astype(np.float32)).astype(mdt)
               for _ in range(case.outputs)]
        # Three surrogates per layout, rotating: all nine over the five layouts.
        for j in range(3):
            sur_name = SUR_NAMES[(3 * k + j) % len(SUR_NAMES)]
            sur = SURROGATES[sur_name]
            detach = (k + sur[0]) % 2 == 1  # both settings across the table
            _, ref = mx.vjp(lambda *a: cpu_fused(case, a, reset, mode, mem_all, sur, detach),
                            case.args(), [dspk, *dst])
            for vec in vec_widths(N):
                _, _, _, saves, xs = host_forward(lib, case, dtype_id, reset, mode, mem_all, vec)
                dx, part = host_backward(lib, case, saves, xs, dspk, dst, dtype_id, reset, mode,
                                         mem_all, sur, detach, vec)
                got = [from_np(dx, mdt).reshape(case.x.shape)] + \
                      [reduce_partial(pt, a) for pt, a in zip(part, case.args()[1:])]
                tag = f"T={T} N={N} params={params} mem_all={mem_all} {sur_name} " \
                      f"detach={detach} vec={vec}"
                assert len(got) == len(ref) == len(names)
                check_grads(got, ref, names, sur_name, dtype, tag)
            seen |= {w for w, r in zip(names, ref) if nonzero(r)}
    assert seen == set(names), f"all-zero gradients: {sorted(set(names) - seen)}"


@pytest.mark.parametrize("name", list(FAMILIES))
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_backward_row_cotangents_match_dense(lib, name, dtype):
    """Cotangents that are one row read at every step (step stride 0: dspk,
    and each state's with mem_all) give bitwise the gradients of the same
    values laid out over all T steps, in every mode the family has."""
    dtype_id, mdt = DTYPES[dtype]
    fam = FAMILIES[name]
    sur = SURROGATES["atan"]
    modes = [m for m in range(3) if (CXX[name][4] >> m) & 1]
    layouts = [(63, 512, False), (40, 33, True), (17, 500, True)]
    for k, (T, N, mem_all) in enumerate(layouts):
        mode = modes[k % len(modes)]
        case = Case(name, T, N, mdt, "mixed", seed=50 + k)
        rng = np.random.default_rng(200 + k)
        S = case.x.shape[1:]
        row = lambda: mx.array(rng.normal(size=(N,)).astype(np.float32)).astype(mdt)  # noqa: E731
        full = lambda r: mx.array(np.broadcast_to(np.array(r.astype(mx.float32)), (T, N))  # noqa: E731
                                  .copy()).astype(mdt).reshape(case.x.shape)
        row_s = row()
        # With mem_all every other output state's cotangent is a row, the
        # rest dense; carried-only states have none.
        rows = {q for q in range(case.outputs) if mem_all and q % 2 == 0}
        dst_host, dst_ref = [], []
        for q in range(case.outputs):
            if not mem_all:
                d = row().reshape(S)
                dst_host.append(d)
                dst_ref.append(d)
            elif q in rows:
                r = row()
                dst_host.append(r)
                dst_ref.append(full(r))
            else:
                d = mx.array(rng.normal(size=case.x.shape).astype(np.float32)).astype(mdt)
                dst_host.append(d)
                dst_ref.append(d)
        _, ref = mx.vjp(lambda *a: cpu_fused(case, a, 0, mode, mem_all, sur, False),
                        case.args(), [full(row_s), *dst_ref])
        names = ["dx"] + [f"d{s}0" for s in fam.states] + \
            [f"d{p}" for p in (*fam.params, *(d for d, _ in fam.derived))]
        for vec in vec_widths(N):
            _, _, _, saves, xs = host_forward(lib, case, dtype_id, 0, mode, mem_all, vec)
            dx, part = host_backward(lib, case, saves, xs, row_s, dst_host, dtype_id, 0, mode,
                                     mem_all, sur, False, vec, dspk_row=True, dstate_rows=rows)
            got = [from_np(dx, mdt).reshape(case.x.shape)] + \
                  [reduce_partial(pt, a) for pt, a in zip(part, case.args()[1:])]
            tag = f"T={T} N={N} mem_all={mem_all} mode={mode} rows={sorted(rows)} vec={vec}"
            check_grads(got, ref, names, "atan", dtype, tag)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_auto_shape_matches(lib, name):
    """The launch shape the glue picks (vec 0): 512 neurons are one wave of
    V = 1 threads on 132 SMs, and take V = 4 on a one-SM device."""
    case = Case(name, 40, 512, mx.float32, "neuron", seed=3)
    ref = cpu_fused(case, case.args(), 0, min(FAMILIES[name].modes), False,
                    SURROGATES["atan"], False)
    for sm_count, want in ((132, 1), (1, 4)):
        used, spk, outs, _, _ = host_forward(lib, case, 0, 0, min(FAMILIES[name].modes), False,
                                             0, sm_count)
        assert used == want
        for g, r in zip([spk, *outs], ref):
            assert same_bits(from_np(g, mx.float32).reshape(r.shape), r)


def test_comparison_sees_a_wrong_kernel(lib):
    """The checks can fail: the host kernel run with another family's mode
    (Leaky's same-step convention fires with >= and resets in the step)
    against the CPU's delayed mode differs in spikes and states, and a
    one-ulp change of one state is caught by same_bits."""
    case = Case("leaky", 63, 500, mx.float32, "neuron", seed=11)
    ref = cpu_fused(case, case.args(), 0, 0, False, SURROGATES["atan"], False)
    _, spk, outs, _, _ = host_forward(lib, case, 0, 0, 2, False, 4)
    assert not same_bits(from_np(spk, mx.float32).reshape(ref[0].shape), ref[0])
    _, spk, outs, _, _ = host_forward(lib, case, 0, 0, 0, False, 4)
    mem = outs[0].copy()
    mem.view(np.uint32)[7] += 1
    assert same_bits(from_np(outs[0], mx.float32).reshape(ref[1].shape), ref[1])
    assert not same_bits(from_np(mem, mx.float32).reshape(ref[1].shape), ref[1])


def nudged(a: mx.array, by: float) -> mx.array:
    """a moved by `by` times its magnitude (by `by` where it is 0: a fed-back
    spike of 0 too)."""
    v = np.array(a)
    return mx.array((v + by * (np.abs(v) + 1)).astype(np.float32))


@pytest.mark.parametrize("name", list(FAMILIES))
def test_comparisons_see_every_input_slot(lib, name):
    """The checks can fail for every family and every input slot: the host
    kernel given one initial state (carried-only ones included) or one
    parameter (the sixth slot included) off by 1e-3 relative differs from
    the CPU kernel's outputs in the forward, and in the gradients when the backward
    alone gets it; and a NaN where the backward reads a cotangent (what a
    carried-only state's dstate slot holds) reaches the gradients. Inputs
    that enter only through a comparison (Alpha's initial membrane, through
    its reset; Izhikevich's threshold) are moved by 1 of their magnitude,
    which crosses it for some neurons."""
    fam = FAMILIES[name]
    mode, sur = min(fam.modes), SURROGATES["atan"]
    case = Case(name, 63, 33, mx.float32, "neuron", seed=21)
    rng = np.random.default_rng(21)
    dspk = mx.array(rng.normal(size=case.x.shape).astype(np.float32))
    dst = [mx.array(rng.normal(size=case.x.shape).astype(np.float32))
           for _ in range(case.outputs)]
    names = ["dx"] + [f"d{s}0" for s in fam.states] + \
        [f"d{p}" for p in (*fam.params, *(d for d, _ in fam.derived))]
    ref = cpu_fused(case, case.args(), 0, mode, True, sur, False)
    _, ref_grad = mx.vjp(lambda *a: cpu_fused(case, a, 0, mode, True, sur, False),
                         case.args(), [dspk, *dst])

    def forward_same(c):
        _, spk, outs, saves, xs = host_forward(lib, c, 0, 0, mode, True, 1)
        got = [from_np(spk, mx.float32)] + [from_np(o, mx.float32) for o in outs]
        return all(same_bits(g.reshape(r.shape), r) for g, r in zip(got, ref)), saves, xs

    def gradients(c, saves, xs, cot=dst):
        dx, part = host_backward(lib, c, saves, xs, dspk, cot, 0, 0, mode, True, sur, False, 1)
        return [from_np(dx, mx.float32).reshape(case.x.shape)] + \
               [reduce_partial(pt, a) for pt, a in zip(part, case.args()[1:])]

    ok, saves, xs = forward_same(case)
    assert ok, "the unchanged inputs differ"
    check_grads(gradients(case, saves, xs), ref_grad, names, "atan", "float32", name)
    slots = [("state", k, s) for k, s in enumerate(fam.states)] + \
        [("param", k, p) for k, p in enumerate(names[1 + len(fam.states):])]
    assert len(slots) == len(case.states) + len(case.params)
    for kind, k, what in slots:
        for by in (1e-3, 1.0):
            bad = copy.copy(case)
            bad.states, bad.params = list(case.states), list(case.params)
            getattr(bad, kind + "s")[k] = nudged(getattr(case, kind + "s")[k], by)
            fwd_seen = not forward_same(bad)[0]
            got = gradients(bad, saves, xs)
            bwd_seen = not all(same_bits(g, r) for g, r in zip(got, ref_grad))
            if fwd_seen and bwd_seen:
                break
        assert fwd_seen, f"the forward does not see {kind} {what}"
        assert bwd_seen, f"the gradients do not see {kind} {what}"
    nan = [mx.full(case.x.shape, np.nan)] + dst[1:]
    got = gradients(case, saves, xs, nan)
    assert np.isnan(np.array(got[0])).any() and not same_bits(got[0], ref_grad[0])

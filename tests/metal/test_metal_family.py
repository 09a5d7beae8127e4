"""Every fused family's Metal kernels, run in the emulator (metal_family),
generated from the family table: each family x its resets (Izhikevich has
one) x its modes x dtype, with surrogates, output_mem and row cotangents in
rotation. States that are carried only (RLeaky's and RSynaptic's fed-back
spike, ALIF's) are initial-state inputs with a gradient but no output and no
cotangent; test_kernel_states_given_directly gives them to the kernel as
such.

Spikes and states must be the CPU kernel's bits, and so must every gradient
(dx, initial states, parameters, in every dtype) under the surrogates that do
not go through exp (the same trait calls in the same order; `_ext.fused` on
the CPU and its mx.vjp); gradients of x, the initial states and the
parameters within relative RMS 1e-5 of the pure-MLX reference
(`backend="reference"`; one neuron's: see metal_family.PARAM_TOL).
Parameters are per neuron in the
generated cases, so their gradients are per-neuron sums over T, which is what
the kernel computes; a shared parameter's gradient is a cancelling sum over
thousands of neurons whose float32 summation order alone moves it by ~3e-4
relative (measured on Leaky: 0.00818 from 1953 terms), which would measure
order, not the kernel.
"""

from __future__ import annotations

import itertools
import types

import mlx.core as mx
import numpy as np
import pytest

import flashsnn as fs
from flashsnn import _backend
from metal_family import (DTYPES, EXP_SURROGATES, FAMILIES, RESETS, SURROGATES, Emulated, check_against_cpu,
                          check_against_reference, exact, initial_state, make_case, mode_options, reset_kw,
                          run_cpu, run_emulated, run_reference)

MODES = {fam.name: mode_options(fam) for fam in FAMILIES.values()}
MODE_NAMES = {0: "delayed", 1: "immediate", 2: "same_step"}


def _cases():
    k = 0
    for fam in FAMILIES.values():
        for reset, mode in itertools.product(fam.resets, MODES[fam.name]):
            # float32 everywhere; the 16-bit kernels for every reset of the first mode
            for dtype in ("float32", "float16", "bfloat16"):
                if dtype != "float32" and mode != min(MODES[fam.name]):
                    continue
                yield pytest.param(k, fam.name, reset, mode, dtype,
                                   id=f"{fam.name}-{reset}-{MODE_NAMES[mode]}-{dtype}")
                k += 1


def _need_cpu():
    why = fs.fused_unavailable_reason(mx.Device(mx.cpu))
    if why:
        pytest.skip(f"no CPU kernel: {why}")


@pytest.mark.parametrize("k,name,reset,mode,dtype", list(_cases()))
def test_matches_cpu_kernel_and_reference(emu, k, name, reset, mode, dtype):
    """Case k also picks the surrogate, output_mem, row cotangents and N."""
    _need_cpu()
    fam = FAMILIES[name]
    sg = list(SURROGATES)[k % len(SURROGATES)]
    output_mem = ("last", "all")[(k // 2) % 2]
    rows = k % 3 == 0
    n = (33, 500, 1)[k % 3]
    x, states, params, cot = make_case(fam, dtype, 23, n, k, "neuron", output_mem)
    if rows:  # a .sum() loss's cotangents: the same row at every step
        cot = [mx.broadcast_to(c[:1], c.shape) if c.shape == x.shape else c for c in cot]
    kw = dict(reset_kw(fam, reset), spike_grad=SURROGATES[sg], output_mem=output_mem, **MODES[name][mode])
    what = f"[{sg}, mem={output_mem}, rows={rows}, N={n}] "
    got = run_emulated(emu, fam, x, states, params, cot, rows=rows, **kw)
    check_against_cpu(got, run_cpu(fam, x, states, params, cot, **kw), dtype, what,
                      bitwise_grads=sg not in EXP_SURROGATES)
    check_against_reference(got, run_reference(fam, x, states, params, cot, **kw), dtype, what)


@pytest.mark.parametrize("detach", [False, True], ids=["", "detach"])
@pytest.mark.parametrize("sg", list(SURROGATES))
@pytest.mark.parametrize("name", list(FAMILIES))
def test_every_surrogate(emu, name, sg, detach):
    """Every surrogate (with and without detach_reset where the op has it)
    over every mode of every family, float32, against the reference."""
    fam = FAMILIES[name]
    for mode, opts in MODES[name].items():
        x, states, params, cot = make_case(fam, "float32", 17, 33, 7 + mode, "neuron")
        kw = dict(reset_kw(fam, "subtract"), spike_grad=SURROGATES[sg], **opts)
        if detach:
            if name != "leaky":
                continue  # only Leaky's op takes detach_reset
            kw["detach_reset"] = True
        got = run_emulated(emu, fam, x, states, params, cot, **kw)
        want = run_reference(fam, x, states, params, cot, **kw)
        for a, b in zip(got[0], want[0]):
            assert exact(a, b), f"[{MODE_NAMES[mode]}] outputs differ from the reference"
        check_against_reference(got, want, "float32", f"[{MODE_NAMES[mode]}] ")


@pytest.mark.parametrize("form", ["feature", "scalar"])
@pytest.mark.parametrize("name", list(FAMILIES))
def test_shared_parameters_equal_cpu_kernel(emu, name, form):
    """Per-feature and scalar parameters (p[i % P]) and no initial state:
    float32 outputs and every gradient equal the CPU kernel's bits (both sum
    the same per-neuron partials with the same mx.sum)."""
    _need_cpu()
    fam = FAMILIES[name]
    x, states, params, cot = make_case(fam, "float32", 31, 500, 3, form)
    got = run_emulated(emu, fam, x, {}, params, cot[:1] + [mx.zeros_like(c) for c in cot[1:]])
    want = run_cpu(fam, x, {}, params, cot[:1] + [mx.zeros_like(c) for c in cot[1:]])
    check_against_cpu(got, want, "float32", f"[{form}] ")
    for key in want[1]:
        assert exact(got[1][key], want[1][key]), f"[{form}] d{key} differs from the CPU kernel"


@pytest.mark.parametrize("name", list(FAMILIES))
def test_row_cotangents_equal_dense_ones(emu, name):
    """A cotangent passed as one row read at every step gives bitwise the
    gradients of the same values laid out over all T steps."""
    fam = FAMILIES[name]
    x, states, params, cot = make_case(fam, "float32", 19, 33, 21, "neuron", "all")
    cot = [mx.broadcast_to(c[:1], c.shape) for c in cot]
    got = run_emulated(emu, fam, x, states, params, cot, rows=True, output_mem="all")
    want = run_emulated(emu, fam, x, states, params, cot, output_mem="all")
    for key in want[1]:
        assert exact(got[1][key], want[1][key]), f"d{key} differs"


@pytest.mark.parametrize("name", list(FAMILIES))
def test_kernel_states_given_directly(emu, name):
    """`fused` itself, with the kernel's own inputs rather than the op's:
    every state, carried-only ones included (ALIF's previous spike, which
    the op makes from mem and adapt, is given here as 0/1 values), every
    reset and mode, mem_all alternating. Float32 outputs (spk and the output
    states only) and every gradient (dx, each state's dstate0, the summed
    parameter partials) are the CPU kernel's bits."""
    _need_cpu()
    fam = FAMILIES[name]
    g = fs.surrogate.triangular()  # no exp: bitwise on both sides
    for k, (reset, mode) in enumerate(itertools.product(fam.resets, fam.modes)):
        mem_all = k % 2 == 0
        rng = np.random.default_rng(100 + 10 * fam.id + k)
        x, _, params, cot = make_case(fam, "float32", 21, 33, 50 + 10 * fam.id + k, "neuron",
                                      "all" if mem_all else "last")
        S = x.shape[1:]
        states = [mx.array(initial_state(fam, s, S, rng)) for s in fam.states]
        kparams = fam.kernel_params(types.SimpleNamespace(**params))  # Alpha's derived tau too
        kw = dict(reset=RESETS[reset], mode=mode, detach=False, surrogate_id=g.kernel_id, surrogate_a=g.a,
                  surrogate_b=g.b, mem_all=mem_all)
        ns = len(states)

        def call(ext):
            return lambda xv, *sp: ext.fused(fam.id, xv, list(sp[:ns]), list(sp[ns:]), **kw)

        primals = [x, *states, *kparams]
        got = mx.vjp(call(Emulated(emu)), primals, cot)
        with mx.stream(mx.cpu):
            want = mx.vjp(call(_backend.ext), primals, cot)
        mx.eval(got, want)
        what = f"[{reset}, {MODE_NAMES[mode]}, mem_all={mem_all}]"
        assert len(got[0]) == len(want[0]) == 1 + fam.n_outputs, what
        for j, (a, b) in enumerate(zip(got[0], want[0])):
            assert a.shape == b.shape and exact(a, b), f"{what} output {j} differs"
        names = ["x", *fam.states, *fam.params, *(n for n, _ in fam.derived)]
        for key, a, b in zip(names, got[1], want[1]):
            assert a.shape == b.shape and exact(a, b), f"{what} d{key} differs from the CPU kernel"
            assert np.isfinite(np.array(a)).all(), f"{what} d{key}"


@pytest.mark.parametrize("order,max_threads", [(1, 1024), (2, 32), (0, 1), (2, 7)],
                         ids=["reversed", "shuffled-32", "groups-of-1", "shuffled-7"])
def test_launch_order_and_group_size_do_not_matter(emu, order, max_threads):
    """Threadgroups in any order and size, partial last groups: one thread
    per neuron with nothing shared gives the same bits (Synaptic, immediate:
    two states, two saves)."""
    fam = FAMILIES["synaptic"]
    kw = dict(reset_mechanism="zero", output_mem="all", **MODES["synaptic"][1])
    x, states, params, cot = make_case(fam, "float32", 9, 500, 5, "neuron", "all")
    base = run_emulated(emu, fam, x, states, params, cot, **kw)
    other = run_emulated(emu, fam, x, states, params, cot, launch=dict(order=order, max_threads=max_threads),
                         **kw)
    for a, b in zip(base[0], other[0]):
        assert exact(a, b)
    for key in base[1]:
        assert exact(base[1][key], other[1][key]), key


@pytest.mark.parametrize("name", list(FAMILIES))
def test_inference_binds_no_saved_state(emu, name):
    """Outside mx.grad the forward writes no saves: those arguments are
    compiled out and the runner binds nothing there."""
    from metal_family import emulated
    fam = FAMILIES[name]
    x, states, params, _ = make_case(fam, "float16", 20, 33, 2, "neuron")
    with emulated(emu) as e:
        got = getattr(fs.ops, name)(x, **states, **params, backend="fused")
        mx.eval(got)
    assert [c[0] for c in e.calls] == ["fwd"] and e.calls[0][1]["save"] is False
    want = getattr(fs.ops, name)(x, **states, **params, backend="reference")
    assert len(got) == len(want) == 1 + fam.n_outputs
    for a, b in zip(got, want):
        assert exact(a, b)


def test_inputs_exactly_on_threshold(emu):
    """Leaky on quarter steps with beta = 0.5 and threshold = 1: every sum is
    exact in all three dtypes, so membranes land on the threshold again and
    again, where snnTorch's strict `>` and same_step's `>=` part."""
    fam = FAMILIES["leaky"]
    rng = np.random.default_rng(3)
    T, S = 40, (4, 33)
    for dtype, (mode, opts) in itertools.product(DTYPES, MODES["leaky"].items()):
        x = mx.array(rng.integers(-2, 6, (T, *S)) * 0.25, dtype=mx.float32).astype(DTYPES[dtype])
        states = {"mem": mx.array(rng.integers(0, 5, S) * 0.25, dtype=mx.float32)}
        params = {"beta": mx.full(S, 0.5), "threshold": mx.full(S, 1.0)}
        cot = [mx.array(rng.normal(size=x.shape).astype(np.float32)).astype(x.dtype) for _ in range(2)]
        kw = dict(output_mem="all", **opts)
        got = run_emulated(emu, fam, x, states, params, cot, **kw)
        want = run_reference(fam, x, states, params, cot, **kw)
        for a, b in zip(got[0], want[0]):
            assert exact(a, b), (dtype, mode)
        check_against_reference(got, want, dtype, f"[{dtype}, {MODE_NAMES[mode]}] ")
        if mode == 0:
            assert int(mx.sum(want[0][1] == 1.0).item()) >= 10  # really on threshold


def test_subnormal_membranes_if_the_gpu_flushes_them(emu):
    """Apple GPUs reportedly flush float32 subnormals to zero even in safe
    math mode (unverified). Emulating that (FTZ/DAZ) on Leaky membranes that
    decay through the subnormal range: spikes are unchanged, and the
    membranes are the reference's with values below 2^-126 read as zero."""
    import platform
    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("FTZ/DAZ emulation is x86 only")
    from metal_family import emulated
    T, S = 200, (33,)
    x = mx.zeros((T, *S)).at[0].add(mx.linspace(0.1, 0.9, S[0]))
    mem = mx.full(S, 3e-37)
    kw = dict(beta=mx.array(0.5), threshold=mx.array(1.0), output_mem="all")
    with emulated(emu, ftz=True):
        spk, m = fs.ops.leaky(x, mem, backend="fused", **kw)
        mx.eval(spk, m)
    rspk, rm = fs.ops.leaky(x, mem, backend="reference", **kw)
    rm = np.array(rm)
    assert ((rm != 0) & (np.abs(rm) < 2.0 ** -126)).sum() > 100  # the reference does go subnormal
    assert exact(spk, rspk)
    assert np.array_equal(np.array(m), np.where(np.abs(rm) < 2.0 ** -126, 0.0, rm))

"""The Leaky Metal kernels, run in the emulator (metal_emu), against the
pure-MLX reference on the cases the CPU kernel is tested on: every reset x
convention x dtype, T = 1 and 63, N = 1, 31, 33, 500 (grids that are not a
multiple of the threadgroup), scalar / per-feature / per-neuron parameters,
inputs exactly on threshold, every surrogate; plus bit-for-bit agreement with
the CPU kernel, which compiles the same step header.

Float32 spikes and membranes must be identical; gradients (x, mem, beta,
threshold, with random cotangents on both outputs) within relative RMS 1e-5.

Parameter gradients are compared per neuron, which is what the backward
kernel writes (sums over T); the op then sums neurons that share a parameter
with mx.sum, which the reference's broadcast does too. A shared parameter's
gradient is often a sum of thousands of O(1) terms that cancel: one case here
gives dthreshold = 0.00818 from 1953 terms, where two float32 summation
orders differ by 2.7e-6 (3e-4 relative) with neither being wrong, so its
relative error would measure summation order, not the kernel.
"""

from __future__ import annotations

import itertools

import mlx.core as mx
import numpy as np
import pytest

import flashsnn as fs
from metal_leaky import (CONVENTIONS, DTYPES, NEURONS, RESETS, SURROGATES, check, cot_mem_for,
                         cpu_kernel_leaky, emulated_leaky, exact, make_case, per_neuron,
                         reference_leaky, rel_rms)

def _compare(emu, x, mem, beta, th, cot_spk, cot_mem, dtype, what="", **kw):
    got = emulated_leaky(emu, x, mem, beta, th, cot_spk, cot_mem, **kw)
    S = x.shape[1:]
    for key, p in (("mem", mem), ("beta", beta), ("threshold", th)):
        if p is not None:  # the op's reduction gives back the parameter's own shape
            assert got[2][key].shape == p.shape, (key, got[2][key].shape, p.shape)
    want = reference_leaky(x, per_neuron(mem, S), per_neuron(beta, S), per_neuron(th, S), cot_spk,
                           cot_mem, **kw)
    check(got, want, dtype, what)


CASES = [
    pytest.param(k, *case, id="{}-{}-{}-T{}-N{}".format(*case))
    for k, case in enumerate(itertools.product(RESETS, CONVENTIONS, DTYPES, (1, 63), NEURONS))
]


@pytest.mark.parametrize("k,reset,conv,dtype,T,n", CASES)
def test_matches_reference(emu, k, reset, conv, dtype, T, n):
    """Case k also picks the parameter form, the surrogate and output_mem, so
    that across the 216 cases each meets every reset, convention and dtype."""
    form = ("scalar", "neuron", "feature")[k % 3]
    name = list(SURROGATES)[k % len(SURROGATES)]
    output_mem = ("last", "all")[(k // 3) % 2]
    x, mem, beta, th, cot_spk, rng = make_case(reset, conv, dtype, T, n, k, form)
    cot_mem = cot_mem_for(rng, x, output_mem)
    kw = dict(reset_mechanism=reset, spike_grad=SURROGATES[name], output_mem=output_mem,
              **CONVENTIONS[conv])
    _compare(emu, x, mem, beta, th, cot_spk, cot_mem, dtype, f"[{form} params, {name}, mem={output_mem}] ",
             **kw)


@pytest.mark.parametrize("detach", [False, True], ids=["", "detach"])
@pytest.mark.parametrize("conv", list(CONVENTIONS))
@pytest.mark.parametrize("name", list(SURROGATES))
def test_every_surrogate(emu, name, conv, detach):
    x, mem, beta, th, cot_spk, rng = make_case("subtract", conv, "float32", 17, 33, 7, "neuron")
    cot_mem = cot_mem_for(rng, x, "last")
    kw = dict(spike_grad=SURROGATES[name], detach_reset=detach, **CONVENTIONS[conv])
    for reset in RESETS:
        _compare(emu, x, mem, beta, th, cot_spk, cot_mem, "float32", f"[{reset}] ", reset_mechanism=reset,
                 **kw)


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("conv", list(CONVENTIONS))
@pytest.mark.parametrize("reset", RESETS)
def test_inputs_exactly_on_threshold(emu, reset, conv, dtype):
    """Quarter steps with beta = 0.5 and threshold = 1: every product and sum
    is exact in all three dtypes, so membranes land exactly on the threshold
    again and again, where snnTorch's strict `>` and same_step's `>=` part."""
    rng = np.random.default_rng(3)
    T, S = 40, (4, 33)
    x = mx.array(rng.integers(-2, 6, (T, *S)) * 0.25, dtype=mx.float32).astype(DTYPES[dtype])
    mem = mx.array(rng.integers(0, 5, S) * 0.25, dtype=mx.float32)
    beta, th = mx.array(0.5), mx.array(1.0)
    cot_spk = mx.array(rng.normal(size=x.shape).astype(np.float32)).astype(x.dtype)
    kw = dict(reset_mechanism=reset, output_mem="all", **CONVENTIONS[conv])
    cot_mem = cot_mem_for(rng, x, "all")
    _compare(emu, x, mem, beta, th, cot_spk, cot_mem, dtype, **kw)
    if conv == "delayed":  # the returned membrane is h: the case really sits on threshold
        spk, m = fs.reference.leaky(x, mem, beta=beta, threshold=th, **kw)
        assert int(mx.sum(m == 1.0).item()) >= 10


@pytest.mark.parametrize("conv", list(CONVENTIONS))
@pytest.mark.parametrize("reset", RESETS)
def test_bitwise_equal_to_cpu_kernel(emu, reset, conv):
    """The CPU kernel and the Metal kernel compile the same step functions
    in the same order, so in float32 every output and gradient is the same
    bit pattern (the partial sums go through the same mx.sum). Except
    through exp: the CPU kernel has its own (src/step/common.h, exp_cpu),
    the shim's metal::precise::exp is libm's, so sigmoid's gradients are held
    to relative RMS 1e-6."""
    why = fs.fused_unavailable_reason(mx.Device(mx.cpu))
    if why:
        pytest.skip(f"no CPU kernel: {why}")
    for k, name in enumerate(("atan", "sigmoid", "triangular")):
        x, mem, beta, th, cot_spk, rng = make_case(reset, conv, "float32", 63, 500, 11 + k, "feature")
        cot_mem = cot_mem_for(rng, x, "last")
        kw = dict(reset_mechanism=reset, spike_grad=SURROGATES[name], **CONVENTIONS[conv])
        got = emulated_leaky(emu, x, mem, beta, th, cot_spk, cot_mem, **kw)
        want = cpu_kernel_leaky(x, mem, beta, th, cot_spk, cot_mem, **kw)
        assert exact(got[0], want[0]) and exact(got[1], want[1])
        for key in want[2]:
            err, mxabs = rel_rms(got[2][key], want[2][key])
            ok = err <= 1e-6 if name == "sigmoid" else exact(got[2][key], want[2][key])
            assert ok, f"[{name}] d{key}: rel RMS {err:.3g}, max abs {mxabs:.3g}"


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("output_mem", ["last", "all"])
def test_row_cotangents_equal_dense_ones(emu, dtype, output_mem):
    """A cotangent that is one row read at every step (a .sum() loss's, which
    the op passes without materializing it) gives bitwise the gradients of
    the same values laid out over all T steps."""
    for k, conv in enumerate(CONVENTIONS):
        x, mem, beta, th, _, rng = make_case("subtract", conv, dtype, 40, 33, 21 + k, "feature")
        row = lambda: mx.array(rng.normal(size=x.shape[1:]).astype(np.float32)).astype(x.dtype)
        cot_spk = mx.broadcast_to(row(), x.shape)
        cot_mem = mx.broadcast_to(row(), x.shape) if output_mem == "all" else row()
        kw = dict(output_mem=output_mem, **CONVENTIONS[conv])
        got = emulated_leaky(emu, x, mem, beta, th, cot_spk, cot_mem, rows=True, **kw)
        want = emulated_leaky(emu, x, mem, beta, th, cot_spk, cot_mem, **kw)
        for key in want[2]:
            assert exact(got[2][key], want[2][key]), f"[{conv}] d{key} differs"


@pytest.mark.parametrize("order,max_threads", [(1, 1024), (2, 32), (0, 1), (2, 7)],
                         ids=["reversed", "shuffled-32", "groups-of-1", "shuffled-7"])
def test_launch_order_and_group_size_do_not_matter(emu, order, max_threads):
    """Threadgroups in any order, with any size, and partial last groups:
    one thread per neuron with nothing shared gives the same bits."""
    x, mem, beta, th, cot_spk, rng = make_case("zero", "immediate", "float32", 9, 500, 5, "neuron")
    cot_mem = cot_mem_for(rng, x, "all")
    kw = dict(reset_mechanism="zero", reset_delay=False, output_mem="all")
    base = emulated_leaky(emu, x, mem, beta, th, cot_spk, cot_mem, **kw)
    other = emulated_leaky(emu, x, mem, beta, th, cot_spk, cot_mem, order=order, max_threads=max_threads, **kw)
    assert exact(base[0], other[0]) and exact(base[1], other[1])
    for key in base[2]:
        assert exact(base[2][key], other[2][key]), key


@pytest.mark.parametrize("output_mem", ["last", "all"])
@pytest.mark.parametrize("conv", list(CONVENTIONS))
def test_inference_forward_binds_no_saved_state(emu, conv, output_mem):
    """Outside mx.grad the forward writes no h / u: those arguments are
    compiled out (function constants) and the runner binds nothing there."""
    x, mem, beta, th, cot_spk, rng = make_case("subtract", conv, "float16", 20, 33, 2, "neuron")
    kw = dict(output_mem=output_mem, **CONVENTIONS[conv])
    spk, m, _, _ = emulated_leaky(emu, x, mem, beta, th, None, None, save=False, **kw)
    rspk, rm = fs.reference.leaky(x, mem, beta=beta, threshold=th, **kw)
    assert exact(spk, rspk) and exact(m, rm)


def test_four_dimensional_input_with_broadcast_parameters(emu):
    """[T, 2, 3, 5] with beta per feature [5], threshold [3, 5], mem [2, 3, 5]."""
    rng = np.random.default_rng(9)
    x = mx.array(rng.normal(0.4, 0.7, (12, 2, 3, 5)).astype(np.float32))
    beta = mx.array(rng.uniform(0.3, 1.0, (5,)).astype(np.float32))
    th = mx.array(rng.uniform(0.7, 1.3, (3, 5)).astype(np.float32))
    mem = mx.array(rng.uniform(0, 1, (2, 3, 5)).astype(np.float32))
    cot_spk = mx.array(rng.normal(size=x.shape).astype(np.float32))
    cot_mem = cot_mem_for(rng, x, "last")
    _compare(emu, x, mem, beta, th, cot_spk, cot_mem, "float32")


def test_subnormal_membranes_if_the_gpu_flushes_them(emu):
    """Apple GPUs reportedly flush float32 subnormals to zero even in safe
    math mode (unverified). Emulating that (FTZ/DAZ) on membranes that decay
    through the subnormal range: spikes are unchanged, and the membranes are
    the reference's with values below 2^-126 read as zero."""
    import platform
    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("FTZ/DAZ emulation is x86 only")
    T, S = 200, (33,)
    x = mx.zeros((T, *S)).at[0].add(mx.linspace(0.1, 0.9, S[0]))
    mem = mx.full(S, 3e-37)
    beta, th = mx.array(0.5), mx.array(1.0)
    cot_spk, cot_mem = mx.ones(x.shape), mx.ones(x.shape)
    kw = dict(output_mem="all")
    spk, m, *_ = emulated_leaky(emu, x, mem, beta, th, cot_spk, cot_mem, ftz=True, **kw)
    rspk, rm = fs.reference.leaky(x, mem, beta=beta, threshold=th, **kw)
    rm = np.array(rm)
    assert ((rm != 0) & (np.abs(rm) < 2.0 ** -126)).sum() > 100  # the reference does go subnormal
    assert exact(spk, rspk)
    assert np.array_equal(np.array(m), np.where(np.abs(rm) < 2.0 ** -126, 0.0, rm))

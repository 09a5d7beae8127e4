"""The Metal kernels on a Metal device: flashsnn built against MLX's Metal
backend, on macOS. Every kernel's pipeline is created and run, forward and
backward, in every specialization the op makes (saved state or not, membrane
last or all, every surrogate, detach), against the pure-MLX reference on the
CPU. Skipped elsewhere; on Linux the emulator tests stand in for these
(docs/metal.md says what each proves).

On GitHub's hosted runners the device is Apple's paravirtual GPU: enough to
prove that every kernel compiles, loads and runs, not a measure of Apple
hardware numerics (METAL.md section 2).
"""

from __future__ import annotations

import itertools

import mlx.core as mx
import pytest

import flashsnn as fs
from metal_leaky import (CONVENTIONS, DTYPES, RESETS, SURROGATES, check, cot_mem_for, exact, make_case,
                         per_neuron, reference_leaky)


def _why_not() -> str | None:
    if not mx.metal.is_available():
        return "no Metal device (the emulator tests cover the kernels off macOS)"
    if fs.gpu_backend() != "metal":
        return f"flashsnn was built with GPU backend {fs.gpu_backend()!r}, not against MLX's Metal build"
    return None


pytestmark = pytest.mark.skipif(_why_not() is not None, reason=str(_why_not()))


def gpu_leaky(x, mem, beta, threshold, cot_spk, cot_mem, **kw):
    """fs.ops.leaky with backend='fused' on the GPU, and its mx.vjp; the
    gradients of per-neuron parameters are per neuron, like the partials
    check() compares."""
    primals = [x, beta, threshold] + ([mem] if mem is not None else [])
    names = ["x", "beta", "threshold"] + (["mem"] if mem is not None else [])

    def f(x, beta, threshold, *m):
        return fs.ops.leaky(x, m[0] if m else None, beta=beta, threshold=threshold, backend="fused", **kw)

    with mx.stream(mx.gpu):
        (spk, mem_out), vjps = mx.vjp(f, primals, [cot_spk, cot_mem])
        mx.eval(spk, mem_out, vjps)
    grads = dict(zip(names, vjps))
    return spk, mem_out, grads, grads


@pytest.mark.parametrize("output_mem", ["last", "all"])
@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("conv", list(CONVENTIONS))
@pytest.mark.parametrize("reset", RESETS)
def test_every_kernel_on_the_gpu(reset, conv, dtype, output_mem):
    x, mem, beta, th, cot_spk, rng = make_case(reset, conv, dtype, 63, 500, 1, "neuron")
    S = x.shape[1:]
    mem, beta, th = (per_neuron(p, S) for p in (mem, beta, th))
    cot_mem = cot_mem_for(rng, x, output_mem)
    kw = dict(reset_mechanism=reset, output_mem=output_mem, **CONVENTIONS[conv])
    got = gpu_leaky(x, mem, beta, th, cot_spk, cot_mem, **kw)
    with mx.stream(mx.cpu):
        want = reference_leaky(x, mem, beta, th, cot_spk, cot_mem, **kw)
    check(got, want, dtype, f"[{mx.device_info(mx.gpu).get('device_name', 'Metal')}] ")


@pytest.mark.parametrize("detach", [False, True], ids=["", "detach"])
@pytest.mark.parametrize("name", list(SURROGATES))
def test_every_surrogate_on_the_gpu(name, detach):
    for reset, conv in itertools.product(RESETS, CONVENTIONS):
        x, mem, beta, th, cot_spk, rng = make_case(reset, conv, "float32", 17, 33, 7, "neuron")
        cot_mem = cot_mem_for(rng, x, "last")
        kw = dict(reset_mechanism=reset, spike_grad=SURROGATES[name], detach_reset=detach, **CONVENTIONS[conv])
        got = gpu_leaky(x, mem, beta, th, cot_spk, cot_mem, **kw)
        with mx.stream(mx.cpu):
            want = reference_leaky(x, mem, beta, th, cot_spk, cot_mem, **kw)
        check(got, want, "float32", f"[{reset}, {conv}] ")


@pytest.mark.parametrize("form", ["scalar", "feature"])
@pytest.mark.parametrize("dtype", list(DTYPES))
def test_inference_with_broadcast_parameters_on_the_gpu(dtype, form):
    """Outside mx.grad: no saved state (the h / u arguments compiled out),
    parameters read through p[i % P]."""
    for reset, conv in itertools.product(RESETS, CONVENTIONS):
        x, mem, beta, th, _, _ = make_case(reset, conv, dtype, 31, 500, 3, form)
        kw = dict(reset_mechanism=reset, **CONVENTIONS[conv])
        with mx.stream(mx.gpu):
            spk, m = fs.ops.leaky(x, mem, beta=beta, threshold=th, backend="fused", **kw)
            mx.eval(spk, m)
        with mx.stream(mx.cpu):
            rspk, rm = fs.reference.leaky(x, mem, beta=beta, threshold=th, **kw)
        assert exact(spk, rspk) and exact(m, rm), (reset, conv)

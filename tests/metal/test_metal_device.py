"""The Metal kernels on a Metal device: flashsnn built against MLX's Metal
backend, on macOS. Every family of the table, each of its resets and modes,
every dtype, forward and backward (saved state or not, output_mem last or all),
against the pure-MLX reference on the CPU. Skipped elsewhere; on Linux the
emulator tests stand in for these (docs/metal.md says what each proves).
Nothing here has run yet: no Apple hardware has been available.
"""

from __future__ import annotations

import itertools

import mlx.core as mx
import pytest

import flashsnn as fs
from metal_family import (DTYPES, FAMILIES, SURROGATES, check_against_reference, exact, make_case,
                          mode_options, op, reset_kw, run_reference)


def _why_not() -> str | None:
    if not mx.metal.is_available():
        return "no Metal device (the emulator tests cover the kernels off macOS)"
    if fs.gpu_backend() != "metal":
        return f"flashsnn was built with GPU backend {fs.gpu_backend()!r}, not against MLX's Metal build"
    return None


pytestmark = pytest.mark.skipif(_why_not() is not None, reason=str(_why_not()))


def _cases():
    for fam in FAMILIES.values():
        for reset, mode, dtype, output_mem in itertools.product(fam.resets, fam.modes, DTYPES, ("last", "all")):
            yield pytest.param(fam.name, reset, mode, dtype, output_mem,
                               id=f"{fam.name}-{reset}-{mode}-{dtype}-{output_mem}")


@pytest.mark.parametrize("name,reset,mode,dtype,output_mem", list(_cases()))
def test_every_kernel_on_the_gpu(name, reset, mode, dtype, output_mem):
    fam = FAMILIES[name]
    x, states, params, cot = make_case(fam, dtype, 63, 500, 1, "neuron", output_mem)
    kw = dict(reset_kw(fam, reset), output_mem=output_mem, **mode_options(fam)[mode])
    with mx.stream(mx.gpu):
        got = op(fam, "fused", x, states, params, cot, **kw)
    with mx.stream(mx.cpu):
        want = run_reference(fam, x, states, params, cot, **kw)
    for a, b in zip(got[0], want[0]):
        assert exact(a, b)
    check_against_reference(got, want, dtype, f"[{mx.device_info(mx.gpu).get('device_name', 'Metal')}] ")


@pytest.mark.parametrize("sg", list(SURROGATES))
@pytest.mark.parametrize("name", list(FAMILIES))
def test_every_surrogate_on_the_gpu(name, sg):
    fam = FAMILIES[name]
    for mode, opts in mode_options(fam).items():
        x, states, params, cot = make_case(fam, "float32", 17, 33, 7, "neuron")
        kw = dict(spike_grad=SURROGATES[sg], **opts)
        with mx.stream(mx.gpu):
            got = op(fam, "fused", x, states, params, cot, **kw)
        with mx.stream(mx.cpu):
            want = run_reference(fam, x, states, params, cot, **kw)
        check_against_reference(got, want, "float32", f"[mode {mode}] ")


@pytest.mark.parametrize("form", ["scalar", "feature"])
@pytest.mark.parametrize("name", list(FAMILIES))
def test_inference_with_broadcast_parameters_on_the_gpu(name, form):
    """Outside mx.grad: no saves (their arguments compiled out), parameters
    read through p[i % P]."""
    fam = FAMILIES[name]
    x, states, params, _ = make_case(fam, "float16", 31, 500, 3, form)
    with mx.stream(mx.gpu):
        got = getattr(fs.ops, name)(x, **states, **params, backend="fused")
        mx.eval(got)
    with mx.stream(mx.cpu):
        want = getattr(fs.ops, name)(x, **states, **params, backend="reference")
    for a, b in zip(got, want):
        assert exact(a, b)

"""Every fused family of the table (flashsnn.ops._table.FAMILIES) against its
pure-MLX reference, generated from the table: a family added there is tested
here with no new test code.

For each family, reset, mode option and output_mem: float32 spikes and states
bitwise equal to the reference (both compute the same float32 operations in
the same order), and the gradients of x, of every initial state and of every
parameter (per-neuron, random) within relative RMS 1e-5 under random
cotangents on every output; every kernel surrogate; 16-bit inputs; a .sum()
loss (row cotangents) bitwise equal to the same cotangent materialized; the
forward that did not save recomputing; mx.vmap; the table against the
extension's own list. The mutation tests at the end feed each check a wrong
answer and require it to fail. snnTorch's own classes are compared with the
fused layers in tests/nn/test_nn_vs_snntorch.py.
"""

from __future__ import annotations

import itertools
import zlib

import mlx.core as mx
import numpy as np
import pytest

import flashsnn as fs
from flashsnn.ops._table import FAMILIES, RESETS
from helpers import SURROGATES as KERNEL_SURROGATES, np32, rel_rms

pytestmark = pytest.mark.skipif(fs.fused_unavailable_reason() is not None,
                                reason=f"no fused kernel: {fs.fused_unavailable_reason()}")

GRAD_TOL = {mx.float32: 1e-5, mx.float16: 2e-3, mx.bfloat16: 1e-2}


def option_sets(fam) -> list[dict]:
    """Every combination of the family's options that its op accepts."""
    names = list(fam.options)
    out = []
    for values in itertools.product(*(fam.options[n] for n in names)):
        kw = dict(zip(names, values))
        if kw.get("convention") == "same_step":
            if not kw.get("reset_delay", True):
                continue  # snnTorch's option only
            out.append({**kw, "detach_reset": True})
        out.append(kw)
    return out


def reset_kw(fam, reset) -> dict:
    """The reset option, for the families whose op takes one."""
    return {"reset_mechanism": reset} if len(fam.resets) > 1 else {}


CASES = [(name, reset, kw) for name, fam in FAMILIES.items() for reset in fam.resets
         for kw in option_sets(fam)]
CASE_IDS = [f"{n}-{r}-" + "-".join(f"{k}={v}" for k, v in kw.items()) for n, r, kw in CASES]


def rng_for(*key):
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def initial_state(fam, name, S, rng):
    if name == "spk":  # a fed-back spike
        return (rng.uniform(size=S) < 0.3).astype(np.float32)
    if name in fam.sample:
        lo, hi = fam.sample[name]
        return rng.uniform(lo, hi, S).astype(np.float32)
    return (rng.normal(size=S) * 0.5).astype(np.float32)


def make(name, T, S, rng, dtype=mx.float32, per_neuron=True):
    """x, initial states the op takes (dict) and parameters (dict) for
    family `name`."""
    fam = FAMILIES[name]
    mean, std = fam.sample.get("x", (0.35, 0.8))
    x = mx.array((rng.normal(size=(T, *S)) * std + mean).astype(np.float32)).astype(dtype)
    states = {s: mx.array(initial_state(fam, s, S, rng)) for s in fam.arg_states}
    params = {}
    for p in fam.params:
        lo, hi = fam.sample[p]
        v = rng.uniform(lo, hi, S[-1:]) if per_neuron else np.array((lo + hi) / 2)
        params[p] = mx.array(v.astype(np.float32))
    return x, states, params


def run_both(name, x, states, params, cots, **kw):
    """(outputs, gradients) of the fused op and of the reference, under
    mx.vjp with cotangents `cots` on every output; gradients of x, every
    state and every parameter, in the table's order."""
    op = getattr(fs.ops, name)
    sn, pn = list(states), list(params)

    def call(backend):
        def f(x_, *rest):
            st = dict(zip(sn, rest[:len(sn)]))
            pr = dict(zip(pn, rest[len(sn):]))
            return op(x_, **st, **pr, **kw, backend=backend)
        return mx.vjp(f, [x, *states.values(), *params.values()], cots)

    return call("fused"), call("reference")


def cotangents_for(outs, rng):
    return [mx.array(rng.normal(size=o.shape).astype(np.float32)).astype(o.dtype) for o in outs]


def check_forward(got, want, what):
    for k, (a, b) in enumerate(zip(got, want)):
        np.testing.assert_array_equal(np32(a), np32(b), err_msg=f"{what}: output {k}")


def check_grads(got, want, tol, what):
    for k, (a, b) in enumerate(zip(got, want)):
        assert a.shape == b.shape, f"{what}: gradient {k} shape {a.shape} != {b.shape}"
        err = rel_rms(np32(a), np32(b))
        assert err <= tol, f"{what}: gradient {k} relative RMS {err:.2e} > {tol:.0e}"


def reference_outputs(name, x, states, params, **kw):
    return getattr(fs.ops, name)(x, **states, **params, **kw, backend="reference")


# ---------------------------------------------------------------------------

def test_table_matches_the_extension():
    """The Python table and src/step/families.h list the same families, in
    the same id order, with the same states and parameters."""
    ext = fs._backend.ext.families()
    assert [f[0] for f in ext] == [f.name for f in sorted(FAMILIES.values(), key=lambda f: f.id)]
    for name, states, params, _, resets, modes, saves, outputs in ext:
        fam = FAMILIES[name]
        assert tuple(states) == fam.states, name
        assert outputs == fam.n_outputs, name
        assert tuple(params) == fam.params + tuple(n for n, _ in fam.derived), name
        assert resets == sum(1 << RESETS[r] for r in fam.resets), name
        assert modes == sum(1 << m for m in fam.modes), name
        assert all(1 <= saves[m] <= 3 for m in fam.modes), name


@pytest.mark.parametrize("output_mem", ["last", "all"])
@pytest.mark.parametrize("name,reset,kw", CASES, ids=CASE_IDS)
def test_fused_equals_reference(name, reset, kw, output_mem):
    rng = rng_for("families", name, reset, kw, output_mem)
    x, states, params = make(name, 23, (3, 19), rng)
    kw = dict(kw, **reset_kw(FAMILIES[name], reset), output_mem=output_mem)
    outs = reference_outputs(name, x, states, params, **kw)
    spk = np.array(outs[0])
    assert 0 < spk.sum() < spk.size, "degenerate spike train: the test would prove little"
    (fo, fg), (ro, rg) = run_both(name, x, states, params, cotangents_for(outs, rng), **kw)
    what = f"{name} {reset} {kw}"
    check_forward(fo, ro, what)
    check_grads(fg, rg, GRAD_TOL[mx.float32], what)


@pytest.mark.parametrize("surrogate", list(KERNEL_SURROGATES))
@pytest.mark.parametrize("name", list(FAMILIES))
def test_every_kernel_surrogate(name, surrogate):
    rng = rng_for("surrogates", name, surrogate)
    x, states, params = make(name, 17, (2, 11), rng)
    kw = dict(spike_grad=KERNEL_SURROGATES[surrogate], output_mem="all")
    outs = reference_outputs(name, x, states, params, **kw)
    (fo, fg), (ro, rg) = run_both(name, x, states, params, cotangents_for(outs, rng), **kw)
    check_forward(fo, ro, f"{name} {surrogate}")
    check_grads(fg, rg, GRAD_TOL[mx.float32], f"{name} {surrogate}")


@pytest.mark.parametrize("dtype", [mx.float16, mx.bfloat16], ids=["float16", "bfloat16"])
@pytest.mark.parametrize("name", list(FAMILIES))
def test_16_bit_inputs(name, dtype):
    rng = rng_for("dtypes", name, str(dtype))
    x, states, params = make(name, 19, (2, 13), rng, dtype=dtype, per_neuron=False)
    kw = dict(output_mem="all")
    outs = reference_outputs(name, x, states, params, **kw)
    (fo, fg), (ro, rg) = run_both(name, x, states, params, cotangents_for(outs, rng), **kw)
    for o in fo:
        assert o.dtype == dtype
    check_forward(fo, ro, f"{name} {dtype}")  # float32 steps, one rounding at the end
    check_grads(fg, rg, GRAD_TOL[dtype], f"{name} {dtype}")


@pytest.mark.parametrize("output_mem", ["last", "all"])
@pytest.mark.parametrize("name", list(FAMILIES))
def test_sum_loss_reads_rows(name, output_mem):
    """A .sum() loss reaches the kernel as one row per output (step stride
    0): bitwise the gradients of the same cotangent materialized."""
    rng = rng_for("rows", name, output_mem)
    x, states, params = make(name, 21, (3, 7), rng)
    op = getattr(fs.ops, name)
    args = [x, *states.values(), *params.values()]
    n_s = len(states)

    def f(x_, *rest):
        return op(x_, **dict(zip(states, rest[:n_s])), **dict(zip(params, rest[n_s:])),
                  output_mem=output_mem, backend="fused")

    g_row = mx.grad(lambda *a: sum(o.sum() for o in f(*a)), argnums=tuple(range(len(args))))(*args)
    outs = f(*args)
    ones = [mx.ones(o.shape, o.dtype) for o in outs]
    mx.eval(ones)  # materialized: a dense [T, *S] cotangent
    _, g_dense = mx.vjp(f, args, ones)
    for k, (a, b) in enumerate(zip(g_row, g_dense)):
        np.testing.assert_array_equal(np32(a), np32(b), err_msg=f"{name}: gradient {k}")


@pytest.mark.parametrize("name", list(FAMILIES))
def test_backward_recomputes_what_the_forward_did_not_save(name):
    fam = FAMILIES[name]
    rng = rng_for("save", name)
    x, states, params = make(name, 15, (2, 9), rng)
    ext = fs._backend.ext
    g = fs.surrogate.atan()
    prm = list(params.values()) + [f(_Args(params)) for _, f in fam.derived]
    # Every kernel state: a carried-only one the op makes (ALIF's spike) at 0.
    kstates = [states.get(n, mx.zeros(x.shape[1:])) for n in fam.states]
    n_s = len(kstates)

    def fused(save):
        def f(x_, *rest):
            return ext.fused(fam.id, x_, list(rest[:n_s]), list(rest[n_s:]), reset=0, mode=0,
                             detach=False, surrogate_id=g.kernel_id, surrogate_a=g.a,
                             surrogate_b=g.b, mem_all=True, save=save)
        args = [x, *kstates, *prm]
        outs = f(*args)
        return mx.vjp(f, args, cotangents_for(outs, rng_for("save-cot", name)))

    (o0, g0), (o1, g1) = fused(0), fused(1)
    for a, b in zip(o0 + g0, o1 + g1):
        np.testing.assert_array_equal(np32(a), np32(b))


class _Args:
    """Parameters as attributes, for a table's derived-parameter functions."""

    def __init__(self, params):
        self.__dict__.update(params)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_vmap(name):
    rng = rng_for("vmap", name)
    x, states, params = make(name, 12, (4, 2, 5), rng)  # vmapped over axis 1 of x
    op = getattr(fs.ops, name)

    def per_item(backend):
        def f(xb, *st):
            return op(xb, **dict(zip(states, st)), **params, output_mem="all", backend=backend)
        return mx.vmap(f, in_axes=(1,) + (0,) * len(states), out_axes=1)

    sts = list(states.values())
    a = per_item("fused")(x, *sts)
    b = per_item("reference")(x, *sts)
    check_forward(a, b, f"{name} vmap")
    loss = lambda fn: lambda x_, *s: sum((o * o).sum() for o in fn(x_, *s))  # noqa: E731
    ga = mx.grad(loss(per_item("fused")), argnums=tuple(range(1 + len(sts))))(x, *sts)
    gb = mx.grad(loss(per_item("reference")), argnums=tuple(range(1 + len(sts))))(x, *sts)
    check_grads(ga, gb, GRAD_TOL[mx.float32], f"{name} vmap")


# -- the checks can fail -----------------------------------------------------

@pytest.mark.parametrize("name", [n for n, f in FAMILIES.items() if len(f.resets) > 1])
def test_checks_catch_a_wrong_reset(name):
    """Each family's forward check tells the resets apart (on these inputs)."""
    rng = rng_for("mutant-reset", name)
    x, states, params = make(name, 23, (3, 19), rng)
    got = getattr(fs.ops, name)(x, **states, **params, reset_mechanism="zero",
                                output_mem="all", backend="fused")
    want = reference_outputs(name, x, states, params, reset_mechanism="subtract", output_mem="all")
    with pytest.raises(AssertionError):
        check_forward(got, want, "mutant")


@pytest.mark.parametrize("name", list(FAMILIES))
def test_checks_catch_a_wrong_surrogate(name):
    """The gradient check at 1e-5 tells two surrogates apart (the forward
    is identical, so only the backward differs)."""
    rng = rng_for("mutant-surrogate", name)
    x, states, params = make(name, 17, (2, 11), rng)
    outs = reference_outputs(name, x, states, params)
    cots = cotangents_for(outs, rng)
    (_, fg), _ = run_both(name, x, states, params, cots, spike_grad=fs.surrogate.atan(alpha=2.0))
    _, (_, rg) = run_both(name, x, states, params, cots, spike_grad=fs.surrogate.atan(alpha=2.05))
    with pytest.raises(AssertionError):
        check_grads(fg, rg, GRAD_TOL[mx.float32], "mutant")


@pytest.mark.parametrize("name", list(FAMILIES))
def test_checks_catch_a_one_ulp_parameter(name):
    """A parameter one float32 ulp off changes some state bits: the forward
    check compares bits, not values near each other."""
    rng = rng_for("mutant-ulp", name)
    x, states, params = make(name, 23, (3, 19), rng)
    p0 = FAMILIES[name].params[0]
    bumped = dict(params)
    bumped[p0] = mx.array(np.nextafter(np.array(params[p0]), np.float32(np.inf)))
    got = getattr(fs.ops, name)(x, **states, **bumped, output_mem="all", backend="fused")
    want = reference_outputs(name, x, states, params, output_mem="all")
    with pytest.raises(AssertionError):
        check_forward(got, want, "mutant")

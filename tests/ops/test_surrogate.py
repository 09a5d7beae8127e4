"""Surrogates: the Python table against the compiled one, and each kernel
formula (C++, src/step/common.h) against the reference gradient (MLX
autograd through the straight-through antiderivative) and snnTorch's."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest

import flashsnn as fs
from helpers import describe, rel_rms

ext = fs._backend.ext
needs_ext = pytest.mark.skipif(ext is None, reason=f"no extension: {fs._backend.ext_error}")

CASES = [
    fs.surrogate.atan(), fs.surrogate.atan(alpha=3.5), fs.surrogate.fast_sigmoid(),
    fs.surrogate.fast_sigmoid(slope=3), fs.surrogate.sigmoid(), fs.surrogate.sigmoid(slope=2),
    fs.surrogate.triangular(), fs.surrogate.triangular(threshold=0.3),
    fs.surrogate.straight_through(), fs.surrogate.heaviside(),
    fs.surrogate.spike_rate_escape(), fs.surrogate.spike_rate_escape(beta=0.5, slope=3),
    fs.surrogate.SFS(), fs.surrogate.SFS(slope=4, B=-0.2), fs.surrogate.LSO(),
]
V = np.concatenate([np.linspace(-3, 3, 241), [0.0, -0.0, 1.0, 1e-7, -1e-7, 50.0, -50.0]])


@needs_ext
def test_kernel_ids_match_the_compiled_table():
    names = ext.surrogate_names()
    assert {name: i for i, name in enumerate(names)} == fs.surrogate.KERNEL_IDS


def test_every_kernel_surrogate_has_a_reference():
    for name in fs.surrogate.KERNEL_IDS:
        assert name in fs.surrogate._ANTIDERIVATIVES


def reference_grad(g, v, inclusive=False):
    vv = mx.array(v.astype(np.float32))
    return np.array(mx.grad(lambda a: g.spike(a, inclusive=inclusive).sum())(vv))


@needs_ext
@pytest.mark.parametrize("g", CASES, ids=repr)
def test_kernel_formula_matches_reference_gradient(g):
    ref = reference_grad(g, V)
    spike = (V > 0).astype(np.float32)
    ker = np.array([ext.surrogate_grad(g.kernel_id, float(v), float(s), g.a, g.b)
                    for v, s in zip(V.astype(np.float32), spike)], dtype=np.float32)
    assert rel_rms(ker, ref) < 1e-6, describe(ker, ref)


@pytest.mark.parametrize("g", CASES, ids=repr)
def test_forward_is_exactly_heaviside(g):
    v = mx.array(V.astype(np.float32))
    np.testing.assert_array_equal(np.array(g(v)), (V.astype(np.float32) > 0).astype(np.float32))
    np.testing.assert_array_equal(np.array(g.spike(v, inclusive=True)),
                                  (V.astype(np.float32) >= 0).astype(np.float32))


def test_infinite_membrane_spikes_without_nan():
    v = mx.array([np.inf, -np.inf, np.nan])
    # NaN > 0 is false: no spike, as in the kernels
    assert np.array(fs.surrogate.straight_through()(v)).tolist() == [1.0, 0.0, 0.0]


def test_sigmoid_is_finite_where_snntorch_overflows():
    g = fs.surrogate.sigmoid(slope=25)
    grads = reference_grad(g, np.array([-10.0, 10.0]))
    assert np.all(np.isfinite(grads))
    if ext is not None:
        assert np.isfinite(ext.surrogate_grad(g.kernel_id, -10.0, 0.0, g.a, g.b))


def test_against_snntorch_formulas():
    torch = pytest.importorskip("torch", reason="torch is not installed")
    ss = pytest.importorskip("snntorch.surrogate", reason="snntorch is not installed")
    pairs = [(fs.surrogate.atan(), ss.atan()), (fs.surrogate.fast_sigmoid(), ss.fast_sigmoid()),
             (fs.surrogate.sigmoid(slope=4), ss.sigmoid(slope=4)),
             (fs.surrogate.triangular(), ss.triangular()),
             (fs.surrogate.straight_through_estimator(), ss.straight_through_estimator()),
             (fs.surrogate.heaviside(), ss.heaviside()),
             (fs.surrogate.spike_rate_escape(), ss.spike_rate_escape()),
             (fs.surrogate.SFS(), ss.SFS())]
    v = np.linspace(-2, 2, 81).astype(np.float32)
    for ours, theirs in pairs:
        t = torch.tensor(v, requires_grad=True)
        theirs(t).sum().backward()
        assert rel_rms(reference_grad(ours, v), t.grad.numpy()) < 1e-6, ours


def test_custom_surrogate_and_sso_run_on_the_reference():
    x = mx.random.normal((12, 5), key=mx.random.key(0)) + 0.5
    g = fs.surrogate.custom_surrogate(lambda inp, grad, out: grad * 0.5)
    d = mx.grad(lambda a: fs.ops.leaky(a, beta=0.9, spike_grad=g)[0].sum())(x)
    assert np.all(np.isfinite(np.array(d)))
    k = mx.random.key(3)
    a = mx.grad(lambda a: fs.ops.leaky(a, beta=0.9, spike_grad=fs.surrogate.SSO(key=k))[0]
                .sum())(x)
    b = mx.grad(lambda a: fs.ops.leaky(a, beta=0.9, spike_grad=fs.surrogate.SSO(key=k))[0]
                .sum())(x)
    np.testing.assert_array_equal(np.array(a), np.array(b))


@needs_ext
def test_cpu_exp_within_one_ulp():
    """The CPU kernels' own expf (src/step/common.h: exp_cpu, which GCC can
    vectorize), read through spike_rate_escape: b * exp(-a |v - 1|) with
    b = 1 and a = -1 or 1 gives exp of +-|v - 1|. Against exp in float64:
    within 1 ulp for arguments in [-86.6, 88.72] (results from 2.5e-38 to
    the largest float), 0 below, inf above, NaN for NaN."""
    sre = fs.surrogate.KERNEL_IDS["spike_rate_escape"]
    rng = np.random.default_rng(0)
    mags = np.concatenate([np.linspace(0, 110, 4001), rng.uniform(0, 90, 4000),
                           [0.5, 1e-30, 86.59, 86.61, 88.72, 88.73, np.inf]]).astype(np.float32)
    for a in (1.0, -1.0):
        v = (np.float32(1) + mags).astype(np.float32)
        arg = (-np.float32(a)) * np.abs(v - np.float32(1))  # what the kernel exponentiates
        got = np.array([ext.surrogate_grad(sre, float(x), 0.0, a, 1.0) for x in v], np.float32)
        want = np.exp(arg.astype(np.float64))
        normal = (arg >= np.float32(-86.6)) & (arg <= np.float32(88.72283935546875))
        ulp = np.spacing(want[normal].astype(np.float32)).astype(np.float64)
        err = np.abs(got[normal] - want[normal]) / ulp
        assert err.max() <= 1.0, f"a={a}: {err.max():.2f} ulp at arg {arg[normal][err.argmax()]}"
        assert np.all(got[arg < np.float32(-86.6)] == 0.0)
        assert np.all(np.isposinf(got[arg > 88.7229]))
    assert np.isnan(ext.surrogate_grad(sre, float("nan"), 0.0, 1.0, 1.0))


@needs_ext
def test_sigmoid_backward_on_the_cpu_matches_reference_over_a_wide_range():
    """The vectorized kernel loop (not the scalar binding) with the sigmoid
    surrogate, membranes from -30 to 30 around the threshold: exp's argument
    reaches -150, past where exp_cpu returns 0."""
    T, N = 3, 4096
    x = mx.array(np.linspace(-30, 30, T * N, dtype=np.float32).reshape(T, N))
    cot = mx.array(np.random.default_rng(1).normal(size=(T, N)).astype(np.float32))
    g = fs.surrogate.sigmoid(slope=5)
    grads = []
    for backend in ("fused", "reference"):
        f = lambda x_: fs.ops.leaky(x_, beta=0.5, spike_grad=g, backend=backend)[0]
        grads.append(np.array(mx.vjp(f, [x], [cot])[1][0]))
    assert rel_rms(grads[0], grads[1]) < 1e-6, describe(grads[0], grads[1])

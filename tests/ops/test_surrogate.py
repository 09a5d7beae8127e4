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

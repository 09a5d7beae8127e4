"""Non-finite values and long sums, on both paths (docs/design.md,
"Non-finite values"):

- the surrogate's slope at v = membrane - threshold is NaN where v is NaN, 0
  where v is +-inf, and the formula elsewhere, for every kernel surrogate
  (the fused kernels used to give the constant tails of triangular,
  straight_through, heaviside and LSO at +-inf and a number at NaN for five
  surrogates; the reference, 0 at NaN for all of them);
- so a NaN input makes every gradient it flows back to NaN, on both paths
  and for every fused family (the reference's stayed finite before it);
- the parameters' gradients, summed over T, stay accurate at T = 100,000
  (compensated sums; plain float32 drifted 2e-5 relative).

Expected values are hand-derived (snnTorch's formulas, float64 sums), not
taken from either path.
"""

from __future__ import annotations

import math

import mlx.core as mx
import numpy as np
import pytest

import flashsnn as fs
from flashsnn.ops._table import FAMILIES
from helpers import SURROGATES

pytestmark = pytest.mark.skipif(fs.fused_unavailable_reason() is not None,
                                reason=f"no fused kernel: {fs.fused_unavailable_reason()}")

NAN, INF = float("nan"), float("inf")
BACKENDS = ["reference", "fused"]


def slope(name: str, v: float, s: float) -> float:
    """d spike / d v of each kernel surrogate in tests/helpers.py, at a
    finite v (snnTorch's formulas, with their parameters)."""
    k = abs(v)
    return {
        "atan": lambda: 1.0 / (1 + (math.pi / 2 * 2 * v) ** 2),
        "atan_a5": lambda: 2.5 / (1 + (math.pi / 2 * 5 * v) ** 2),
        "fast_sigmoid": lambda: 1.0 / (25 * k + 1) ** 2,
        "sigmoid": lambda: 5 * math.exp(-5 * k) / (1 + math.exp(-5 * k)) ** 2,
        "triangular": lambda: 1.0 if v < 0 else -1.0,
        "straight_through": lambda: 1.0,
        "heaviside": lambda: s,
        "spike_rate_escape": lambda: 0.5 * math.exp(-2 * abs(v - 1)),
        "SFS": lambda: (1.0 / (10 * k + 1) ** 2) if v > -0.5 else 0.0,
        "LSO": lambda: 1.0 if s > 0 else 0.2,
    }[name]()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(SURROGATES))
def test_slope_at_non_finite_membranes(name, backend):
    """One step, beta 0, threshold 1: dL/dx is the slope at v = x - 1."""
    xs = [NAN, INF, -INF, 0.6, 1.4, 1.0]
    x = mx.array([xs])
    g = mx.grad(lambda x: fs.ops.leaky(x, beta=0.0, spike_grad=SURROGATES[name],
                                       backend=backend)[0].sum())(x)
    want = [NAN, 0.0, 0.0] + [slope(name, v - 1.0, float(v > 1.0)) for v in xs[3:]]
    np.testing.assert_allclose(np.array(g)[0], want, rtol=2e-6, atol=0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(SURROGATES))
def test_infinite_threshold_passes_no_gradient(name, backend):
    """threshold = +inf (a layer that never fires): v = -inf everywhere, so
    no surrogate gradient reaches x or the threshold; -inf: v = +inf, all fire."""
    x = mx.array([[0.3, -2.0, 5.0], [1.0, 0.0, -1.0]])
    for th, fired in ((INF, 0.0), (-INF, 1.0)):
        def loss(x, th_):
            spk, _ = fs.ops.leaky(x, beta=0.5, threshold=th_, reset_mechanism="none",
                                  spike_grad=SURROGATES[name], backend=backend)
            return spk.sum()
        spk, _ = fs.ops.leaky(x, beta=0.5, threshold=th, reset_mechanism="none",
                              spike_grad=SURROGATES[name], backend=backend)
        assert np.all(np.array(spk) == fired)
        gx, gth = mx.grad(loss, argnums=(0, 1))(x, mx.array(th))
        assert np.all(np.array(gx) == 0) and float(gth) == 0, (gx, gth)


@pytest.mark.parametrize("backend", BACKENDS)
def test_nan_input_reaches_every_earlier_gradient(backend):
    """A NaN at step 5 of 8: the membrane is NaN from there on, its slope NaN,
    and dL/du_{t-1} = beta dL/dh_t carries the NaN to every earlier step, as
    autograd of snnTorch's formulas does (the reference used to stop it)."""
    x = mx.full((8, 3), 0.4)
    x[5, 1] = NAN
    g = mx.grad(lambda x: fs.ops.leaky(x, beta=0.9, backend=backend)[0].sum())(x)
    g = np.array(g)
    assert np.isnan(g[:, 1]).all(), g[:, 1]
    assert np.isfinite(g[:, [0, 2]]).all()


def _family_inputs(name, T, S, seed):
    fam = FAMILIES[name]
    rng = np.random.default_rng(seed)
    mean, std = fam.sample.get("x", (0.35, 0.8))
    x = (rng.normal(size=(T, *S)) * std + mean).astype(np.float32)
    params = {}
    for p in fam.params:
        lo, hi = fam.sample[p]
        params[p] = mx.array(rng.uniform(lo, hi, S).astype(np.float32))
    return x, params


@pytest.mark.parametrize("name", list(FAMILIES))
def test_nan_input_same_gradients_on_both_paths(name):
    """Every fused family: with one NaN in x, the fused and the reference
    gradients of x and of every parameter are NaN at the same places and
    equal elsewhere."""
    x, params = _family_inputs(name, 12, (5,), seed=3)
    x[7, 2] = np.nan
    x = mx.array(x)
    names = list(params)

    def loss(backend):
        def f(x, *ps):
            out = getattr(fs.ops, name)(x, **dict(zip(names, ps)), backend=backend)
            return sum(o.sum() for o in out)
        return mx.grad(f, argnums=tuple(range(1 + len(names))))(x, *params.values())

    ref, fus = loss("reference"), loss("fused")
    for label, a, b in zip(["x"] + names, fus, ref):
        a, b = np.array(a), np.array(b)
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=f"{name} d{label}")
        assert np.isnan(a).any(), f"{name} d{label}: the NaN reached no gradient"
        ok = ~np.isnan(a)
        np.testing.assert_allclose(a[ok], b[ok], rtol=1e-4, atol=1e-6,
                                   err_msg=f"{name} d{label}")


def test_parameter_gradients_at_100000_steps():
    """T = 100,000, beta 0, reset none, threshold 2 (x < 1: nothing fires),
    loss = sum(spikes) + sum(membranes): dh_t = 1 + sg_t, so
    dL/dbeta = sum_t (1 + sg_t) u_{t-1} and dL/dthreshold = -sum_t sg_t,
    with sg_t the atan slope at x_t - 2. Summed in float64 here; the kernels'
    compensated float32 sums agree to 1e-9 - 6e-8 (plain float32
    sums: 1.1e-6 - 5.5e-6)."""
    T = 100_000
    rng = np.random.default_rng(0)
    x32 = rng.uniform(0.0, 1.0, (T, 4)).astype(np.float32)
    mem0 = np.float32(0.25)

    def loss(beta, th):
        spk, mem = fs.ops.leaky(mx.array(x32), mx.array(mem0), beta=beta, threshold=th,
                                reset_mechanism="none", output_mem="all", backend="fused")
        return spk.sum() + mem.sum()

    db, dth = mx.grad(loss, argnums=(0, 1))(mx.array([0.0] * 4), mx.array([2.0] * 4))
    v = (x32 - np.float32(2.0)).astype(np.float64)                # the kernel's v, exact
    sg = 1.0 / (1.0 + (math.pi / 2 * 2 * v) ** 2)
    u_prev = np.concatenate([np.full((1, 4), float(mem0)), x32[:-1].astype(np.float64)])
    want_b = ((1.0 + sg) * u_prev).sum(0)
    want_th = -sg.sum(0)
    for got, want in ((np.array(db), want_b), (np.array(dth), want_th)):
        rel = np.abs(got.astype(np.float64) - want) / np.abs(want)
        assert rel.max() < 5e-7, rel

"""python/flashsnn/ops/_checks.py: the shared argument checks, and the
float32 scalars they make once per value for float parameters."""

from __future__ import annotations

import math

import mlx.core as mx
import pytest

import flashsnn as fs
from flashsnn.ops import _checks


def test_a_float_parameter_is_made_once():
    a = _checks.param("leaky", "beta", 0.9, (2,))
    assert a is _checks.param("leaky", "beta", 0.9, (2,))
    assert a.dtype == mx.float32 and a.ndim == 0 and a.item() == pytest.approx(0.9)
    # an int and the equal float share float(v)
    assert _checks.param("leaky", "threshold", 2, (2,)) is _checks.scalar(2.0)


def test_signed_zeros_and_nan_keep_their_values():
    pos, neg = _checks.scalar(0.0), _checks.scalar(-0.0)
    assert pos is not neg  # 0.0 == -0.0 as dict keys; the sign must survive
    assert math.copysign(1.0, pos.item()) == 1.0
    assert math.copysign(1.0, neg.item()) == -1.0
    assert _checks.scalar(-0.0) is neg
    n = _checks.scalar(float("nan"))
    assert math.isnan(n.item())
    assert _checks.scalar(float("nan")) is not n  # NaN != NaN: never cached


def test_the_cache_stays_bounded():
    for i in range(3 * _checks._SCALARS_MAX):
        assert _checks.scalar(1.0 + i).item() == 1.0 + i
    assert len(_checks._SCALARS) <= _checks._SCALARS_MAX


@pytest.mark.parametrize("call,exc,msg", [
    (lambda: fs.ops.leaky(mx.ones((3, 2)), beta=True), TypeError, r"\[leaky\] beta must be a float"),
    (lambda: fs.ops.leaky(mx.ones((3, 2)), beta=0.9, threshold=None), TypeError,
     r"\[leaky\] threshold must be a float"),
    (lambda: fs.ops.leaky(mx.array(1.0), beta=0.9), ValueError,
     r"\[leaky\] x must be \[T, \*S\] with a leading time axis; got a scalar"),
    (lambda: fs.ops.leaky(mx.ones((3, 2)), beta=10 ** 400), OverflowError, r"int too large"),
])
def test_checks_still_run(call, exc, msg):
    with pytest.raises(exc, match=msg):
        call()


@pytest.mark.parametrize("backend", ["fused", "reference"])
def test_cached_parameters_give_the_same_results_as_fresh_arrays(backend):
    if backend == "fused" and fs.fused_unavailable_reason() is not None:
        pytest.skip(fs.fused_unavailable_reason())
    x = mx.random.normal((6, 3, 5), key=mx.random.key(2)) + 0.3
    beta, th = mx.array(0.8), mx.array(0.7)
    for _ in range(2):  # the second call gets the cached scalars
        a = fs.ops.leaky(x, beta=0.8, threshold=0.7, backend=backend)
        b = fs.ops.leaky(x, beta=beta, threshold=th, backend=backend)
        assert mx.array_equal(a[0], b[0]) and mx.array_equal(a[1], b[1])
        ga = mx.grad(lambda v: fs.ops.leaky(v, beta=0.8, threshold=0.7, backend=backend)[0].sum())(x)
        gb = mx.grad(lambda v: fs.ops.leaky(v, beta=beta, threshold=th, backend=backend)[0].sum())(x)
        assert mx.array_equal(ga, gb)

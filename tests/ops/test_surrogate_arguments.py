"""Surrogate parameters and spike_grad callables that used to be accepted or
failed in MLX's words (issue 19, items 3 and 4)."""

from __future__ import annotations

import math

import mlx.core as mx
import numpy as np
import pytest

import flashsnn as fs

sg = fs.surrogate

BAD = [
    (sg.atan, "alpha", "atan", "a positive finite number"),
    (sg.fast_sigmoid, "slope", "fast_sigmoid", "a positive finite number"),
    (sg.sigmoid, "slope", "sigmoid", "a positive finite number"),
    (sg.triangular, "threshold", "triangular", "a positive finite number"),
    (sg.spike_rate_escape, "beta", "spike_rate_escape", "a positive finite number"),
    (sg.spike_rate_escape, "slope", "spike_rate_escape", "a positive finite number"),
    (sg.SFS, "slope", "SFS", "a positive finite number"),
    (sg.LSO, "slope", "LSO", r"a finite number >= 0"),
    (sg.SSO, "variance", "SSO", r"a finite number >= 0"),
]


@pytest.mark.parametrize("value", [-1, -0.5, math.inf, math.nan])
@pytest.mark.parametrize("factory,arg,tag,rule", BAD, ids=[f"{t}-{a}" for _, a, t, _ in BAD])
def test_out_of_range_surrogate_parameters(factory, arg, tag, rule, value):
    with pytest.raises(ValueError, match=rf"\[{tag}\] {arg} must be {rule}; got "):
        factory(**{arg: value})


@pytest.mark.parametrize("factory,arg,tag,rule", BAD, ids=[f"{t}-{a}" for _, a, t, _ in BAD])
def test_non_numbers_and_bools(factory, arg, tag, rule):
    for value in ("2", True, None, [1.0, 2.0]):
        with pytest.raises(TypeError, match=rf"\[{tag}\] {arg} must be {rule}; got "):
            factory(**{arg: value})


def test_zero_slopes():
    with pytest.raises(ValueError, match=r"\[atan\] alpha must be a positive"):
        sg.atan(alpha=0)
    assert sg.LSO(slope=0).a == 0.0 and sg.SSO(variance=0).b == 0.0


def test_offsets_need_only_be_finite():
    assert sg.SFS(B=-2).b == -2.0 and sg.SSO(mean=-1).a == -1.0
    with pytest.raises(ValueError, match=r"\[SFS\] B must be a finite number; got inf"):
        sg.SFS(B=math.inf)


def test_numpy_scalars_are_numbers():
    assert sg.atan(alpha=np.float32(3)).a == 3.0
    assert sg.sigmoid(slope=np.int64(5)) == sg.sigmoid(slope=5)


@pytest.mark.parametrize("ret", [1.0, None, np.zeros(4, np.float32), "spike"])
def test_spike_grad_callable_returning_a_non_array(ret):
    """Before: stop_gradient(): incompatible function arguments."""
    def bad(v):
        return ret
    with pytest.raises(TypeError, match=r"\[spike_grad\] the callable 'bad' returned .*; a "
                                        r"spike_grad callable must map v = mem - threshold"):
        fs.ops.leaky(mx.ones((3, 4)), beta=0.9, spike_grad=bad)


def test_spike_grad_callable_returning_a_wrong_shape():
    with pytest.raises(TypeError, match=r"returned an array of shape \(\)"):
        fs.ops.leaky(mx.ones((3, 4)), beta=0.9, spike_grad=lambda v: (v > 0).sum())


def test_spike_grad_callable_that_is_right_still_runs():
    spk, _ = fs.ops.leaky(mx.full((3, 2), 0.75), beta=0.5,
                          spike_grad=lambda v: (v > 0).astype(v.dtype))
    assert spk[:, 0].tolist() == [0.0, 1.0, 0.0]

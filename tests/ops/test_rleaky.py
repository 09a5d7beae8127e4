"""flashsnn.ops.rleaky: hand-derived cases and the two kinds of feedback
(snnTorch's RLeaky itself is checked against the layer in tests/nn; the op
contract in tests/nn/test_nn_ops.py)."""

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest

import flashsnn as fs
from helpers import describe, rel_rms


@pytest.mark.parametrize("reset,spk,mem", [
    # U = 0.5 U + 0.75 + 0.5 S_{t-1}: 0.75, 1.125 (fires), then 0.5625 + 0.75 + 0.5
    ("subtract", [0, 1, 0], [0.75, 1.125, 0.8125]),
    ("zero", [0, 1, 0], [0.75, 1.125, 0.0]),
    ("none", [0, 1, 1], [0.75, 1.125, 1.8125]),
])
def test_hand_derived(reset, spk, mem):
    s, u = fs.ops.rleaky(mx.full((3, 1), 0.75), beta=0.5, V=0.5, reset_mechanism=reset,
                         output_mem="all")
    assert s[:, 0].tolist() == spk
    assert u[:, 0].tolist() == mem


def test_initial_spikes_feed_the_first_step():
    s, u = fs.ops.rleaky(mx.zeros((1, 2)), mx.array([1.0, 0.0]), beta=0.5, V=0.25)
    assert u.tolist() == [0.25, 0.0]


def test_a_linear_recurrent_layer_is_spikes_times_its_weights():
    lin = nn.Linear(6, 6)
    x = mx.random.normal((15, 3, 6), key=mx.random.key(2)) + 0.5

    def manual(x_, w, b):
        spk, mem, spks = mx.zeros((3, 6)), mx.zeros((3, 6)), []
        for t in range(x_.shape[0]):
            r = (mem > 1.0).astype(mx.float32)
            mem = 0.8 * mem + x_[t] + (spk @ w.T + b) - r
            spk = fs.surrogate.atan()(mem - 1.0)
            spks.append(spk)
        return mx.stack(spks)

    def ours(x_, w, b):
        lin.weight, lin.bias = w, b
        return fs.ops.rleaky(x_, beta=0.8, recurrent=lin)[0]

    args = (x, lin.weight, lin.bias)
    np.testing.assert_array_equal(np.array(ours(*args)), np.array(manual(*args)))
    cot = mx.random.normal((15, 3, 6), key=mx.random.key(3))
    ga = mx.grad(lambda *a: (ours(*a) * cot).sum(), argnums=(0, 1, 2))(*args)
    gb = mx.grad(lambda *a: (manual(*a) * cot).sum(), argnums=(0, 1, 2))(*args)
    for u, v in zip(ga, gb):
        assert rel_rms(u, v) < 1e-6, describe(u, v)


def test_one_to_one_callable_equals_V():
    x = mx.random.normal((10, 4), key=mx.random.key(4)) + 0.5
    V = mx.linspace(-0.5, 0.5, 4)
    a = fs.ops.rleaky(x, beta=0.9, V=V, output_mem="all")
    b = fs.ops.rleaky(x, beta=0.9, recurrent=lambda s: s * V, output_mem="all")
    for u, v in zip(a, b):
        np.testing.assert_array_equal(np.array(u), np.array(v))


def test_feedback_errors():
    x = mx.zeros((2, 3))
    with pytest.raises(ValueError, match=r"\[rleaky\] pass either V .* or recurrent"):
        fs.ops.rleaky(x, beta=0.5, V=0.5, recurrent=lambda s: s)
    with pytest.raises(TypeError, match=r"\[rleaky\] recurrent must be a callable"):
        fs.ops.rleaky(x, beta=0.5, recurrent=mx.ones((3, 3)))

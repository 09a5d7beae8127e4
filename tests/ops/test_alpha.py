"""flashsnn.ops.alpha: hand-derived cases (snnTorch's Alpha itself is checked
against the layer in tests/nn; the op contract in tests/nn/test_nn_ops.py)."""

import math

import mlx.core as mx
import pytest

import flashsnn as fs

X = mx.full((3, 1), 4.0)


@pytest.mark.parametrize("reset,spk,exc,inh,mem", [
    # tau = log(.5)/(log(.25) - log(.5)) + 1 = 2; exc 4, 6, 7; inh -4, -5, -5.25
    ("none", [0, 1, 1], [4, 6, 7], [-4, -5, -5.25], [0, 2, 3.5]),
    # the step after a spike zeroes all three states
    ("zero", [0, 1, 0], [4, 6, 0], [-4, -5, 0], [0, 2, 0]),
    # snnTorch's subtract: exc -= threshold, inh zeroed, mem += previous inh
    ("subtract", [0, 1, 0], [4, 6, 6], [-4, -5, 0], [0, 2, -1.5]),
])
def test_hand_derived(reset, spk, exc, inh, mem):
    s, e, i, u = fs.ops.alpha(X, alpha=0.5, beta=0.25, reset_mechanism=reset,
                              output_mem="all")
    assert s[:, 0].tolist() == spk
    assert e[:, 0].tolist() == exc
    assert i[:, 0].tolist() == inh
    assert u[:, 0].tolist() == mem


def test_membrane_is_tau_times_the_current_difference():
    x = mx.random.normal((20, 2, 3), key=mx.random.key(1))
    _, e, i, u = fs.ops.alpha(x, alpha=0.9, beta=0.6, reset_mechanism="none", output_mem="all")
    tau = math.log(0.9) / (math.log(0.6) - math.log(0.9)) + 1
    assert mx.allclose(u, tau * (e + i), rtol=1e-5, atol=1e-5).item()

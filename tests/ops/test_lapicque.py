"""flashsnn.ops.lapicque: hand-derived cases (snnTorch's Lapicque itself is
checked against the layer in tests/nn; the op contract in tests/nn/test_nn_ops.py)."""

import mlx.core as mx
import numpy as np
import pytest

import flashsnn as fs


@pytest.mark.parametrize("reset,spk,mem", [
    # U = x*R/(RC)*dt + (1 - dt/(RC))*U = 1 + 0.5*U: 1, 1.5, then 1.75 (- reset)
    ("subtract", [0, 1, 0], [1.0, 1.5, 0.75]),
    ("zero", [0, 1, 0], [1.0, 1.5, 0.0]),   # the whole step is dropped, input included
    ("none", [0, 1, 1], [1.0, 1.5, 1.75]),
])
def test_hand_derived(reset, spk, mem):
    s, u = fs.ops.lapicque(mx.full((3, 1), 2.0), R=1.0, C=2.0, reset_mechanism=reset,
                           output_mem="all")
    assert s[:, 0].tolist() == spk
    assert u[:, 0].tolist() == mem


def test_time_step_scales_the_euler_step():
    R, C, dt, x = 2.0, 4.0, 0.5, 1.7
    s, u = fs.ops.lapicque(mx.full((12, 1), x), R=R, C=C, time_step=dt, output_mem="all",
                           reset_mechanism="none")
    expect, v = [], 0.0
    for _ in range(12):
        v = x * dt / C + (1 - dt / (R * C)) * v
        expect.append(v)
    np.testing.assert_allclose(np.array(u[:, 0]), expect, rtol=1e-6)
    assert s[:, 0].tolist() == [float(e > 1.0) for e in expect]

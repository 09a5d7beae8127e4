"""flashsnn.ops.rsynaptic: hand-derived cases; with no feedback it is
synaptic exactly (snnTorch's RSynaptic itself is checked against the layer in
tests/nn; the op contract in tests/nn/test_nn_ops.py)."""

import mlx.core as mx
import numpy as np
import pytest

import flashsnn as fs


@pytest.mark.parametrize("reset_delay", [True, False])
@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
def test_no_feedback_is_synaptic(reset, reset_delay):
    x = mx.random.normal((30, 3, 5), key=mx.random.key(6)) * 0.6 + 0.3
    kw = dict(alpha=0.7, beta=0.8, reset_mechanism=reset, reset_delay=reset_delay,
              output_mem="all")
    spk, syn, mem = fs.ops.rsynaptic(x, V=0.0, **kw)
    ref = fs.ops.synaptic(x, **kw)
    assert 0 < ref[0].sum().item() < ref[0].size
    for u, v in zip((spk, syn, mem), ref):
        np.testing.assert_array_equal(np.array(u), np.array(v))


def test_hand_derived():
    # I = 0.5 I + 0.5 + 0.5 S_{t-1}: 0.5, 0.75, 0.875, then 0.4375 + 0.5 + 0.5
    # U = 0.5 U + I:                  0.5, 1.0,  1.375 (fires), 0.6875 + 1.4375 - 1
    spk, syn, mem = fs.ops.rsynaptic(mx.full((4, 1), 0.5), alpha=0.5, beta=0.5, V=0.5,
                                     output_mem="all")
    assert spk[:, 0].tolist() == [0, 0, 1, 1]
    assert syn[:, 0].tolist() == [0.5, 0.75, 0.875, 1.4375]
    assert mem[:, 0].tolist() == [0.5, 1.0, 1.375, 1.125]

"""flashsnn.ops.synaptic: hand-derived cases (snnTorch's Synaptic itself is
checked against the layer in tests/nn; the op contract in tests/nn/test_nn_ops.py)."""

import mlx.core as mx
import pytest

import flashsnn as fs

X = mx.full((3, 1), 0.75)  # exact binary fractions: the expected values are exact


@pytest.mark.parametrize("reset,reset_delay,spk,syn,mem", [
    # syn: 0.75, 1.125, 1.3125;  U before reset: 0.75, 1.5, ...
    ("subtract", True, [0, 1, 1], [0.75, 1.125, 1.3125], [0.75, 1.5, 1.0625]),
    # zero resets the membrane only; the whole step's membrane is dropped
    ("zero", True, [0, 1, 0], [0.75, 1.125, 1.3125], [0.75, 1.5, 0.0]),
    ("none", True, [0, 1, 1], [0.75, 1.125, 1.3125], [0.75, 1.5, 2.0625]),
    # reset in the firing step: 1.5 - 1 = 0.5; then 0.25 + 1.3125 = 1.5625 - 1
    ("subtract", False, [0, 1, 1], [0.75, 1.125, 1.3125], [0.75, 0.5, 0.5625]),
    ("zero", False, [0, 1, 1], [0.75, 1.125, 1.3125], [0.75, 0.0, 0.0]),
])
def test_hand_derived(reset, reset_delay, spk, syn, mem):
    s, i, u = fs.ops.synaptic(X, alpha=0.5, beta=0.5, reset_mechanism=reset,
                              reset_delay=reset_delay, output_mem="all")
    assert s[:, 0].tolist() == spk
    assert i[:, 0].tolist() == syn
    assert u[:, 0].tolist() == mem


def test_clamps_decays_like_snntorch():
    a = fs.ops.synaptic(X, alpha=1.5, beta=-0.5, output_mem="all")
    b = fs.ops.synaptic(X, alpha=1.0, beta=0.0, output_mem="all")
    for u, v in zip(a, b):
        assert u.tolist() == v.tolist()
    g = mx.grad(lambda al: fs.ops.synaptic(X, alpha=al, beta=0.5)[2].sum())(mx.array(1.5))
    assert g.item() == 0.0  # torch.clamp passes no gradient outside [0, 1]

"""bptt_forward: both calling conventions, gradients through every step,
static input, errors."""

import mlx.core as mx
import numpy as np
import pytest

import flashsnn as fs

F = fs.functional


def lif_step(x, mem, beta=0.8, th=1.0):
    mem = beta * mem + x
    spk = (mem > th).astype(mx.float32)
    return spk, mem - spk * th


def test_state_threading_matches_a_hand_loop():
    x = mx.random.uniform(shape=(9, 3, 4), key=mx.random.key(0)) * 0.8
    spk, mem = F.bptt_forward(lif_step, x, mx.zeros((3, 4)))
    m = mx.zeros((3, 4))
    for t in range(9):
        s, m = lif_step(x[t], m)
        assert mx.array_equal(spk[t], s) and mx.array_equal(mem[t], m)
    assert spk.shape == mem.shape == (9, 3, 4)


def test_stateful_model_and_single_output():
    class Acc:                                     # keeps its own state (init_hidden style)
        def __init__(self):
            self.total = mx.zeros((2,))

        def __call__(self, x):
            self.total = self.total + x
            return self.total

    out = F.bptt_forward(Acc(), mx.ones((4, 2)))
    assert out[:, 0].tolist() == [1, 2, 3, 4]


def test_gradient_flows_through_time():
    # out_t = w * sum_{s<=t} x_s with the state carried by bptt_forward:
    # d/dw sum_t out_t = sum_t sum_{s<=t} x_s
    x = mx.array([[1.0], [2.0], [3.0]])

    def loss(w):
        def step(xt, acc):
            acc = acc + xt
            return w * acc, acc
        out, _ = F.bptt_forward(step, x, mx.zeros((1,)))
        return out.sum()

    assert mx.grad(loss)(mx.array(2.0)).item() == 1 + 3 + 6


def test_static_input_with_num_steps():
    spk, mem = F.bptt_forward(lif_step, mx.full((2,), 0.6), mx.zeros((2,)), num_steps=3)
    np.testing.assert_allclose(np.array(mem[:, 0]), [0.6, 0.08, 0.664], rtol=1e-6)
    assert spk[:, 0].tolist() == [0, 1, 0]         # 0.6, 1.08 -> fires, 0.064 + 0.6


@pytest.mark.parametrize("args, kw, match", [
    ((3, mx.ones((2, 2))), {}, r"model must be callable"),
    ((lif_step, [1.0]), {}, r"x must be an mlx.core.array"),
    ((lif_step, mx.ones((0, 2)), mx.zeros((2,))), {}, r"x must be \[T, B, \.\.\.\] with T >= 1"),
    ((lif_step, mx.ones((2,)), mx.zeros((2,))), dict(num_steps=0), r"num_steps must be"),
    ((lambda x, m: x, mx.ones((2, 2)), mx.zeros((2,))), {},
     r"with 1 state argument\(s\) the model must return \(out, \*new_state\)"),
    ((lambda x: "spikes", mx.ones((2, 2))), {}, r"the model must return an mlx.core.array"),
])
def test_errors(args, kw, match):
    with pytest.raises((TypeError, ValueError), match=r"^\[bptt_forward\] " + match):
        F.bptt_forward(*args, **kw)

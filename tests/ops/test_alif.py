"""flashsnn.ops.alif (no snnTorch class): hand-derived cases, b = 0 is Leaky
exactly, and an independent float64 PyTorch implementation of the equations
in ops/README.md (autograd, snnTorch's atan surrogate) for outputs and every
gradient, against the fused kernel and the pure-MLX reference. The op
contract is in tests/nn/test_nn_ops.py."""

import mlx.core as mx
import numpy as np
import pytest

import flashsnn as fs
from helpers import describe, np32, rel_rms

BACKENDS = ["reference"] + (["fused"] if fs.fused_unavailable_reason() is None else [])


def test_hand_derived():
    # x = 1.5, beta = rho = 0.5, b = 1, threshold 1:
    # t  A (rho A + S_{t-1})   U (beta U + x - R)      theta + b A   S
    # 1  0                     1.5                     1             1
    # 2  1                     0.75 + 1.5 - 1 = 1.25   2             0
    # 3  0.5                   0.625 + 1.5 = 2.125     1.5           1
    # 4  0.25 + 1 = 1.25       1.0625 + 1.5 - 1        2.25          0
    spk, mem, adapt = fs.ops.alif(mx.full((4, 1), 1.5), beta=0.5, rho=0.5, b=1.0,
                                  output_mem="all")
    assert spk[:, 0].tolist() == [1, 0, 1, 0]
    assert adapt[:, 0].tolist() == [0, 1, 0.5, 1.25]
    assert mem[:, 0].tolist() == [1.5, 1.25, 2.125, 1.5625]


def test_zero_reset_and_initial_trace():
    # A_0 = 2 raises the first threshold to 1 + 0.5*2 = 2; no spike at 1.5
    spk, mem, adapt = fs.ops.alif(mx.full((2, 1), 1.5), None, mx.full((1,), 2.0), beta=0.5,
                                  rho=0.5, b=0.5, reset_mechanism="zero", output_mem="all")
    assert spk[:, 0].tolist() == [0, 1]        # A = 1, then 0.5: thresholds 1.5, 1.25
    assert adapt[:, 0].tolist() == [1.0, 0.5]
    assert mem[:, 0].tolist() == [1.5, 2.25]


@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
def test_no_adaptation_is_leaky(reset):
    x = mx.random.normal((40, 3, 7), key=mx.random.key(0)) * 0.8 + 0.4
    beta = mx.linspace(0.6, 0.95, 7)
    spk, mem, adapt = fs.ops.alif(x, beta=beta, b=0.0, reset_mechanism=reset, output_mem="all")
    ref = fs.ops.leaky(x, beta=beta, reset_mechanism=reset, output_mem="all",
                       backend="reference")
    np.testing.assert_array_equal(np.array(spk), np.array(ref[0]))
    np.testing.assert_array_equal(np.array(mem), np.array(ref[1]))
    cot = mx.random.normal(x.shape, key=mx.random.key(1))
    ga = mx.grad(lambda v: (fs.ops.alif(v, beta=beta, b=0.0, reset_mechanism=reset,
                                        output_mem="all")[1] * cot).sum())(x)
    gb = mx.grad(lambda v: (fs.ops.leaky(v, beta=beta, reset_mechanism=reset,
                                         output_mem="all")[1] * cot).sum())(x)
    assert rel_rms(ga, gb) < 1e-6, describe(ga, gb)


def torch_alif(torch, x, mem, adapt, beta, th, rho, b, reset, alpha=2.0):
    """The equations of ops/README.md, written again in PyTorch."""
    def spike(v):  # Heaviside forward, atan gradient (snnTorch's ATan)
        f = torch.atan(torch.pi / 2 * alpha * v) / torch.pi
        return (v > 0).to(v.dtype) + (f - f.detach())

    be, rh = beta.clamp(0, 1), rho.clamp(0, 1)
    spks, mems, adapts = [], [], []
    for t in range(x.shape[0]):
        prev = spike(mem - th - b * adapt)
        r = prev.detach()
        adapt = rh * adapt + prev
        if reset == "subtract":
            mem = be * mem + x[t] - r * th
        elif reset == "zero":
            mem = be * ((1 - r) * mem) + x[t]
        else:
            mem = be * mem + x[t]
        spks.append(spike(mem - th - b * adapt))
        mems.append(mem)
        adapts.append(adapt)
    return torch.stack(spks), torch.stack(mems), torch.stack(adapts)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
def test_matches_an_independent_float64_implementation(reset, backend):
    torch = pytest.importorskip("torch", reason="torch is not installed")
    T, B, N = 30, 3, 8
    rng = np.random.default_rng(3)
    x = (rng.normal(size=(T, B, N)) * 0.8 + 0.5).astype(np.float32)
    mem0 = (rng.normal(size=(B, N)) * 0.5).astype(np.float32)
    adapt0 = rng.uniform(0, 1, (B, N)).astype(np.float32)
    params = {"beta": rng.uniform(0.6, 0.95, N), "threshold": rng.uniform(0.8, 1.2, N),
              "rho": rng.uniform(0.8, 0.99, N), "b": rng.uniform(0.0, 0.5, N)}
    params = {k: v.astype(np.float32) for k, v in params.items()}
    cots = [rng.normal(size=(T, B, N)).astype(np.float32) for _ in range(3)]

    leaves = [torch.tensor(a.astype(np.float64), requires_grad=True) for a in
              (x, mem0, adapt0, *params.values())]
    xt, mt, at, bt, tht, rt, bbt = leaves
    outs = torch_alif(torch, xt, mt, at, bt, tht, rt, bbt, reset)
    sum((o * torch.tensor(c, dtype=torch.float64)).sum() for o, c in zip(outs, cots)).backward()

    def f(x_, m_, a_, beta, threshold, rho, b):
        return fs.ops.alif(x_, m_, a_, beta=beta, threshold=threshold, rho=rho, b=b,
                           reset_mechanism=reset, output_mem="all", backend=backend)

    primals = [mx.array(a) for a in (x, mem0, adapt0, *params.values())]
    ours, grads = mx.vjp(f, primals, [mx.array(c) for c in cots])
    assert 0 < outs[0].sum().item() < outs[0].numel()
    np.testing.assert_array_equal(np32(ours[0]), outs[0].detach().numpy())
    for a, t_ in zip(ours[1:], outs[1:]):
        assert rel_rms(a, t_.detach().numpy()) < 1e-6, describe(a, t_.detach().numpy())
    for name, g, leaf in zip(["x", "mem", "adapt", *params], grads, leaves):
        assert g.shape == tuple(leaf.shape), name
        assert rel_rms(g, leaf.grad.numpy()) < 1e-5, f"d{name}: {describe(g, leaf.grad.numpy())}"

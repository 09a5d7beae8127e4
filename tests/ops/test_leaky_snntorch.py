"""flashsnn.ops.leaky against snnTorch 1.0's own Leaky, stepped T times.

Spikes and membranes step by step, and gradients for the input, the initial
membrane, a learnable per-neuron beta and a learnable threshold. Both the
fused kernel and the reference are checked against snnTorch.
"""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest

import flashsnn as fs
from helpers import describe, np32, rel_rms

torch = pytest.importorskip("torch", reason="torch is not installed (pip install '.[test]')")
snn = pytest.importorskip("snntorch", reason="snntorch is not installed (pip install '.[test]')")
from snntorch import surrogate as snn_surrogate  # noqa: E402

BACKENDS = ["reference"] + (["fused"] if fs.fused_unavailable_reason() is None else [])

PAIRS = {  # flashsnn surrogate, snnTorch surrogate
    "atan": (fs.surrogate.atan(), snn_surrogate.atan()),
    "fast_sigmoid": (fs.surrogate.fast_sigmoid(slope=10), snn_surrogate.fast_sigmoid(slope=10)),
    "sigmoid": (fs.surrogate.sigmoid(slope=5), snn_surrogate.sigmoid(slope=5)),
    "triangular": (fs.surrogate.triangular(), snn_surrogate.triangular()),
    "straight_through": (fs.surrogate.straight_through_estimator(),
                         snn_surrogate.straight_through_estimator()),
    "spike_rate_escape": (fs.surrogate.spike_rate_escape(beta=2, slope=0.5),
                          snn_surrogate.spike_rate_escape(beta=2, slope=0.5)),
}


def snntorch_run(x, mem0, beta, th, cs, cm, reset, reset_delay, spike_grad):
    """Step snntorch.Leaky T times; return spikes, membranes and gradients."""
    xt = torch.tensor(np.array(x), requires_grad=True)
    mt = torch.tensor(np.array(mem0), requires_grad=True)
    lif = snn.Leaky(beta=torch.tensor(np.array(beta)), threshold=torch.tensor(np.array(th)),
                    learn_beta=True, learn_threshold=True, reset_mechanism=reset,
                    reset_delay=reset_delay, spike_grad=spike_grad)
    mem = mt
    spks, mems = [], []
    for t in range(xt.shape[0]):
        spk, mem = lif(xt[t], mem)
        spks.append(spk)
        mems.append(mem)
    spk, mems = torch.stack(spks), torch.stack(mems)
    loss = (spk * torch.tensor(np.array(cs))).sum() + (mems[-1] * torch.tensor(np.array(cm))).sum()
    loss.backward()
    return (spk.detach().numpy(), mems.detach().numpy(),
            [xt.grad.numpy(), mt.grad.numpy(), lif.beta.grad.numpy(), lif.threshold.grad.numpy()])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("surrogate", list(PAIRS))
@pytest.mark.parametrize("reset_delay", [True, False])
@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
def test_matches_snntorch(reset, reset_delay, surrogate, backend):
    T, B, N = 25, 3, 17
    k = mx.random.split(mx.random.key(T * 31 + len(surrogate)), 6)
    x = mx.random.normal((T, B, N), key=k[0]) * 0.8 + 0.3
    mem0 = mx.random.normal((B, N), key=k[1]) * 0.5
    beta = mx.random.uniform(0.5, 1.0, (N,), key=k[2])
    th = mx.random.uniform(0.8, 1.2, (N,), key=k[3])
    cs = mx.random.normal((T, B, N), key=k[4])
    cm = mx.random.normal((B, N), key=k[5])
    ours, theirs = PAIRS[surrogate]
    if not reset_delay and surrogate in ("spike_rate_escape",):
        pytest.skip("gradient grows without bound through the same-step reset")

    def f(x_, m_, b_, t_):
        return fs.ops.leaky(x_, m_, beta=b_, threshold=t_, reset_mechanism=reset,
                            reset_delay=reset_delay, spike_grad=ours, output_mem="all",
                            backend=backend)

    cot_mem = mx.concatenate([mx.zeros((T - 1, B, N)), cm[None]])
    (spk, mems), grads = mx.vjp(f, [x, mem0, beta, th], [cs, cot_mem])
    t_spk, t_mems, t_grads = snntorch_run(x, mem0, beta, th, cs, cm, reset, reset_delay, theirs)

    assert np.array_equal(np32(spk), t_spk), \
        f"spikes differ in {int(np.sum(np32(spk) != t_spk))} places"
    assert rel_rms(mems, t_mems) <= 1e-6, describe(mems, t_mems)
    for name, g, tg in zip(("x", "mem", "beta", "threshold"), grads, t_grads):
        assert g.shape == tg.shape, (name, g.shape, tg.shape)
        assert rel_rms(g, tg) <= 1e-5, f"d{name}: {describe(g, tg)}"


@pytest.mark.parametrize("backend", BACKENDS)
def test_scalar_parameters_and_zero_initial_membrane(backend):
    """snnTorch's usual call: float beta, default threshold, mem starting at 0."""
    T, B, N = 40, 4, 9
    x = mx.random.normal((T, B, N), key=mx.random.key(3)) + 0.5
    spk, mem = fs.ops.leaky(x, beta=0.85, output_mem="all", backend=backend)
    lif = snn.Leaky(beta=0.85)
    m = lif.reset_mem()
    xt = torch.tensor(np.array(x))
    for t in range(T):
        s, m = lif(xt[t], m)
        np.testing.assert_array_equal(np32(spk[t]), s.numpy())
        np.testing.assert_allclose(np32(mem[t]), m.numpy(), rtol=0, atol=1e-6)

"""The spiking MLP: the fused and reference paths compute the same model,
the presets are the paper's, and the pieces behave as documented."""

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest

import flashsnn as fs

M = fs.models


def batch(B=16, D=64, T=25, seed=0):
    x = fs.encoding.rate(mx.random.uniform(shape=(B, D), key=mx.random.key(seed)), T,
                         key=mx.random.key(seed + 1))
    return x, mx.arange(B) % 10


def grads(model, x, y):
    def loss_fn(m, xb, yb):
        return fs.functional.membrane_ce(m(xb)[1], yb)
    return nn.value_and_grad(model, loss_fn)(model, x, y)


@pytest.mark.skipif(fs.fused_unavailable_reason() is not None, reason="no fused kernel here")
def test_fused_and_reference_paths_agree():
    mx.random.seed(3)
    fused = M.SpikingMLP(64, 48, beta=0.85, backend="fused")
    ref = M.SpikingMLP(64, 48, beta=0.85, backend="reference")
    ref.update(fused.parameters())
    x, y = batch()
    out_f, out_r = fused(x, record=True), ref(x, record=True)
    # forward spikes are bit-identical by the numerics contract (DESIGN.md 2)
    assert mx.array_equal(out_f["spk1"], out_r["spk1"])
    assert mx.array_equal(out_f["spk2"], out_r["spk2"])
    np.testing.assert_allclose(np.array(out_f["mem2"]), np.array(out_r["mem2"]), rtol=1e-6,
                               atol=1e-6)
    (lf, gf), (lr, gr) = grads(fused, x, y), grads(ref, x, y)
    assert lf.item() == pytest.approx(lr.item(), rel=1e-6)
    for name in ("fc1", "fc2"):
        for p in ("weight", "bias"):
            a, b = np.array(gf[name][p]), np.array(gr[name][p])
            assert np.abs(a).max() > 0
            rel_rms = np.sqrt(np.mean((a - b) ** 2)) / np.sqrt(np.mean(b ** 2))
            assert rel_rms < 1e-5, (name, p, rel_rms)


def test_output_layer_never_resets():
    # with reset off, the output membrane is the beta-weighted sum of its inputs
    mx.random.seed(0)
    model = M.SpikingMLP(8, 5, 3, beta=0.5, backend="reference")
    model.fc2.bias = mx.full((3,), 0.7)            # drives U past the threshold (1.0)
    x, _ = batch(B=2, D=8, T=6)
    rec = model(x, record=True)
    o = model.fc2(rec["spk1"])
    u = mx.zeros(o.shape[1:])
    for t in range(6):
        u = 0.5 * u + o[t]
    assert rec["spk2"].sum().item() > 0            # it fired, and still did not reset
    np.testing.assert_allclose(np.array(rec["mem2"][-1]), np.array(u), rtol=1e-5, atol=1e-6)
    _, mem = model(x)
    assert mx.allclose(mem, rec["mem2"][-1])


def test_presets_are_the_papers():
    # arXiv:2603.03529v1, MNIST table: C1-C5
    want = {"C1": (0.85, 256, 1e-3, 128, 25), "C2": (0.9, 256, 1e-3, 128, 25),
            "C3": (0.9, 256, 1e-3, 256, 25), "C4": (0.9, 128, 1e-3, 128, 25),
            "C5": (0.95, 128, 2e-3, 128, 15)}
    got = {k: (p.beta, p.hidden, p.lr, p.batch_size, p.epochs) for k, p in M.PRESETS.items()}
    assert got == want
    assert all(p.steps == 25 for p in M.PRESETS.values())


def test_default_surrogate_is_fast_sigmoid_25():
    assert M.SpikingMLP(4, 4).spike_grad == fs.surrogate.fast_sigmoid(25)


def test_only_linear_weights_are_trainable():
    model = M.SpikingMLP(64, 32)
    names = sorted(k for k, _ in nn.utils.tree_flatten(model.trainable_parameters()))
    assert names == ["fc1.bias", "fc1.weight", "fc2.bias", "fc2.weight"]


@pytest.mark.parametrize("kw, match", [
    (dict(num_inputs=0, hidden=4), r"num_inputs must be a positive int"),
    (dict(num_inputs=4, hidden=4, beta=1.5), r"beta must lie in \[0, 1\]"),
    (dict(num_inputs=4, hidden=4, backend="gpu"),
     r"unknown backend 'gpu'; valid: 'fused', 'reference', 'auto'"),
])
def test_errors(kw, match):
    with pytest.raises(ValueError, match=r"^\[SpikingMLP\] " + match):
        M.SpikingMLP(**kw)
    with pytest.raises(ValueError, match=r"^\[SpikingMLP\] x must be \[T, B, D\]"):
        M.SpikingMLP(4, 4)(mx.zeros((2, 4)))

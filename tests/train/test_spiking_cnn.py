"""The convolutional spiking model: it trains, its fused and reference paths
compute the same network, its shapes are channels-last, bad arguments are
refused; and SpikingMLP's output_reset."""

import mlx.core as mx
import mlx.optimizers as optim
import numpy as np
import pytest

import flashsnn as fs

M = fs.models
FUSED = fs.fused_unavailable_reason() is None


def frames(T=6, B=8, H=12, W=12, C=1, seed=0):
    u = mx.random.uniform(shape=(B, H, W, C), key=mx.random.key(seed))
    return fs.encoding.rate(u, T, key=mx.random.key(seed + 1)), mx.arange(B) % 10


@pytest.mark.parametrize("backend", ["reference"] + (["fused"] if FUSED else []))
@pytest.mark.parametrize("seed", [0, 1])
def test_trains_on_a_tiny_batch(backend, seed):
    mx.random.seed(seed)
    model = M.SpikingCNN((12, 12, 1), channels=(4, 8), backend=backend)
    opt = optim.Adam(learning_rate=3e-3)
    step = fs.train.make_train_step(
        model, opt, lambda m, x, y: fs.functional.membrane_ce(m(x)[1], y))
    x, y = frames(T=8)
    losses = []
    for _ in range(15):
        loss = step(x, y)
        mx.eval(loss, model.parameters(), opt.state)
        losses.append(loss.item())
    assert np.all(np.isfinite(losses))
    # 15 Adam steps on one batch of 8 fit it: measured 2.5-3.2 -> 1.0-1.6
    # (seeds 0-2); an untrained model does not move at all
    assert losses[-1] < 0.75 * losses[0], losses


@pytest.mark.skipif(not FUSED, reason="no fused kernel here")
def test_fused_and_reference_paths_agree():
    mx.random.seed(3)
    fused = M.SpikingCNN((12, 12, 2), 5, channels=(4, 8), beta=0.8, backend="fused")
    ref = M.SpikingCNN((12, 12, 2), 5, channels=(4, 8), beta=0.8, backend="reference")
    ref.update(fused.parameters())
    x, _ = frames(T=7, B=3, C=2)
    a, b = fused(x * 1.5, record=True), ref(x * 1.5, record=True)
    for k in ("spk1", "spk2", "spk3"):
        assert mx.array_equal(a[k], b[k]), k
    assert a["spk1"].sum().item() > 0 and a["spk2"].sum().item() > 0   # not a silent net
    np.testing.assert_allclose(np.array(a["mem3"]), np.array(b["mem3"]), rtol=1e-5, atol=1e-6)

    def grads(model):
        import mlx.nn as nn
        return nn.value_and_grad(model, lambda m, xb: fs.functional.membrane_ce(
            m(xb)[1], mx.array([0, 1, 2])))(model, x * 1.5)

    (la, ga), (lb, gb) = grads(fused), grads(ref)
    assert la.item() == pytest.approx(lb.item(), rel=1e-6)
    from mlx.utils import tree_flatten
    for (k, g), (_, r) in zip(tree_flatten(ga), tree_flatten(gb)):
        g, r = np.array(g), np.array(r)
        assert np.abs(r).max() > 0, k
        assert np.sqrt(np.mean((g - r) ** 2)) / np.sqrt(np.mean(r ** 2)) < 1e-5, k


def test_shapes_are_channels_last():
    mx.random.seed(0)
    model = M.SpikingCNN((13, 10, 3), 4, channels=(5, 6), backend="reference")
    assert model.conv1.weight.shape == (5, 3, 3, 3)          # MLX: [out, kh, kw, in]
    assert model.fc.weight.shape == (4, 3 * 2 * 6)            # 13 -> 6 -> 3, 10 -> 5 -> 2
    x, _ = frames(T=3, B=2, H=13, W=10, C=3)
    rec = model(x, record=True)
    assert rec["spk1"].shape == (3, 2, 13, 10, 5)
    assert rec["spk2"].shape == (3, 2, 6, 5, 6)
    assert rec["spk3"].shape == rec["mem3"].shape == (3, 2, 4)
    spk, mem = model(x)
    assert spk.shape == (3, 2, 4) and mem.shape == (2, 4)
    assert mx.allclose(mem, rec["mem3"][-1])


def test_output_reset():
    mx.random.seed(0)
    x, _ = frames(T=6, B=2, H=8, W=8)
    for cls, kw, inp in ((M.SpikingCNN, dict(in_shape=(8, 8, 1), num_outputs=3), x),
                         (M.SpikingMLP, dict(num_inputs=64, hidden=16, num_outputs=3),
                          x.reshape(6, 2, 64))):
        runs = {}
        for reset in ("none", "subtract"):
            mx.random.seed(1)
            m = cls(**kw, backend="reference", output_reset=reset)
            last = m.fc if cls is M.SpikingCNN else m.fc2
            last.bias = mx.full((3,), 0.7)                 # drives the readout past threshold
            runs[reset] = m(inp, record=True)
        key = "mem3" if cls is M.SpikingCNN else "mem2"
        # reset off, the membrane keeps growing past the threshold; subtract pulls it back
        assert runs["none"][key].max().item() > 1.5
        assert runs["subtract"][key].max().item() < runs["none"][key].max().item()


@pytest.mark.parametrize("kw, match", [
    (dict(in_shape=(28, 28)), r"in_shape must be \(H, W, C\)"),
    (dict(in_shape=(3, 28, 1)), r"frames must be at least 4x4"),
    (dict(channels=(16,)), r"channels must be two positive ints"),
    (dict(num_outputs=0), r"num_outputs must be a positive int"),
    (dict(beta=2.0), r"beta must lie in \[0, 1\]"),
    (dict(backend="gpu"), r"unknown backend 'gpu'; valid: 'fused', 'reference', 'auto'"),
    (dict(output_reset="soft"), r"unknown output_reset 'soft'; valid: 'none', 'subtract', "
                                r"'zero'"),
])
def test_errors(kw, match):
    with pytest.raises(ValueError, match=r"^\[SpikingCNN\] " + match):
        M.SpikingCNN(**kw)


def test_input_shape_is_checked():
    model = M.SpikingCNN((8, 8, 1), backend="reference")
    with pytest.raises(ValueError, match=r"^\[SpikingCNN\] x must be \[T, B, H, W, C\] = "
                                         r"\[T, B, 8, 8, 1\]"):
        model(mx.zeros((2, 3, 1, 8, 8)))                    # channels first: refused
    with pytest.raises(ValueError, match=r"^\[SpikingMLP\] unknown output_reset"):
        M.SpikingMLP(4, 4, output_reset="soft")

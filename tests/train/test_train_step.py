"""The compiled training step (flashsnn.train.make_train_step) computes what
the uncompiled one does, step after step, and `flashsnn train --device`
refuses what it cannot run with the choices named."""

import argparse
import json
import re

import mlx.core as mx
import mlx.optimizers as optim
from mlx.utils import tree_flatten
import numpy as np
import pytest

import flashsnn as fs
from flashsnn import _device
from flashsnn.train import cli, make_train_step

FUSED = fs.fused_unavailable_reason() is None
BACKENDS = ["reference"] + (["fused"] if FUSED else [])


def mlp_losses(backend, compile, steps=6, seed=0):
    """Losses of `steps` Adam steps from the same weights and batches."""
    mx.random.seed(seed)
    model = fs.models.SpikingMLP(64, 48, beta=0.85, backend=backend)
    opt = optim.Adam(learning_rate=5e-3)
    step = make_train_step(model, opt,
                           lambda m, x, y: fs.functional.membrane_ce(m(x)[1], y),
                           compile=compile)
    losses = []
    for i in range(steps):
        k1, k2 = mx.random.split(mx.random.key(100 + i))
        x = fs.encoding.rate(mx.random.uniform(shape=(32, 64), key=k1), 25, key=k2)
        loss = step(x, mx.arange(32) % 10)
        mx.eval(loss, model.parameters(), opt.state)
        losses.append(loss.item())
    return np.array(losses), model


@pytest.mark.parametrize("backend", BACKENDS)
def test_compiled_step_gives_the_uncompiled_losses(backend):
    a, ma = mlp_losses(backend, compile=False)
    b, mb = mlp_losses(backend, compile=True)
    assert a[-1] < a[0]                           # it trains: the comparison is not vacuous
    # On a GPU, mx.compile fuses the reference's elementwise steps into
    # kernels of its own that round differently (H200: 2.4022 against 2.4016
    # after five steps). A membrane within an ulp of threshold then fires in
    # one run and not the other, and the weights it feeds move apart
    # discretely (H200: 164 of fc1's 3072 weights past rtol 1e-2, up to 0.022
    # apart): there the weights are compared as a whole (relative Frobenius
    # distance). The fused kernel is the same code either way and stays held
    # to float32 round-off, element by element.
    loose = backend == "reference" and mx.default_device().type is not mx.cpu
    np.testing.assert_allclose(b, a, rtol=1e-3 if loose else 1e-5, atol=1e-6)
    # and it updated the model in place, as the uncompiled step did
    pa, pb = tree_flatten(ma.parameters()), tree_flatten(mb.parameters())
    assert [k for k, _ in pa] == [k for k, _ in pb]
    for (k, a_), (_, b_) in zip(pa, pb):
        a_, b_ = np.array(a_), np.array(b_)
        if loose:
            assert np.linalg.norm(b_ - a_) <= 0.05 * np.linalg.norm(a_), k
        else:
            np.testing.assert_allclose(b_, a_, rtol=1e-4, atol=1e-5, err_msg=k)

def test_compiled_step_updates_the_optimizer_state():
    mx.random.seed(1)
    model = fs.models.SpikingMLP(16, 8, backend="reference")
    opt = optim.Adam(learning_rate=1e-2)
    step = make_train_step(model, opt, lambda m, x, y: fs.functional.membrane_ce(m(x)[1], y))
    x = fs.encoding.rate(mx.random.uniform(shape=(4, 16)), 5, key=mx.random.key(0))
    w0 = np.array(model.fc1.weight)
    for _ in range(3):
        mx.eval(step(x, mx.arange(4)), model.parameters(), opt.state)
    assert opt.state["step"].item() == 3
    assert not np.array_equal(np.array(model.fc1.weight), w0)


def parse(*argv):
    p = argparse.ArgumentParser(prog="flashsnn train")
    cli.add_arguments(p)
    return p.parse_args(list(argv))


def run(tmp_path, *argv):
    assert cli.run(parse("--epochs", "2", "--limit-train", "256", "--limit-test", "60",
                         "--hidden", "32", "--steps", "10", "--no-progress", "--out",
                         str(tmp_path), *argv)) == 0
    return json.loads((tmp_path / "summary.json").read_text())


def test_flashsnn_train_compiled_and_not_follow_one_trajectory(tmp_path):
    on = run(tmp_path / "on")
    off = run(tmp_path / "off", "--no-compile")
    assert on["config"]["compile"] is True and off["config"]["compile"] is False
    la = [e["train_loss"] for e in on["epochs"]]
    lb = [e["train_loss"] for e in off["epochs"]]
    np.testing.assert_allclose(la, lb, rtol=1e-5)
    assert [e["test_accuracy"] for e in on["epochs"]] == \
        [e["test_accuracy"] for e in off["epochs"]]


def test_device_cpu_runs_on_the_cpu_and_leaves_the_default_alone(tmp_path):
    before = mx.default_device()
    s = run(tmp_path, "--device", "cpu")
    assert s["config"]["device"] == "cpu"
    assert s["machine"]["device"] == str(mx.Device(mx.cpu))
    assert mx.default_device() == before


def test_device_gpu_without_a_gpu_is_refused_with_the_choices(tmp_path, capsys, monkeypatch):
    # as on the Linux mlx[cpu] wheel, wherever the test runs
    monkeypatch.setattr(_device.mx, "is_available", lambda d: d == mx.cpu)
    assert cli.run(parse("--device", "gpu", "--out", str(tmp_path), "--no-progress")) == 2
    err = capsys.readouterr().err
    assert err.startswith("flashsnn train: error: --device gpu: ")
    assert "this MLX has no GPU" in err and "choose from 'cpu', 'gpu'" in err
    assert not (tmp_path / "summary.json").exists()
    with pytest.raises(ValueError, match=r"^\[device\] 'gpu' was asked for"):
        _device.resolve_device("gpu")


def test_unknown_device_names_the_choices(capsys):
    with pytest.raises(SystemExit) as e:
        parse("--device", "tpu")
    assert e.value.code == 2
    assert re.search(r"argument --device: invalid choice: 'tpu' \(choose from '?cpu'?, '?gpu'?\)",
                     capsys.readouterr().err)
    with pytest.raises(ValueError, match=r"^\[device\] unknown device 'tpu'; choose from "
                                         r"'cpu', 'gpu'$"):
        _device.resolve_device("tpu")


@pytest.mark.skipif(not mx.is_available(mx.gpu), reason="this MLX has no GPU")
def test_device_gpu_selects_the_gpu():
    assert _device.resolve_device("gpu") == mx.Device(mx.gpu)

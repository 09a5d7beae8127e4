"""``flashsnn train``: a short run on the digits learns (an untrained model
cannot reach the bar), writes a sane JSON and PNG; bad arguments and bad
data give clear errors."""

import argparse
import json
import os

import mlx.core as mx
import numpy as np
import pytest

import flashsnn as fs
from flashsnn.train import cli
from flashsnn.train.loop import _evaluate

from mnist_files import idx_bytes, make_mnist, write

# Measured here (seed 0 test coding, 30 untrained seeds): untrained models
# score 5-17% on the 360 digits test images; 3 epochs of C1 score 92-94%
# (seeds 0-3, both backends).
BAR = 0.80


def parse(*argv):
    p = argparse.ArgumentParser(prog="flashsnn train")
    cli.add_arguments(p)
    return p.parse_args(list(argv))


def run(*argv):
    return cli.run(parse(*argv))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("train")
    backend = "fused" if fs.fused_unavailable_reason() is None else "reference"
    assert run("--epochs", "3", "--backend", backend, "--out", str(out), "--no-progress") == 0
    return out


def test_untrained_models_cannot_reach_the_bar():
    d = fs.data.load_digits()
    x = fs.encoding.rate(mx.array(d.x_test), 25, key=mx.random.key(1))
    accs = []
    for seed in range(10):
        mx.random.seed(seed)
        accs.append(_evaluate(fs.models.SpikingMLP(64, 256, beta=0.85), x, d.y_test))
    assert max(accs) < 0.3 < BAR


def test_training_clears_the_bar_and_writes_a_sane_summary(trained):
    s = json.loads((trained / "summary.json").read_text())
    assert s["untrained_test_accuracy"] < 0.3
    assert s["final_test_accuracy"] >= BAR, s["epochs"]
    assert [e["epoch"] for e in s["epochs"]] == [1, 2, 3]
    losses = [e["train_loss"] for e in s["epochs"]]
    assert losses[-1] < losses[0] < 2.5                    # ln 10 = 2.30 at chance
    for e in s["epochs"]:
        assert 0 <= e["test_accuracy"] <= 1
        assert e["train_seconds"] > 0 and e["eval_seconds"] > 0
        assert 0 < e["peak_memory_mb"] < 4096
    assert s["config"]["preset"] == "C1" and s["config"]["hidden"] == 256
    assert s["dataset"] == {"name": "digits", "train": 1437, "test": 360, "features": 64,
                            "classes": 10}
    t = s["step_ms"]
    # 1437 training digits in batches of 128: 12 steps per epoch
    assert t["steps"] == 3 * 12 and all(e["step_ms"]["steps"] == 12 for e in s["epochs"])
    for part in (t, *[e["step_ms"] for e in s["epochs"]]):
        assert part["median"] > 0 and part["compute"] > 0 and part["batch"] >= 0
        # the split of the mean step adds up (host is the remainder, never negative)
        assert part["batch"] + part["compute"] + part["host"] == pytest.approx(part["mean"])
        assert part["host"] >= 0
    # an epoch's train seconds are its steps
    e1 = s["epochs"][1]
    assert e1["step_ms"]["mean"] * 12 / 1e3 == pytest.approx(e1["train_seconds"], rel=0.05)
    assert s["config"]["compile"] is True
    assert s["best_test_accuracy"] >= s["final_test_accuracy"]


def test_training_writes_a_png(trained):
    import matplotlib.image

    png = trained / "training.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = matplotlib.image.imread(str(png))
    assert img.shape[0] > 300 and img.shape[1] > 1000        # three panels side by side
    assert img[..., :3].std() > 0.05                         # not a blank canvas


def test_reference_backend_and_overrides(tmp_path):
    rc = run("--backend", "reference", "--epochs", "1", "--hidden", "32", "--steps", "8",
             "--batch-size", "256", "--lr", "0.005", "--beta", "0.9", "--limit-train", "512",
             "--limit-test", "100", "--seed", "3", "--out", str(tmp_path), "--no-progress",
             "--no-compile")
    assert rc == 0
    s = json.loads((tmp_path / "summary.json").read_text())
    c = s["config"]
    assert (c["backend"], c["hidden"], c["steps"], c["batch_size"], c["lr"], c["beta"]) == \
        ("reference", 32, 8, 256, 0.005, 0.9)
    assert s["dataset"]["train"] == 512 and s["dataset"]["test"] == 100
    assert c["compile"] is False
    assert s["step_ms"]["steps"] == 2                      # 512 samples in batches of 256


def test_mnist_from_idx_files(tmp_path):
    make_mnist(str(tmp_path), n_train=40, n_test=10, gz=True)
    rc = run("--data", "mnist", "--path", str(tmp_path), "--preset", "C5", "--epochs", "1",
             "--out", str(tmp_path / "out"), "--no-progress")
    assert rc == 0
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert s["dataset"]["features"] == 784 and s["preset"]["name"] == "C5"
    assert os.path.getsize(tmp_path / "out" / "training.png") > 10_000


@pytest.mark.parametrize("argv, match", [
    (["--data", "mnist"], r"--data mnist needs --path DIR"),
    (["--path", "/tmp"], r"--path is only used with --data mnist"),
    (["--data", "mnist", "--path", "/no/such/dir"], r"\[load_mnist\] no such directory"),
])
def test_run_errors(argv, match, capsys):
    assert run(*argv, "--no-progress") == 2
    err = capsys.readouterr().err
    assert err.startswith("flashsnn train: error: ")
    import re
    assert re.search(match, err), err


def test_malformed_mnist_is_reported(tmp_path, capsys):
    make_mnist(str(tmp_path))
    os.remove(tmp_path / "train-labels-idx1-ubyte")
    write(str(tmp_path / "train-labels-idx1-ubyte"), b"\x08\x01" + idx_bytes(np.zeros(12,
                                                                                     np.uint8)))
    assert run("--data", "mnist", "--path", str(tmp_path), "--out", str(tmp_path / "o"),
               "--no-progress") == 2
    assert "wrong magic number 0x08010000" in capsys.readouterr().err


@pytest.mark.parametrize("argv, match", [
    (["--epochs", "0"], r"argument --epochs: must be a positive integer; got '0'"),
    (["--lr", "-1"], r"argument --lr: must be a positive number; got '-1'"),
    (["--beta", "1.2"], r"argument --beta: must be a number in \[0, 1\]; got '1.2'"),
    (["--backend", "gpu"], (r"argument --backend: invalid choice: 'gpu' \(choose from "
                           r"'?fused'?, '?reference'?\)")),
    (["--preset", "C9"], r"argument --preset: invalid choice: 'C9'"),
    (["--data", "cifar"], r"argument --data: invalid choice: 'cifar'"),
])
def test_argument_errors(argv, match, capsys):
    with pytest.raises(SystemExit) as e:
        parse(*argv)
    assert e.value.code == 2
    import re
    assert re.search(match, capsys.readouterr().err)


def test_flashsnn_command_wires_train():
    pytest.importorskip("flashsnn.bench.runner",
                        reason="flashsnn.cli imports every subcommand; bench is not here yet")
    from flashsnn.cli import main
    with pytest.raises(SystemExit) as e:
        main(["train", "--help"])
    assert e.value.code == 0


def test_flashsnn_version(capsys):
    import mlx.core as mx
    from flashsnn.cli import main
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out == f"flashsnn {fs.__version__} (MLX {mx.__version__})\n"


def test_progress_bar_only_on_a_terminal(tmp_path, capsys, monkeypatch):
    """No --no-progress: stderr captured (not a terminal) gets no bar; the
    same run with a stderr that says it is a terminal does (so the check
    can fail)."""
    import sys
    argv = ("--epochs", "1", "--hidden", "16", "--steps", "4", "--batch-size", "128",
            "--limit-train", "512", "--limit-test", "64", "--no-compile",
            "--backend", "fused" if fs.fused_unavailable_reason() is None else "reference")
    assert run(*argv, "--out", str(tmp_path / "a")) == 0
    assert "/4 [" not in capsys.readouterr().err
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert run(*argv, "--out", str(tmp_path / "b")) == 0
    assert "/4 [" in capsys.readouterr().err

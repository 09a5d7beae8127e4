"""``flashsnn train --save DIR`` / ``--resume DIR``: a run stopped after an
epoch and resumed gives the uninterrupted run's next epoch (losses, accuracy
and parameters equal) for both models; a corrupt, foreign or mismatched
checkpoint is refused with an error that names the file or the fields and
leaves the folder as it was; a save that fails halfway leaves the previous
epoch's checkpoint in force."""

import hashlib
import json
import os
import sys

import mlx.core as mx
import numpy as np
import pytest

from flashsnn.train import checkpoint

sys.path.insert(0, os.path.dirname(__file__))
from test_train_cli import run  # noqa: E402  (the command-line helper)

MLP = ("--limit-train", "256", "--limit-test", "64", "--batch-size", "64", "--no-progress")
MAMBA = ("--model", "mamba-spike", "--limit-train", "64", "--limit-test", "32",
         "--batch-size", "32", "--steps", "6", "--channels", "4", "--d-model", "8",
         "--layers", "1", "--d-state", "4", "--no-progress")


def summary(out):
    with open(os.path.join(out, "summary.json")) as f:
        return json.load(f)


def arrays(folder):
    with open(os.path.join(folder, checkpoint.INDEX)) as f:
        files = json.load(f)["files"]
    return {k: {n: np.array(v) for n, v in mx.load(os.path.join(folder, e["file"])).items()}
            for k, e in files.items()}


def digests(folder):
    return {n: hashlib.sha256(open(os.path.join(folder, n), "rb").read()).hexdigest()
            for n in sorted(os.listdir(folder))}


class Killed(Exception):
    """Stands for the process being killed right after a checkpoint."""


@pytest.mark.parametrize("argv", [MLP, MAMBA], ids=["mlp", "mamba-spike"])
def test_resume_continues_as_the_uninterrupted_run(tmp_path, argv, monkeypatch):
    full, part = tmp_path / "full", tmp_path / "part"
    assert run(*argv, "--epochs", "3", "--out", str(full), "--save", str(full / "ck")) == 0
    real = checkpoint.save

    def save_then_die(*a, epoch, **k):
        real(*a, epoch=epoch, **k)
        if epoch == 1:
            raise Killed
    monkeypatch.setattr(checkpoint, "save", save_then_die)
    with pytest.raises(Killed):
        run(*argv, "--epochs", "3", "--out", str(part), "--save", str(part / "ck"))
    monkeypatch.undo()
    assert json.load(open(part / "ck" / checkpoint.INDEX))["epoch"] == 1
    assert run(*argv, "--epochs", "3", "--out", str(part), "--resume", str(part / "ck")) == 0
    a, b = summary(full), summary(part)
    assert [e["epoch"] for e in b["epochs"]] == [1, 2, 3]
    for ea, eb in zip(a["epochs"], b["epochs"]):
        assert ea["train_loss"] == eb["train_loss"], (ea, eb)        # the same bits
        assert ea["test_accuracy"] == eb["test_accuracy"]
    assert a["epochs"][2]["train_loss"] < a["epochs"][0]["train_loss"]  # it trains
    assert b["untrained_test_accuracy"] == a["untrained_test_accuracy"]
    pa, pb = arrays(full / "ck"), arrays(part / "ck")
    for kind in ("model", "optimizer"):
        assert pa[kind].keys() == pb[kind].keys() and len(pa[kind]) > 3
        for name in pa[kind]:
            np.testing.assert_array_equal(pa[kind][name], pb[kind][name], err_msg=name)
    # only the last epoch's files stay
    assert sorted(os.listdir(part / "ck")) == ["checkpoint.json", "model-e3.safetensors",
                                               "optimizer-e3.safetensors"]


@pytest.fixture
def saved(tmp_path):
    ck = tmp_path / "ck"
    assert run(*MLP, "--epochs", "1", "--out", str(tmp_path / "o"), "--save", str(ck)) == 0
    return ck


def refused(capsys, *argv):
    assert run(*argv) == 2
    return capsys.readouterr().err


def test_a_corrupt_file_is_refused_and_left_alone(saved, capsys, tmp_path):
    model = saved / "model-e1.safetensors"
    data = bytearray(model.read_bytes())
    data[-3] ^= 0xFF
    model.write_bytes(bytes(data))
    before = digests(saved)
    err = refused(capsys, *MLP, "--epochs", "2", "--out", str(tmp_path / "o"), "--resume",
                  str(saved))
    assert "model-e1.safetensors is corrupt" in err and "SHA-256" in err, err
    assert digests(saved) == before


def test_a_mismatched_configuration_names_the_fields(saved, capsys, tmp_path):
    before = digests(saved)
    err = refused(capsys, *MLP, "--epochs", "2", "--hidden", "32", "--lr", "0.01", "--out",
                  str(tmp_path / "o"), "--resume", str(saved))
    assert "was trained with another configuration" in err
    assert "hidden: checkpoint 256, now 32" in err and "lr: checkpoint" in err, err
    err = refused(capsys, *MAMBA, "--epochs", "2", "--out", str(tmp_path / "o"), "--resume",
                  str(saved))
    assert "holds a --model mlp run, not --model mamba-spike" in err, err
    err = refused(capsys, *MLP, "--epochs", "1", "--out", str(tmp_path / "o"), "--resume",
                  str(saved))
    assert "already ends epoch 1 of --epochs 1" in err, err
    assert digests(saved) == before


def test_not_a_checkpoint(tmp_path, capsys):
    err = refused(capsys, *MLP, "--resume", str(tmp_path))
    assert "is not a checkpoint: it has no checkpoint.json" in err, err
    err = refused(capsys, *MLP, "--resume", str(tmp_path / "nope"))
    assert "no such directory" in err, err
    (tmp_path / checkpoint.INDEX).write_text("{not json")
    err = refused(capsys, *MLP, "--resume", str(tmp_path))
    assert "checkpoint.json is corrupt" in err, err


def test_shapes_that_do_not_fit_are_named(saved, tmp_path):
    import flashsnn as fs
    import mlx.optimizers as optim
    from dataclasses import asdict
    from flashsnn.train import TrainConfig

    cfg = asdict(TrainConfig(limit_train=256, limit_test=64, batch_size=64, epochs=2,
                             progress=False).resolved())
    index = json.loads((saved / checkpoint.INDEX).read_text())
    model = fs.models.SpikingMLP(64, 16, 10)       # the checkpoint's has 256 hidden
    with pytest.raises(ValueError, match=r"fc1.weight has shape \(256, 64\), this model "
                                         r"\(16, 64\)"):
        checkpoint.load(str(saved), model, optim.Adam(learning_rate=1e-3), kind="mlp",
                        config=dict(index["config"], epochs=cfg["epochs"]))


def test_a_save_that_fails_halfway_keeps_the_last_checkpoint(saved, tmp_path, monkeypatch):
    from flashsnn.train import TrainConfig, train

    before = json.loads((saved / checkpoint.INDEX).read_text())
    real = checkpoint._write_arrays

    def failing(directory, name, tree):
        if name.startswith("optimizer"):
            raise OSError("disk full (simulated)")
        return real(directory, name, tree)
    monkeypatch.setattr(checkpoint, "_write_arrays", failing)
    cfg = TrainConfig(limit_train=256, limit_test=64, batch_size=64, epochs=2, progress=False,
                      out=str(tmp_path / "o"), resume=str(saved))
    with pytest.raises(OSError, match="simulated"):
        train(cfg, log=lambda *a: None)
    monkeypatch.undo()
    # epoch 2's model file may be there, but the index still names epoch 1's
    assert json.loads((saved / checkpoint.INDEX).read_text()) == before
    assert train(cfg, log=lambda *a: None)["epochs"][-1]["epoch"] == 2

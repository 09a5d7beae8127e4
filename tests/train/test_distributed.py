"""``flashsnn train`` data-parallel on ``mx.distributed``: two processes
started by ``mlx.launch`` with the ring backend over localhost train as one
process does on the same global batches (losses and accuracies within
float32 round-off, for both models), the process without rows in a last
batch smaller than the group adds nothing wrong, and only the first process
prints and writes."""

import json
import os
import shutil
import subprocess
import sys

import pytest

import flashsnn
from flashsnn.train import distributed

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
# 129 digits in batches of 64: the last batch has one row, so in two
# processes the second has none there
MLP = ("--limit-train", "129", "--limit-test", "90", "--batch-size", "64", "--epochs", "2",
       "--no-progress")
MAMBA = ("--model", "mamba-spike", "--limit-train", "65", "--limit-test", "33",
         "--batch-size", "32", "--steps", "6", "--channels", "4", "--d-model", "8",
         "--layers", "1", "--d-state", "4", "--epochs", "2", "--no-progress")


def launcher():
    exe = shutil.which("mlx.launch", path=os.path.dirname(sys.executable)) or \
        shutil.which("mlx.launch")
    if exe is None:
        pytest.fail("mlx.launch is not installed beside this Python (MLX installs it)")
    return exe


def train(out, argv, processes):
    env = dict(os.environ)
    # the flashsnn this test imported (installed, or a source tree with _ext)
    here = os.path.dirname(os.path.dirname(flashsnn.__file__))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH")) if p)
    cmd = [sys.executable, "-m", "flashsnn", "train", *argv, "--out", str(out)]
    if processes > 1:
        cmd = [launcher(), "-n", str(processes), "--backend", "ring", *cmd]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)
    # mlx.launch (MLX 0.32.4) exits 0 when a process fails: the summary tells
    ok = p.returncode == 0 and os.path.isfile(os.path.join(out, "summary.json"))
    assert ok, f"rc {p.returncode}\n" + p.stdout[-3000:] + p.stderr[-3000:]
    with open(os.path.join(out, "summary.json")) as f:
        return json.load(f), p.stdout


@pytest.mark.parametrize("argv", [MLP, MAMBA], ids=["mlp", "mamba-spike"])
def test_two_processes_train_as_one(tmp_path, argv):
    one, _ = train(tmp_path / "one", argv, 1)
    two, out = train(tmp_path / "two", argv, 2)
    assert one["processes"] == 1 and two["processes"] == 2
    assert "data-parallel over 2 processes" in out
    assert out.count("final test accuracy") == 1          # only the first process logs
    assert len(two["epochs"]) == 2
    for a, b in zip(one["epochs"], two["epochs"]):
        # the same step on the same rows, summed in another order: float32 round-off
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=2e-5), (a, b)
        assert abs(b["test_accuracy"] - a["test_accuracy"]) <= 1 / 90 + 1e-9, (a, b)
    if argv is MLP:       # (the 8-wide Mamba-Spike of 3 steps an epoch barely moves)
        assert two["epochs"][-1]["train_loss"] < two["epochs"][0]["train_loss"]


class Group:
    def __init__(self, size, rank):
        self._size, self._rank = size, rank

    def size(self):
        return self._size

    def rank(self):
        return self._rank


@pytest.mark.parametrize("n, k", [(10, 3), (1, 2), (64, 2), (7, 7), (5, 8)])
def test_rows_split_every_row_once(n, k):
    parts = [distributed.rows(n, Group(k, r)) for r in range(k)]
    taken = [i for p in parts for i in range(n)[p]]
    assert taken == list(range(n))
    sizes = [p.stop - p.start for p in parts]
    assert max(sizes) - min(sizes) <= 1

"""Training the spiking MLP with BPTT: the loop behind ``flashsnn train``.

Each batch is rate-coded afresh (Bernoulli, T steps) from a key split off
the run's seed; the test set is coded once with its own key, so every
epoch's accuracy is measured on the same spikes. Per epoch: mean train
loss, test accuracy, train and eval seconds, and peak memory
(``mx.get_peak_memory`` after ``mx.reset_peak_memory`` at the epoch's
start).
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass

import numpy as np

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim

from .. import data as _data, encoding, functional
from ..models import PRESETS, SpikingMLP
from . import profile

EVAL_BATCH = 500          # forward only: [25, 500, 784] float32 is 39 MB


@dataclass
class TrainConfig:
    """One run. Unset (None) hyperparameters come from ``preset``."""

    data: str = "digits"
    path: str | None = None
    preset: str = "C1"
    epochs: int | None = None
    batch_size: int | None = None
    steps: int | None = None
    hidden: int | None = None
    lr: float | None = None
    beta: float | None = None
    seed: int = 0
    backend: str = "fused"
    out: str | None = None
    limit_train: int | None = None
    limit_test: int | None = None
    progress: bool = True
    profile: bool = True

    def resolved(self) -> "TrainConfig":
        """A copy with the preset's values filled in and the output folder set."""
        if self.preset not in PRESETS:
            raise ValueError(f"[train] unknown preset {self.preset!r}; valid: "
                             + ", ".join(PRESETS))
        p = PRESETS[self.preset]
        c = TrainConfig(**asdict(self))
        c.epochs = p.epochs if c.epochs is None else c.epochs
        c.batch_size = p.batch_size if c.batch_size is None else c.batch_size
        c.steps = p.steps if c.steps is None else c.steps
        c.hidden = p.hidden if c.hidden is None else c.hidden
        c.lr = p.lr if c.lr is None else c.lr
        c.beta = p.beta if c.beta is None else c.beta
        if c.out is None:
            c.out = os.path.join("runs", f"train-{c.data}-{c.preset}-{c.backend}")
        return c


def _evaluate(model, x: mx.array, y: np.ndarray) -> float:
    correct = 0
    for i in range(0, len(y), EVAL_BATCH):
        _, mem = model(x[:, i:i + EVAL_BATCH])
        pred = np.array(mx.argmax(mem, axis=-1))
        correct += int((pred == y[i:i + EVAL_BATCH]).sum())
    return correct / len(y)


def _machine() -> dict:
    from .. import __version__

    return {"platform": platform.platform(), "processor": platform.processor() or None,
            "cpu_count": os.cpu_count(), "python": platform.python_version(),
            "mlx": getattr(mx, "__version__", "?"), "flashsnn": __version__,
            "device": str(mx.default_device())}


def train(cfg: TrainConfig, *, log=print) -> dict:
    """Train, write ``summary.json`` and ``training.png`` into ``cfg.out``,
    and return the summary.

    >>> from flashsnn.train import TrainConfig, train
    >>> s = train(TrainConfig(epochs=1, out="/tmp/fs-doc", progress=False,
    ...                       profile=False), log=lambda *a: None)
    >>> 0.5 < s["final_test_accuracy"] <= 1
    True
    """
    from tqdm import tqdm

    from .plot import save_report

    cfg = cfg.resolved()
    ds = _data.load(cfg.data, cfg.path).limit(cfg.limit_train, cfg.limit_test)
    if len(ds.y_train) == 0 or len(ds.y_test) == 0:
        raise ValueError(f"[train] empty split: {ds}")
    os.makedirs(cfg.out, exist_ok=True)

    mx.random.seed(cfg.seed)                                  # weight init
    rng = np.random.default_rng(cfg.seed)                     # batch order
    train_key, test_key = mx.random.split(mx.random.key(cfg.seed))
    model = SpikingMLP(ds.num_features, cfg.hidden, ds.num_classes, beta=cfg.beta,
                       backend=cfg.backend)
    mx.eval(model.parameters())
    opt = optim.Adam(learning_rate=cfg.lr)

    def loss_fn(m, x, y):
        _, mem = m(x)
        return functional.membrane_ce(mem, y)

    step = nn.value_and_grad(model, loss_fn)
    x_test = encoding.rate(mx.array(ds.x_test), cfg.steps, key=test_key)
    mx.eval(x_test)

    log(f"flashsnn train: {ds}, preset {cfg.preset} (beta {cfg.beta}, hidden {cfg.hidden}, "
        f"lr {cfg.lr}, batch {cfg.batch_size}, T {cfg.steps}), {cfg.epochs} epochs, "
        f"backend {cfg.backend}, seed {cfg.seed}, device {mx.default_device()}")
    untrained = _evaluate(model, x_test, ds.y_test)
    log(f"untrained test accuracy {100 * untrained:.2f}%")

    epochs = []
    n_batches = -(-len(ds.y_train) // cfg.batch_size)
    t_run = time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        mx.reset_peak_memory()
        t0, c0 = time.perf_counter(), time.process_time()
        losses = []
        bar = tqdm(_data.batches(ds.x_train, ds.y_train, cfg.batch_size, rng=rng),
                   total=n_batches, desc=f"epoch {epoch}/{cfg.epochs}", unit="batch",
                   leave=False, disable=not cfg.progress)
        for xb, yb in bar:
            train_key, sub = mx.random.split(train_key)
            x = encoding.rate(mx.array(xb), cfg.steps, key=sub)
            loss, grads = step(model, x, mx.array(yb))
            opt.update(model, grads)
            mx.eval(model.parameters(), opt.state, loss)
            losses.append(loss.item())
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
        train_s, train_cpu = time.perf_counter() - t0, time.process_time() - c0
        t1 = time.perf_counter()
        acc = _evaluate(model, x_test, ds.y_test)
        eval_s = time.perf_counter() - t1
        e = {"epoch": epoch, "train_loss": float(np.mean(losses)), "test_accuracy": acc,
             "train_seconds": train_s, "train_cpu_seconds": train_cpu, "eval_seconds": eval_s,
             "peak_memory_mb": mx.get_peak_memory() / 2**20}
        epochs.append(e)
        log(f"epoch {epoch:3d}/{cfg.epochs}  loss {e['train_loss']:.4f}  "
            f"test {100 * acc:6.2f}%  train {train_s:6.2f} s (cpu {train_cpu:6.2f} s)  "
            f"eval {eval_s:5.2f} s  "
            f"peak {e['peak_memory_mb']:7.1f} MB")
    total_s = time.perf_counter() - t_run

    split = None
    if cfg.profile:
        xb, yb = ds.x_train[:cfg.batch_size], ds.y_train[:cfg.batch_size]
        x = encoding.rate(mx.array(xb), cfg.steps, key=mx.random.key(cfg.seed))
        split = profile.time_split(model, x, mx.array(yb))
        log(f"one step at batch {len(yb)} (best of 10): {split['step_ms']:.1f} ms; LIF layers "
            f"fwd+bwd {split['lif_ms']:.1f} ms, Linear layers fwd+bwd "
            f"{split['linear_ms']:.1f} ms")

    rec = model(x_test[:, :1], record=True)
    sample = {"input": np.array(x_test[:, 0]), "hidden": np.array(rec["spk1"][:, 0]),
              "mem": np.array(rec["mem2"][:, 0]), "label": int(ds.y_test[0]),
              "prediction": int(mx.argmax(rec["mem2"][-1, 0]).item())}
    train_times = [e["train_seconds"] for e in epochs]
    summary = {
        "config": asdict(cfg),
        "preset": PRESETS[cfg.preset].as_dict(),
        "dataset": {"name": ds.name, "train": len(ds.y_train), "test": len(ds.y_test),
                    "features": ds.num_features, "classes": ds.num_classes},
        "machine": _machine(),
        "untrained_test_accuracy": untrained,
        "epochs": epochs,
        "final_test_accuracy": epochs[-1]["test_accuracy"] if epochs else untrained,
        "best_test_accuracy": max([e["test_accuracy"] for e in epochs], default=untrained),
        # the first epoch carries one-time costs; the median is the steady state
        "median_epoch_seconds": float(np.median(train_times)) if epochs else None,
        "mean_epoch_seconds": float(np.mean(train_times)) if epochs else None,
        "min_epoch_seconds": float(np.min(train_times)) if epochs else None,
        # CPU seconds of all threads: steadier than wall time on a shared machine
        "median_epoch_cpu_seconds": float(np.median([e["train_cpu_seconds"] for e in epochs]))
        if epochs else None,
        "peak_memory_mb": max([e["peak_memory_mb"] for e in epochs], default=None),
        "total_seconds": total_s,
        "time_split_ms": split,
        "files": {"summary": os.path.join(cfg.out, "summary.json"),
                  "plot": os.path.join(cfg.out, "training.png")},
    }
    with open(summary["files"]["summary"], "w") as f:
        json.dump(summary, f, indent=2)
    save_report(summary["files"]["plot"], summary, sample)
    log(f"final test accuracy {100 * summary['final_test_accuracy']:.2f}% (best "
        f"{100 * summary['best_test_accuracy']:.2f}%), median epoch "
        f"{summary['median_epoch_seconds'] or 0:.2f} s; wrote {summary['files']['summary']} "
        f"and {summary['files']['plot']}")
    return summary

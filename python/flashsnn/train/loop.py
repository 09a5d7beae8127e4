"""Training the spiking MLP with BPTT: the loop behind ``flashsnn train``.

Each batch is rate-coded afresh (Bernoulli, T steps) from a key split off
the run's seed; the test set is coded once with its own key, so every
epoch's accuracy is measured on the same spikes. The training step (forward,
loss, backward, Adam) is one ``mx.compile``d function unless
``compile=False`` (:func:`flashsnn.train.make_train_step`). Per epoch: mean
train loss, test accuracy, train and eval seconds, the time per step (its
median, and a split of its mean into the batch, the step and the host's
bookkeeping that adds up), and peak memory: MLX's (``mx.get_peak_memory``)
plus that of the fused ops' own buffer cache (``flashsnn.memory``), both
reset at the epoch's start; the sum bounds the true peak from above.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass

import numpy as np

import mlx.core as mx
import mlx.optimizers as optim

from .. import data as _data, encoding, functional, memory
from . import checkpoint, distributed
from .._device import device_name, resolve_device
from ..models import PRESETS, SpikingMLP
from .step import make_train_step

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
    compile: bool = True
    device: str | None = None      # "cpu" or "gpu"; None: MLX's default device
    save: str | None = None        # checkpoint folder, written after every epoch
    resume: str | None = None      # checkpoint folder to go on from (and save to)

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


def _evaluate(model, x: mx.array, y: np.ndarray, group=None) -> float:
    """Test accuracy; with a group, each process counts its rows, summed."""
    n = len(y)
    part = distributed.rows(n, group)
    x, y = x[:, part], y[part]
    correct = 0
    for i in range(0, len(y), EVAL_BATCH):
        _, mem = model(x[:, i:i + EVAL_BATCH])
        pred = np.array(mx.argmax(mem, axis=-1))
        correct += int((pred == y[i:i + EVAL_BATCH]).sum())
    return distributed.total(correct, group) / n


def _machine() -> dict:
    from .. import __version__

    return {"platform": platform.platform(), "processor": platform.processor() or None,
            "cpu_count": os.cpu_count(), "python": platform.python_version(),
            "mlx": getattr(mx, "__version__", "?"), "flashsnn": __version__,
            "device": str(mx.default_device())}


def _step_times(total: list, batch: list, compute: list) -> dict:
    """Per-step milliseconds. Each step's wall time is exactly batch (the
    next batch from numpy and its input graph: rate coding is lazy, so its
    arithmetic runs in the step) + compute (the training step and the wait
    for its loss, parameters and optimizer state) + host (the loss to
    Python, the progress bar), so the means add up to the mean step. The
    first step of a shape carries the mx.compile trace (the digits MLP on the
    2-core CPU host: 101 ms against a 76 ms median), so the median is the
    steady state."""
    t, b, c = (np.asarray(v) * 1e3 for v in (total, batch, compute))
    return {"median": float(np.median(t)), "mean": float(t.mean()),
            "batch": float(b.mean()), "compute": float(c.mean()),
            "host": float((t - b - c).mean()), "median_compute": float(np.median(c)),
            "first": float(t[0]), "steps": len(t)}


def train(cfg: TrainConfig, *, log=print) -> dict:
    """Train, write ``summary.json`` and ``training.png`` into ``cfg.out``,
    and return the summary.

    >>> from flashsnn.train import TrainConfig, train
    >>> s = train(TrainConfig(epochs=1, out="/tmp/fs-doc", progress=False),
    ...           log=lambda *a: None)
    >>> 0.5 < s["final_test_accuracy"] <= 1
    True
    """
    cfg = cfg.resolved()
    device = resolve_device(cfg.device)
    with mx.stream(device):         # the caller's default device is back afterwards
        return _train(cfg, device, log)


def _train(cfg: TrainConfig, device: mx.Device, log) -> dict:
    from tqdm import tqdm

    from .plot import save_report

    ds = _data.load(cfg.data, cfg.path).limit(cfg.limit_train, cfg.limit_test)
    if len(ds.y_train) == 0 or len(ds.y_test) == 0:
        raise ValueError(f"[train] empty split: {ds}")
    group = distributed.group()
    lead = group.rank() == 0          # the one process that logs and writes
    if not lead:
        log = distributed.quiet
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

    epochs, first, untrained = [], 1, None
    if cfg.resume:                  # before the step: a compiled step holds opt.state
        st = checkpoint.load(cfg.resume, model, opt, kind="mlp", config=asdict(cfg),
                             epochs=cfg.epochs)
        epochs, first, rng = st["epochs"], st["epoch"] + 1, st["rng"]
        train_key, untrained = st["keys"]["train"], st["extra"].get("untrained_test_accuracy")
    save_to = cfg.save or cfg.resume
    step = make_train_step(model, opt, loss_fn, compile=cfg.compile, group=group)
    x_test = encoding.rate(mx.array(ds.x_test), cfg.steps, key=test_key)
    mx.eval(x_test)

    log(f"flashsnn train: {ds}, preset {cfg.preset} (beta {cfg.beta}, hidden {cfg.hidden}, "
        f"lr {cfg.lr}, batch {cfg.batch_size}, T {cfg.steps}), {cfg.epochs} epochs, "
        f"backend {cfg.backend}, seed {cfg.seed}, device {device_name(device)}, "
        f"{'compiled' if cfg.compile else 'uncompiled'} step{distributed.describe(group)}")
    if cfg.resume:
        log(f"resumed from {cfg.resume} after epoch {first - 1}")
    else:
        untrained = _evaluate(model, x_test, ds.y_test, group)
        log(f"untrained test accuracy {100 * untrained:.2f}%")

    all_total, all_batch, all_compute = [], [], []
    progress = cfg.progress and sys.stderr.isatty() and lead
    n_batches = -(-len(ds.y_train) // cfg.batch_size)
    t_run = time.perf_counter()
    for epoch in range(first, cfg.epochs + 1):
        mx.reset_peak_memory()
        memory.reset_peak_memory()
        t0, c0 = time.perf_counter(), time.process_time()
        losses, total, batch, compute = [], [], [], []
        bar = tqdm(_data.batches(ds.x_train, ds.y_train, cfg.batch_size, rng=rng),
                   total=n_batches, desc=f"epoch {epoch}/{cfg.epochs}", unit="batch",
                   leave=False, disable=not progress)
        t_end = time.perf_counter()
        for xb, yb in bar:
            train_key, sub = mx.random.split(train_key)
            # the whole batch coded as one process would, then this process's rows
            x, y, kw = distributed.shard(encoding.rate(mx.array(xb), cfg.steps, key=sub),
                                         mx.array(yb), group)
            t_step = time.perf_counter()
            loss = step(x, y, **kw)
            mx.eval(loss, model.parameters(), opt.state)
            t_done = time.perf_counter()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
            t_next = time.perf_counter()
            total.append(t_next - t_end)
            batch.append(t_step - t_end)
            compute.append(t_done - t_step)
            t_end = t_next
        train_s, train_cpu = time.perf_counter() - t0, time.process_time() - c0
        all_total += total
        all_batch += batch
        all_compute += compute
        st = _step_times(total, batch, compute)
        t1 = time.perf_counter()
        acc = _evaluate(model, x_test, ds.y_test, group)
        eval_s = time.perf_counter() - t1
        e = {"epoch": epoch, "train_loss": float(np.mean(losses)), "test_accuracy": acc,
             "train_seconds": train_s, "train_cpu_seconds": train_cpu, "eval_seconds": eval_s,
             "peak_memory_mb": (mx.get_peak_memory() + memory.get_peak_memory()) / 2**20,
             "step_ms": st}
        epochs.append(e)
        log(f"epoch {epoch:3d}/{cfg.epochs}  loss {e['train_loss']:.4f}  "
            f"test {100 * acc:6.2f}%  train {train_s:6.2f} s (cpu {train_cpu:6.2f} s)  "
            f"step {st['median']:.2f} ms median (mean {st['mean']:.2f} = batch "
            f"{st['batch']:.2f} + step {st['compute']:.2f} + host {st['host']:.2f})  "
            f"eval {eval_s:5.2f} s  peak {e['peak_memory_mb']:7.1f} MB")
        if save_to and lead:
            checkpoint.save(save_to, model, opt, kind="mlp", config=asdict(cfg), epoch=epoch,
                            epochs=epochs, rng=rng, keys={"train": train_key},
                            extra={"untrained_test_accuracy": untrained})
    total_s = time.perf_counter() - t_run

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
        "processes": group.size(),
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
        # every step of the run; the first carries the compile
        "step_ms": _step_times(all_total, all_batch, all_compute) if all_total else None,
        "files": {"summary": os.path.join(cfg.out, "summary.json"),
                  "plot": os.path.join(cfg.out, "training.png")},
    }
    if lead:
        with open(summary["files"]["summary"], "w") as f:
            json.dump(summary, f, indent=2)
        save_report(summary["files"]["plot"], summary, sample)
    log(f"final test accuracy {100 * summary['final_test_accuracy']:.2f}% (best "
        f"{100 * summary['best_test_accuracy']:.2f}%), median epoch "
        f"{summary['median_epoch_seconds'] or 0:.2f} s, median step "
        f"{(summary['step_ms'] or {}).get('median', 0):.2f} ms; wrote "
        f"{summary['files']['summary']} and {summary['files']['plot']}")
    return summary

"""Mamba-Spike in flashsnn (MLX) and in PyTorch, trained side by side.

Both models start from the same weights (the MLX model's initialisation,
copied into the PyTorch twin by ``copy_from_mlx``), see the same batches of
the same spike frames in the same order (coded once per epoch by flashsnn's
digits source and handed to both), and follow the same recipe (AdamW with
bias correction, per-step cosine from lr to 1e-5, clipping at 1). What
differs is only the framework: flashsnn's fused LIF and scan kernels under
one ``mx.compile``d step against PyTorch's eager ops (the scan a Python
loop over time, as ``benchmarks/mamba_spike_torch.py``).

    python benchmarks/mamba_spike_side_by_side.py                    # 3 seeds, CPU
    python benchmarks/mamba_spike_side_by_side.py --seeds 0 --epochs 2 --device gpu

Prints per-epoch accuracy and time of both, the means over seeds and the
time ratio; writes JSON (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def run_seed(seed: int, cfg, device: str, log) -> dict:
    import mlx.core as mx
    import torch

    from flashsnn.train.mamba_spike import evaluate, make_optimizer, make_step
    from flashsnn.models import count_parameters
    from mamba_spike_torch import TorchMambaSpike, copy_from_mlx, train_torch
    from mamba_spike_torch import evaluate as t_evaluate

    tdev = torch.device("cuda" if device == "gpu" else "cpu")
    mx.random.seed(seed)
    src = cfg.source()
    model = cfg.model(src.in_shape, src.num_classes)
    mx.eval(model.parameters())
    twin = TorchMambaSpike(src.in_shape, src.num_classes, channels=cfg.channels,
                           d_model=cfg.d_model, n_layers=cfg.n_layers, d_state=cfg.d_state,
                           threshold=cfg.threshold)
    copy_from_mlx(twin, model)
    twin.to(tdev)
    # One epoch's batches, coded once and fed to both frameworks.
    rng = np.random.default_rng(seed)
    epochs_data = []
    for _ in range(cfg.epochs):
        epochs_data.append([(np.array(x), np.array(y))
                            for x, y in src.train_batches(cfg.batch_size, rng)])
    steps = len(epochs_data[0])
    x_te = np.concatenate([np.array(x) for x, _ in src.test_batches(256)], axis=1)
    y_te = np.concatenate([np.asarray(y) for _, y in src.test_batches(256)])

    # flashsnn
    opt = make_optimizer(cfg, cfg.epochs * steps)
    step = make_step(model, opt, cfg.clip, cfg.compile)
    fs_epochs = []
    for e, batches in enumerate(epochs_data, 1):
        t0 = time.perf_counter()
        losses = []
        for x, y in batches:
            loss = step(mx.array(x), mx.array(y))
            mx.eval(loss, model.parameters(), opt.state)
            losses.append(loss.item())
        dt = time.perf_counter() - t0
        acc = evaluate(model, src)
        fs_epochs.append({"epoch": e, "train_loss": float(np.mean(losses)),
                          "train_seconds": dt, "test_accuracy": acc})
        log(f"  seed {seed} flashsnn epoch {e}: loss {fs_epochs[-1]['train_loss']:.4f} "
            f"test {100 * acc:.2f}% train {dt:.2f} s")

    # PyTorch
    def batches_fn(epoch):
        return [(torch.as_tensor(x, device=tdev), torch.as_tensor(y, device=tdev, dtype=torch.long))
                for x, y in epochs_data[epoch - 1]]

    def tlog(e):
        log(f"  seed {seed} PyTorch  epoch {e['epoch']}: loss {e['train_loss']:.4f} test "
            f"{100 * e['test_accuracy']:.2f}% train {e['train_seconds']:.2f} s")
    res = train_torch(twin, batches_fn, cfg.epochs, lr=cfg.lr, weight_decay=cfg.weight_decay,
                      lr_min=cfg.lr_min, clip=cfg.clip, steps_per_epoch=steps,
                      eval_data=(torch.as_tensor(x_te, device=tdev),
                                 torch.as_tensor(y_te, device=tdev)), log=tlog)
    return {"seed": seed, "parameters": count_parameters(model), "steps_per_epoch": steps,
            "flashsnn": fs_epochs, "torch": res["epochs"], "torch_threads": res["num_threads"],
            "torch_final_check": t_evaluate(twin, torch.as_tensor(x_te, device=tdev),
                                            torch.as_tensor(y_te, device=tdev))}


def summarize(runs: list) -> dict:
    out = {}
    for fw in ("flashsnn", "torch"):
        acc = [r[fw][-1]["test_accuracy"] for r in runs]
        # the first epoch includes compilation and warm-up: the median of the rest
        ep = [e["train_seconds"] for r in runs for e in r[fw][1:]] or \
             [e["train_seconds"] for r in runs for e in r[fw]]
        out[fw] = {"final_accuracy_mean": float(np.mean(acc)),
                   "final_accuracy_std": float(np.std(acc)), "final_accuracies": acc,
                   "median_epoch_seconds": float(np.median(ep)),
                   "first_epoch_seconds_mean": float(np.mean([r[fw][0]["train_seconds"]
                                                              for r in runs]))}
    out["accuracy_gap_points"] = 100 * (out["flashsnn"]["final_accuracy_mean"]
                                        - out["torch"]["final_accuracy_mean"])
    out["torch_over_flashsnn_epoch_time"] = (out["torch"]["median_epoch_seconds"]
                                             / out["flashsnn"]["median_epoch_seconds"])
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=None, help="(digits default: 6)")
    p.add_argument("--steps", type=int, default=None, help="time steps T (default 10)")
    p.add_argument("--limit-train", type=int, default=None)
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--out", default="benchmarks/results/mamba-spike-side-by-side.json")
    a = p.parse_args(argv)

    import flashsnn as fs  # first: it puts MLX's products on OpenBLAS (docs/blas.md)
    import mlx.core as mx
    import torch
    from flashsnn.train.mamba_spike import MambaSpikeConfig

    if a.device == "gpu":
        mx.set_default_device(mx.gpu)
    cfg = MambaSpikeConfig(epochs=a.epochs, steps=a.steps, limit_train=a.limit_train,
                           lif_backend="fused", scan_backend="fused",
                           device=a.device).resolved()
    print(f"Mamba-Spike side by side on digits: {vars(a)}; MLX {mx.__version__} (BLAS: "
          f"{fs.blas_info()['blas']}), torch "
          f"{torch.__version__} ({torch.get_num_threads()} threads), {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores", flush=True)
    runs = []
    with mx.stream(mx.gpu if a.device == "gpu" else mx.cpu):
        for seed in a.seeds:
            cfg.seed = seed
            runs.append(run_seed(seed, cfg, a.device, lambda s: print(s, flush=True)))
    summary = summarize(runs)
    for fw in ("flashsnn", "torch"):
        s = summary[fw]
        print(f"{fw:9s} final accuracy {100 * s['final_accuracy_mean']:.2f}% "
              f"(+- {100 * s['final_accuracy_std']:.2f}, seeds {a.seeds}), median epoch "
              f"{s['median_epoch_seconds']:.2f} s (first {s['first_epoch_seconds_mean']:.2f} s)")
    print(f"accuracy gap {summary['accuracy_gap_points']:+.2f} points; PyTorch's epoch takes "
          f"{summary['torch_over_flashsnn_epoch_time']:.2f}x flashsnn's")
    doc = {"argv": vars(a), "config": {k: v for k, v in vars(cfg).items()},
           "blas": fs.blas_info(),
           "versions": {"mlx": mx.__version__, "torch": torch.__version__,
                        "flashsnn": fs.__version__, "python": platform.python_version()},
           "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
           "summary": summary, "runs": runs}
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(doc, f, indent=2)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

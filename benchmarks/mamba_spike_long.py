"""Mamba-Spike on long event streams: one training step of the DVS-Gesture
recipe's model (128x128x2 frames, C 128, d_model 256, 6 blocks, 36.25 M
parameters) at growing T, in flashsnn and in the PyTorch twin, with each
step's time and peak memory.

The frames are synthetic (Bernoulli events, ``--rate`` per pixel and step):
what is measured is the graph and memory of T steps, not accuracy. Each T
runs in a fresh process (``--one``), so peaks do not carry over; flashsnn's
peak is MLX's (``mx.get_peak_memory``) plus the fused ops' buffer cache,
PyTorch's ``torch.cuda.max_memory_allocated`` on a GPU and the process's
peak RSS growth on the CPU.

    python benchmarks/mamba_spike_long.py --device gpu --steps 100 250 500 1000
    python benchmarks/mamba_spike_long.py --preset smnist --steps 50 100 --batch 2   # CPU-sized
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one_flashsnn(a) -> dict:
    import flashsnn as fs  # first: it puts MLX's products on OpenBLAS (docs/blas.md)
    import mlx.core as mx
    import mlx.nn as nn
    import mlx.optimizers as optim

    dev = mx.gpu if a.device == "gpu" else mx.cpu
    mx.set_default_device(dev)
    mx.random.seed(0)
    model = fs.models.MambaSpike.from_preset(a.preset, lif_backend="fused",
                                             scan_backend="fused")
    H, W, C = model.in_shape
    x = (mx.random.uniform(shape=(a.T, a.batch, H, W, C)) < a.rate).astype(mx.float32)
    y = mx.zeros((a.batch,), mx.int32)
    opt = optim.AdamW(learning_rate=1e-3, weight_decay=1e-4, bias_correction=True)
    grad_fn = nn.value_and_grad(model, lambda m, x, y: nn.losses.cross_entropy(m(x), y).mean())
    mx.eval(model.parameters(), x)
    base = mx.get_active_memory()
    ts = []
    for i in range(a.repeat + 1):
        mx.reset_peak_memory()
        fs.memory.reset_peak_memory()
        t0 = time.perf_counter()
        loss, g = grad_fn(model, x, y)
        g, _ = optim.clip_grad_norm(g, 1.0)
        opt.update(model, g)
        mx.eval(loss, model.parameters(), opt.state)
        ts.append(time.perf_counter() - t0)
    peak = mx.get_peak_memory() + fs.memory.get_peak_memory()
    return {"framework": "flashsnn", "T": a.T, "step_ms": 1e3 * min(ts[1:]),
            "first_step_ms": 1e3 * ts[0], "peak_mb": peak / 2**20,
            "peak_over_params_and_input_mb": (peak - base) / 2**20,
            "loss": float(loss.item()), "parameters": fs.models.count_parameters(model)}


def one_torch(a) -> dict:
    import torch
    import torch.nn.functional as F
    sys.path.insert(0, HERE)
    from mamba_spike_torch import TorchMambaSpike, count_parameters

    dev = torch.device("cuda" if a.device == "gpu" else "cpu")
    torch.manual_seed(0)
    model = TorchMambaSpike.from_preset(a.preset).to(dev)
    H, W, C = model.in_shape
    x = (torch.rand(a.T, a.batch, H, W, C, device=dev) < a.rate).float()
    y = torch.zeros(a.batch, dtype=torch.long, device=dev)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    cuda = dev.type == "cuda"
    base = torch.cuda.memory_allocated() if cuda else 0
    rss0 = _rss_mb()
    ts = []
    for i in range(a.repeat + 1):
        if cuda:
            torch.cuda.reset_peak_memory_stats()
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if cuda:
            torch.cuda.synchronize()
        ts.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else _rss_mb()
    return {"framework": "torch", "T": a.T, "step_ms": 1e3 * min(ts[1:]),
            "first_step_ms": 1e3 * ts[0], "peak_mb": peak,
            "peak_over_params_and_input_mb": peak - (base / 2**20 if cuda else rss0),
            "loss": float(loss.item()), "parameters": count_parameters(model)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, nargs="+", default=[100, 250, 500])
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--preset", default="dvs_gesture")
    p.add_argument("--rate", type=float, default=0.02, help="events per pixel and step")
    p.add_argument("--repeat", type=int, default=2, help="timed steps after the first")
    p.add_argument("--device", choices=("cpu", "gpu"), default="gpu")
    p.add_argument("--frameworks", nargs="+", default=["flashsnn", "torch"])
    p.add_argument("--timeout", type=float, default=900)
    p.add_argument("--out", default="benchmarks/results/mamba-spike-long.json")
    p.add_argument("--one", choices=("flashsnn", "torch"), help=argparse.SUPPRESS)
    p.add_argument("--T", type=int, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.one:
        r = (one_flashsnn if a.one == "flashsnn" else one_torch)(a)
        print("RESULT " + json.dumps(r), flush=True)
        return 0
    rows = []
    print(f"Mamba-Spike one training step, preset {a.preset}, batch {a.batch}, device "
          f"{a.device}, T {a.steps}", flush=True)
    for T in a.steps:
        for fw in a.frameworks:
            cmd = [sys.executable, os.path.abspath(__file__), "--one", fw, "--T", str(T),
                   "--batch", str(a.batch), "--preset", a.preset, "--rate", str(a.rate),
                   "--repeat", str(a.repeat), "--device", a.device]
            t0 = time.perf_counter()
            try:
                pr = subprocess.run(cmd, capture_output=True, text=True, timeout=a.timeout)
                line = [s for s in pr.stdout.splitlines() if s.startswith("RESULT ")]
                r = json.loads(line[-1][7:]) if line else {
                    "framework": fw, "T": T, "error": (pr.stderr or pr.stdout)[-800:]}
            except subprocess.TimeoutExpired:
                r = {"framework": fw, "T": T, "error": f"over {a.timeout:.0f} s"}
            r["wall_s"] = time.perf_counter() - t0
            rows.append(r)
            if "error" in r:
                print(f"T {T:6d} {fw:9s} FAILED: {r['error'][-300:]}", flush=True)
            else:
                print(f"T {T:6d} {fw:9s} step {r['step_ms']:10.1f} ms (first "
                      f"{r['first_step_ms']:9.1f})  peak {r['peak_mb']:9.1f} MB  "
                      f"(+{r['peak_over_params_and_input_mb']:.1f} MB over weights and input)",
                      flush=True)
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    with open(a.out, "w") as f:
        json.dump({"argv": vars(a), "rows": rows}, f, indent=2)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`flashsnn bench-train`: one training step of the same spiking network in
flashsnn (fused and compiled, fused, reference), mlx-snn, snnTorch and
SpikingJelly: the median time of a step and its peak memory.

Per workload (the mlx-snn paper's MLP, a small conv SNN; train_impls.py):

1. Check, one implementation at a time from fresh weights: a few steps on
   the batch, every loss finite and the last below the first; flashsnn's
   paths start from the same weights and must give the same first-step loss
   (relative 1e-5). Then the peak memory of two more steps, with no other
   implementation alive: MLX's ``mx.get_peak_memory()`` after
   ``mx.reset_peak_memory()`` (plus ``flashsnn.memory``'s pool where it
   exists), torch's ``max_memory_allocated`` on a GPU, and on the CPU for
   every implementation the growth of the process's resident memory (Linux
   VmHWM after resetting it, over VmRSS before).
2. Time, in interleaved rounds (a shared CPU's speed drifts from minute to
   minute; each implementation then sees the same slow and fast phases):
   warm-up, then each step timed alone, waiting for its results.

The table gives each median as a multiple of fused+compile's; a failed check
prints FAIL instead. JSON: machine, versions and command on its first line.

    flashsnn bench-train                               # CPU
    flashsnn bench-train --device gpu --out benchmarks/results/train-step-h200.json
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import importlib.util
import json
import os
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import mlx.core as mx
import numpy as np

from .._device import DEVICES, resolve_device
from .. import memory
from ..cli import fail as cli_fail
from . import runner
from .train_impls import BASELINE, IMPLS, Workload, make_data

DEFAULTS = {"mlp": (25, 128), "conv": (16, 64)}
LOSS_RTOL = 1e-5            # flashsnn's paths: the same first-step loss


def add_arguments(p: argparse.ArgumentParser) -> None:
    names = [i.name for i in IMPLS]
    p.description = __doc__.splitlines()[0]
    p.add_argument("--device", choices=DEVICES, default="cpu",
                   help="cpu (default) or gpu: MLX on mx.gpu, torch on CUDA")
    p.add_argument("--models", nargs="+", choices=sorted(DEFAULTS), default=["mlp", "conv"])
    p.add_argument("--mlp", metavar="T,B", default="25,128",
                   help="time steps and batch of the MLP (default 25,128)")
    p.add_argument("--conv", metavar="T,B", default="16,64",
                   help="time steps and batch of the conv SNN (default 16,64)")
    p.add_argument("--impls", nargs="+", metavar="NAME",
                   help=f"only these implementations ({', '.join(names)}; default: all "
                        "installed)")
    p.add_argument("--repeat", type=int, default=20, help="timed steps (median; default 20)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first (default 2)")
    p.add_argument("--rounds", type=int, default=None,
                   help="interleaved rounds (default 3 on the CPU, 1 on a GPU); --repeat and "
                        "--budget are split across them")
    p.add_argument("--budget", type=float, default=30.0,
                   help="seconds of timed steps per implementation at most; slow ones get "
                        "fewer steps, at least 3 (default 30)")
    p.add_argument("--check-steps", type=int, default=6,
                   help="steps of the correctness check (default 6)")
    p.add_argument("--torch-threads", type=int, default=None, metavar="N",
                   help="torch.set_num_threads(N) for the torch-based libraries (default: "
                        "torch's own, the core count)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--out", type=Path, default=Path("flashsnn-bench-train.json"),
                   help="JSON results (a .md table is written beside it)")


# ----------------------------------------------------------------- memory --

def _flashsnn_pool():
    """flashsnn.memory where this build keeps a buffer cache of its own (its
    CUDA and Linux CPU builds; Metal uses MLX's allocator), else None."""
    return memory if memory.get_cache_limit() > 0 else None


def _status_kb(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


class Memory:
    """Peak memory of the steps run between start() and stop()."""

    def __init__(self, framework: str, device: str):
        self.framework, self.device = framework, device

    def start(self) -> None:
        gc.collect()
        mx.clear_cache()
        self.rss0 = None
        if self.device == "cpu":
            try:    # freed heap pages back to the kernel, so that reuse is not hidden
                ctypes.CDLL("libc.so.6").malloc_trim(0)
            except (OSError, AttributeError):
                pass
            try:    # "5" resets VmHWM, the peak resident set, to the current VmRSS
                with open("/proc/self/clear_refs", "w") as f:
                    f.write("5")
                self.rss0 = _status_kb("VmRSS")
            except OSError:
                pass
        mx.reset_peak_memory()
        self.pool = _flashsnn_pool()
        if self.pool is not None:
            self.pool.reset_peak_memory()
        if self.framework == "torch" and self.device == "gpu":
            import torch
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()

    def stop(self) -> dict:
        out = {}
        if self.framework == "mlx":
            mlx_peak = mx.get_peak_memory()
            pool = self.pool.get_peak_memory() if self.pool is not None else None
            out["peak_mb"] = (mlx_peak + (pool or 0)) / 2**20
            out["peak_by"] = ("MLX + flashsnn pool" if pool is not None else "MLX")
            out["mlx_peak_mb"] = mlx_peak / 2**20
            out["flashsnn_pool_peak_mb"] = None if pool is None else pool / 2**20
        elif self.device == "gpu":
            import torch
            out["peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
            out["peak_by"] = "torch.cuda.max_memory_allocated"
        hwm = _status_kb("VmHWM")
        if self.rss0 is not None and hwm is not None:
            out["rss_growth_mb"] = (hwm - self.rss0) / 2**20
            if "peak_mb" not in out:
                out["peak_mb"], out["peak_by"] = out["rss_growth_mb"], "RSS growth"
        return out


# ------------------------------------------------------------------ phases --

def check_and_measure(impl, w, data, args) -> dict:
    """Fresh weights: check steps (losses), then the peak memory of two more."""
    prep = impl.prepare(w, data, args.device, args.seed)
    losses = [prep.value(prep.step()) for _ in range(args.check_steps)]
    finite = all(np.isfinite(losses))
    # spikes are discrete and the loss of one step can rise by 0.06 (conv,
    # T=6 B=8); the mean of the last two steps is steadier
    ok = finite and float(np.mean(losses[-2:])) < losses[0]
    why = "" if ok else ("a loss is not finite" if not finite else
                         f"loss did not decrease over {args.check_steps} steps")
    mem = Memory(prep.framework, args.device)
    mem.start()
    for _ in range(2):
        prep.step()
    rec = {"impl": impl.name, "losses": losses, "check_ok": ok, "check": why,
           "note": prep.note, "framework": prep.framework, **mem.stop()}
    del prep
    gc.collect()
    mx.clear_cache()
    return rec


def time_rounds(preps: dict, args, bar) -> dict:
    """Seconds per step of each implementation, over args.rounds rounds."""
    times = {name: [] for name in preps}
    per_round = max(3, -(-args.repeat // args.rounds))
    for r in range(args.rounds):
        for name, prep in preps.items():
            bar.set_description(f"{name} round {r + 1}/{args.rounds}")
            for _ in range(args.warmup if r == 0 else 1):
                prep.step()
            start = time.perf_counter()
            for i in range(per_round):
                t0 = time.perf_counter()
                prep.step()
                times[name].append(time.perf_counter() - t0)
                if i >= 2 and time.perf_counter() - start > args.budget / args.rounds:
                    break
            bar.update(1)
    return times


def run_workload(w: Workload, impls, args, bar) -> list[dict]:
    data = make_data(w, args.seed)
    rows, ready = [], []
    for impl in impls:
        why = impl.available(w, args.device)
        if why:
            rows.append({"workload": w.label, "impl": impl.name, "skipped": why})
            bar.update(1 + args.rounds)
            continue
        bar.set_description(f"{w.model} {impl.name} check")
        rec = check_and_measure(impl, w, data, args)
        rows.append({"workload": w.label, "model": w.model, "T": w.T, "B": w.B, **rec})
        ready.append(impl)
        bar.update(1)
    own = [r for r in rows if "losses" in r and r["impl"] in {i.name for i in IMPLS if i.own}]
    if own:
        first = own[0]["losses"][0]
        for r in own:
            r["first_loss_rel_diff"] = abs(r["losses"][0] - first) / abs(first)
            if r["first_loss_rel_diff"] > LOSS_RTOL:
                r["check_ok"] = False
                r["check"] = (f"first-step loss {r['losses'][0]:.7g} vs {first:.7g} "
                              f"({own[0]['impl']}), same weights")
    preps = {impl.name: impl.prepare(w, data, args.device, args.seed) for impl in ready}
    times = time_rounds(preps, args, bar)
    del preps
    gc.collect()
    base = None
    for r in rows:
        t = times.get(r["impl"])
        if t:
            r.update(median_ms=statistics.median(t) * 1e3, min_ms=min(t) * 1e3, runs=len(t),
                     rounds=args.rounds)
            if r["impl"] == BASELINE:
                base = r["median_ms"]
    for r in rows:
        if "median_ms" in r:
            r["vs_baseline"] = r["median_ms"] / base if base else None
    return rows


# ------------------------------------------------------------------ output --

def machine_info(device: str) -> dict:
    """The kernel benchmark's record of the machine, plus what a training
    step's numbers also depend on."""
    info = runner.machine_info(device)
    if importlib.util.find_spec("torch"):
        import torch
        info["torch threads"] = torch.get_num_threads()
    info["flashsnn pool"] = "yes" if _flashsnn_pool() else "no"
    return info


def headline(info: dict) -> str:
    keys = ["gpu", "cpu", "cores", "os", "python", "mlx", "mlx-cpu", "mlx-cuda-13", "flashsnn",
            "mlx-snn", "torch", "torch threads", "snntorch", "spikingjelly", "flashsnn pool"]
    return (f"# flashsnn bench-train on {info['device']} | "
            + " | ".join(f"{k} {info[k]}" for k in keys if k in info))


def table(rows: list[dict], info: dict) -> str:
    lines = [headline(info), "",
             f"| workload | implementation | median ms | x {BASELINE} | peak MB | measured by "
             "| RSS growth MB | check |",
             "|---|---|---:|---:|---:|---|---:|---|"]
    for r in rows:
        if "skipped" in r:
            lines.append(f"| {r['workload']} | {r['impl']} | skipped: {r['skipped']} "
                         "| | | | | |")
            continue
        ratio = (f"{r['vs_baseline']:.2f}" if r.get("vs_baseline") else "") \
            if r["check_ok"] else "FAIL"
        peak = f"{r['peak_mb']:.1f}" if r.get("peak_mb") is not None else ""
        rss = f"{r['rss_growth_mb']:.1f}" if r.get("rss_growth_mb") is not None else ""
        check = "ok" if r["check_ok"] else f"FAIL ({r['check']})"
        lines.append(f"| {r['workload']} | {r['impl']} | {r.get('median_ms', 0):.2f} | {ratio} "
                     f"| {peak} | {r.get('peak_by', '')} | {rss} | {check} |")
    return "\n".join(lines)


def write_json(path: Path, info: dict, command: str, rows: list[dict]) -> None:
    """Machine, versions and command on the first line, then the rows."""
    head = json.dumps({"machine": info, "command": command})[:-1]
    path.write_text(head + ',\n"rows": ' + json.dumps(rows, indent=1) + "}\n")


def _tb(s: str, flag: str) -> tuple[int, int]:
    try:
        T, B = (int(v) for v in s.split(","))
        if T < 1 or B < 1:
            raise ValueError
    except ValueError:
        raise ValueError(f"[bench-train] {flag} takes T,B (positive), such as 25,128; "
                         f"got {s!r}") from None
    return T, B


def run(args) -> int:
    from tqdm import tqdm

    fail = partial(cli_fail, "bench-train")

    try:
        device = resolve_device(args.device)
        shapes = {"mlp": _tb(args.mlp, "--mlp"), "conv": _tb(args.conv, "--conv")}
    except ValueError as e:
        return fail(str(e))
    if args.rounds is None:
        args.rounds = 3 if args.device == "cpu" else 1
    if min(args.rounds, args.repeat, args.check_steps) < 1 or args.warmup < 0:
        return fail("--rounds, --repeat and --check-steps must be at least 1, --warmup 0")
    if args.check_steps < 2:
        return fail("--check-steps must be at least 2 (the loss must decrease)")
    known = [i.name for i in IMPLS]
    bad = [n for n in args.impls or [] if n not in known]
    if bad:
        return fail(f"unknown implementation(s) {bad}; valid: {known}")
    impls = [i for i in IMPLS if not args.impls or i.name in args.impls]
    if args.torch_threads is not None:
        if args.torch_threads < 1:
            return fail(f"--torch-threads must be at least 1; got {args.torch_threads}")
        if importlib.util.find_spec("torch"):
            import torch
            torch.set_num_threads(args.torch_threads)
    workloads = [Workload(m, *shapes[m]) for m in args.models]
    info = machine_info(args.device)
    prog = os.path.basename(sys.argv[0])
    command = " ".join(["flashsnn", *sys.argv[1:]] if prog == "flashsnn" else
                       ["python", *sys.argv] if prog.endswith(".py") else sys.argv)
    rows = []
    with mx.stream(device), tqdm(total=len(workloads) * len(impls) * (1 + args.rounds),
                                 unit="phase", file=sys.stderr,
                                 disable=args.no_progress or not sys.stderr.isatty()) as bar:
        for w in workloads:
            rows += run_workload(w, impls, args, bar)
    text = table(rows, info)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, info, command, rows)
    args.out.with_suffix(".md").write_text(text + "\n")
    print(f"\nwrote {args.out} and {args.out.with_suffix('.md')}", file=sys.stderr)
    return 0 if all(r.get("check_ok", True) for r in rows) else 1


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="flashsnn bench-train")
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

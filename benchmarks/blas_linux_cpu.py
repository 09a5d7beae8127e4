"""MLX's products on Linux CPU: the reference BLAS bundled with mlx-cpu
(FLASHSNN_BLAS=off) against OpenBLAS as flashsnn loads it (the `cpu` extra's
default: one thread) and OpenBLAS with a thread per core
(OPENBLAS_NUM_THREADS=cores), in one run, each
measurement in a fresh process (docs/blas.md).

    python benchmarks/blas_linux_cpu.py          # writes benchmarks/results/blas-linux-cpu.{json,md}

Three measurements, each in rounds that rotate the three modes (a shared
machine's speed drifts from minute to minute; each mode sees the same slow
and fast phases), medians over the rounds:

1. ``[3200, 784] @ [784, 256]`` on the CPU: the first Linear of the mlx-snn
   paper's MNIST MLP at T=25, B=128 (all T*B rows in one product); median of
   ``--reps`` products after two warm-ups.
2. ``flashsnn train --epochs 1`` on the digits (preset C1: 64-256-10, T=25,
   B=128): summary.json's median step (``step_ms.median``).
3. ``flashsnn train --epochs 1 --data mnist`` on MNIST-shaped IDX files
   written here (28x28 uint8 images, random class templates; no download):
   784-256-10, T=25, B=128, ``--mnist-train`` training images.

Each child also says which BLAS it ran on (``blas_info()`` for the product; for
``flashsnn train`` its one-line notice on stderr, present only without
OpenBLAS), and the run stops if a mode did not take effect.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# mode -> environment. "on" is flashsnn's default, one OpenBLAS thread;
# "on_all" gives OpenBLAS a thread per core (docs/blas.md, "Threads").
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
MODES = {"off": {"FLASHSNN_BLAS": "off"}, "on": {},
         "on_all": {"OPENBLAS_NUM_THREADS": str(CORES)}}
NOTICE = "MLX's matrix products run on the"


def child_product(reps: int) -> None:
    import flashsnn
    import mlx.core as mx
    import numpy as np

    mx.set_default_device(mx.cpu)
    rng = np.random.default_rng(0)
    # rate-coded spikes, as the first layer sees them, and weights of nn.Linear's scale
    x = mx.array((rng.uniform(size=(3200, 784)) < 0.3).astype(np.float32))
    w = mx.array(rng.uniform(-1, 1, size=(784, 256)).astype(np.float32) / 28)
    for _ in range(2):
        mx.eval(x @ w)
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        mx.eval(x @ w)
        ts.append((time.perf_counter() - t) * 1e3)
    print(json.dumps({"ms": statistics.median(ts), "all_ms": ts, "blas": flashsnn.blas_info()}))


def write_idx(path: Path, a) -> None:
    path.write_bytes(b"\0\0\x08" + bytes([a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape)
                     + a.tobytes())


def mnist_like(folder: Path, n_train: int, n_test: int) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    maps = rng.uniform(size=(10, 28, 28)) ** 3          # sparse-ish, as MNIST's strokes
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        y = rng.integers(0, 10, size=n).astype(np.uint8)
        x = (rng.uniform(size=(n, 28, 28)) < maps[y]).astype(np.uint8) * 255
        write_idx(folder / f"{prefix}-images-idx3-ubyte", x)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", y)


def env_for(mode: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("FLASHSNN_BLAS", "OPENBLAS_NUM_THREADS", "OPENBLAS_THREAD_TIMEOUT")}
    return {**env, **MODES[mode]}


def run_product(mode: str, reps: int) -> dict:
    p = subprocess.run([sys.executable, __file__, "--child-product", "--reps", str(reps)],
                       capture_output=True, text=True, env=env_for(mode), timeout=1800)
    if p.returncode != 0:
        raise SystemExit(f"product ({mode}) failed:\n{p.stderr[-3000:]}")
    r = json.loads(p.stdout.strip().splitlines()[-1])
    if (r["blas"]["blas"] == "openblas") != (mode != "off"):
        raise SystemExit(f"mode {mode} ran on {r['blas']['blas']}: {r['blas']['reason']}")
    return r


def run_train(mode: str, extra: list[str], out: Path) -> dict:
    cmd = [sys.executable, "-m", "flashsnn", "train", "--epochs", "1", "--device", "cpu",
           "--no-progress", "--out", str(out), *extra]
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env_for(mode), timeout=3600)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} ({mode}) failed:\n{p.stderr[-3000:]}")
    if (NOTICE in p.stderr) != (mode == "off"):
        raise SystemExit(f"flashsnn train ({mode}): the BLAS notice was "
                         f"{'missing' if mode == 'off' else 'printed'}:\n{p.stderr[-2000:]}")
    s = json.loads((out / "summary.json").read_text())
    return {"ms": s["step_ms"]["median"], "median_compute_ms": s["step_ms"]["median_compute"],
            "steps": s["step_ms"]["steps"], "first_ms": s["step_ms"]["first"],
            "process_s": wall}


def versions() -> dict:
    from importlib import metadata

    v = {}
    for d in ("mlx", "mlx-cpu", "cmeel-openblas", "numpy", "flashsnn"):
        try:
            v[d] = metadata.version(d)
        except metadata.PackageNotFoundError:
            v[d] = None
    if v["flashsnn"] is None:                 # a source tree on PYTHONPATH
        import flashsnn
        v["flashsnn"] = f"{flashsnn.__version__} (source)"
    return v


def machine() -> dict:
    cpu = platform.processor() or None
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    commit = subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip() or None
    dirty = subprocess.run(["git", "-C", str(HERE), "status", "--porcelain", "--",
                            str(HERE.parent / "python")], capture_output=True, text=True).stdout
    if commit and dirty.strip():
        commit += " with uncommitted changes under python/"
    return {"cpu": cpu, "cores": os.cpu_count(), "os": platform.platform(),
            "python": platform.python_version(), "versions": versions(), "commit": commit}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5, help="rounds, each running every mode once (default 5)")
    ap.add_argument("--reps", type=int, default=15, help="products timed per process (default 15)")
    ap.add_argument("--mnist-train", type=int, default=1280,
                    help="MNIST-shaped training images: steps = N / 128 (default 1280: 10)")
    ap.add_argument("--only", nargs="+", choices=["product", "digits", "mnist"],
                    default=["product", "digits", "mnist"])
    ap.add_argument("--out", type=Path, default=HERE / "results" / "blas-linux-cpu.json")
    ap.add_argument("--child-product", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child_product:
        child_product(args.reps)
        return 0
    if not sys.platform.startswith("linux"):
        print("Linux only: elsewhere MLX links its platform's BLAS", file=sys.stderr)
        return 2

    info = {"machine": machine(), "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "date": time.strftime("%Y-%m-%d"), "loadavg_start": os.getloadavg(),
            "rounds": args.rounds}
    runs = {k: {m: [] for m in MODES} for k in args.only}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        idx = tmp / "mnist"
        idx.mkdir()
        mnist_like(idx, args.mnist_train, 256)
        tasks = {
            "product": lambda m, r: run_product(m, args.reps),
            "digits": lambda m, r: run_train(m, [], tmp / f"digits-{m}-{r}"),
            "mnist": lambda m, r: run_train(m, ["--data", "mnist", "--path", str(idx),
                                                "--limit-test", "256"], tmp / f"mnist-{m}-{r}"),
        }
        for r in range(args.rounds):
            order = list(MODES)[r % len(MODES):] + list(MODES)[:r % len(MODES)]
            for k in args.only:
                for m in order:
                    res = tasks[k](m, r)
                    runs[k][m].append(res)
                    print(f"round {r + 1}/{args.rounds} {k:7s} {m:4s} {res['ms']:9.2f} ms",
                          file=sys.stderr, flush=True)
    info["loadavg_end"] = os.getloadavg()
    product_on = next((x["blas"] for x in runs.get("product", {}).get("on", [])), None)
    info["openblas"] = ({k: product_on[k] for k in ("config", "threads", "cores", "gfortran",
                                                     "library")} if product_on else None)
    summary = {}
    for k, by_mode in runs.items():
        med = {m: statistics.median(x["ms"] for x in v) for m, v in by_mode.items()}
        summary[k] = {**{f"{m}_ms": med[m] for m in MODES},
                      **{f"speedup_{m}": med["off"] / med[m] for m in MODES if m != "off"},
                      **{f"{m}_each_ms": [x["ms"] for x in by_mode[m]] for m in MODES}}
    for x in runs.get("product", {}).values():
        for y in x:
            y["blas"] = {k: y["blas"][k] for k in ("blas", "reason", "threads")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({**info, "summary": summary, "runs": runs}, indent=1) + "\n")
    md = report(info, summary, args)
    args.out.with_suffix(".md").write_text(md)
    print(md)
    return 0


LABELS = {
    "product": "`[3200,784] @ [784,256]` (one product)",
    "digits": "`flashsnn train` step, digits 64-256-10, T=25, B=128",
    "mnist": "`flashsnn train` step, MNIST-shaped 784-256-10, T=25, B=128",
}


def report(info: dict, summary: dict, args) -> str:
    m, v = info["machine"], info["machine"]["versions"]
    ob = info.get("openblas") or {}
    lines = [
        f"# MLX's products on Linux CPU: reference BLAS vs OpenBLAS ({info['date']})",
        "",
        f"{m['cpu']}, {m['cores']} cores, {m['os']}; Python {m['python']}, mlx {v['mlx']}, "
        f"mlx-cpu {v['mlx-cpu']}, cmeel-openblas {v['cmeel-openblas']} "
        f"(`{ob.get('config')}`), flashsnn {v['flashsnn']} at "
        f"{m['commit']}.",
        "",
        f"Command: `{info['command']}`. Each number is the median over {info['rounds']} "
        "rounds, one fresh process per measurement and mode, the order of the modes rotating; "
        "`flashsnn train` numbers are summary.json's median step (`step_ms.median`: batch "
        "+ compiled step + host) over one epoch.",
        "",
        "| measurement | reference BLAS (ms) | OpenBLAS, 1 thread (default) (ms) | speedup "
        f"| OpenBLAS, {CORES} threads (ms) | speedup |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for k, s in summary.items():
        lines.append(f"| {LABELS[k]} | {s['off_ms']:.1f} | {s['on_ms']:.1f} | "
                     f"{s['speedup_on']:.1f}x | {s['on_all_ms']:.1f} | "
                     f"{s['speedup_on_all']:.1f}x |")
    lines += ["", f"Each round (ms, reference / OpenBLAS / OpenBLAS {CORES} threads; the "
              "order of the modes rotates from round to round):", ""]
    for k, s in summary.items():
        each = ", ".join(f"{a:.1f} / {b:.1f} / {c:.1f}" for a, b, c in
                         zip(s["off_each_ms"], s["on_each_ms"], s["on_all_each_ms"]))
        lines.append(f"- {k}: {each}")
    la0, la1 = info["loadavg_start"], info["loadavg_end"]
    lines += ["", f"Load average {la0[0]:.1f} at the start and {la1[0]:.1f} at the end: the "
              "machine is shared with other jobs, so single numbers move by tens of percent "
              "between minutes; the ratios within one round are steadier than the "
              "absolute times.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

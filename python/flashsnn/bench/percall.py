"""`flashsnn bench --modes`: timing one call at a time, the way users run an op.

``throughput`` (``runner.time_it``) times passes back to back, as a kernel
benchmark does. Users make one call at a time: a script or a training step
builds the graph, evaluates it and goes on. The per-call modes time exactly
that, per call: build the graph (forward ``fs.ops.leaky(x, beta=0.9)``;
forward+backward ``mx.grad`` of the spikes' plain ``.sum()``), ``mx.eval``
the result, ``mx.synchronize()``. The previous call's result is dropped when
the next graph is built, as ``dx = g(x)`` in a loop drops it, so freeing it
is part of the call too.

Each per-call measurement runs in a fresh Python process (:func:`run_fresh`;
0.2 s to start here) that makes only x and then calls, after emptying MLX's
cache: the benchmark's own process has a history of allocations no user's
process has, and whether a freed 13 MB buffer comes back as fresh pages
depends on the heap's history (docs/design.md, CPU kernel). A fresh process
keeps each measurement independent of the implementations and rounds timed
before it. (On the loaded 2-core CPU, fused ``mx.grad`` at T=100 B=32
N=1024 took 27-31 ms per call either way in one A/B of three pairs.) Each
reports the minor page faults per timed call beside its times.

- ``latency``: a fresh process, MLX's own cache limit (or ``--mlx-cache-limit``);
- ``cache-off``: the same under ``mx.set_cache_limit(0)`` (restored after);
- ``busy``: the same right after :func:`other_mlx_work` has filled the cache
  with buffers of other sizes, as in a process that did other MLX work
  first. It runs after every other mode of every case, so that the rule
  holds if a measurement ever runs in the benchmark's own process.

Why: on an H200 (T=100 B=64 N=4096 float32, issue 13) the fused forward took
0.073 ms back to back, 0.198 ms per call in a fresh process, 10.9 ms with the
cache off and 6.8 ms after other MLX work; on the 2-core CPU, ``mx.grad`` of
the spikes' sum at T=100 B=32 N=1024 took 16-18 ms per call in a fresh
process against 2.3 ms back to back.

    python -m flashsnn.bench.percall --shape 100,32,1024 --impl fused \
        --pass fwd+bwd --mode latency        # one measurement, JSON on stdout
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import mlx.core as mx

MODES = ("throughput", "latency", "cache-off", "busy")  # the order they run in
PER_CALL = MODES[1:]
DEFAULT_MODES = MODES


def parse_modes(names) -> list[str]:
    """``--modes`` values in the order they run; ValueError (tagged, listing
    the valid ones) for an unknown one."""
    bad = [n for n in names if n not in MODES]
    if bad or not names:
        raise ValueError(f"[bench] unknown mode(s) {bad}; valid: {', '.join(MODES)}")
    return [m for m in MODES if m in names]


def time_calls(fn, repeat: int, warmup: int, budget: float, min_calls: int = 3,
               stats: dict | None = None) -> list[float]:
    """Seconds per call of ``fn`` made as a user makes it (see the module
    docstring): up to ``warmup`` untimed calls (after the first, only while
    they take less than half the budget: a per-step loop takes 0.1-0.8 s a
    call at T=100 B=32 N=1024 on the 2-core CPU), then ``repeat`` timed
    ones, or fewer (at least ``min_calls``) once ``budget`` seconds have
    passed. ``stats`` receives the minor page faults per timed call (pages
    the kernel had to hand the process afresh)."""
    out = None
    start = time.perf_counter()
    for _ in range(warmup):
        out = fn()
        mx.eval(out)
        mx.synchronize()
        if time.perf_counter() - start > budget / 2:
            break
    times = []
    faults = _minor_faults()
    start = time.perf_counter()
    for i in range(repeat):
        t0 = time.perf_counter()
        out = fn()  # drops the previous call's result, as `dx = g(x)` in a loop does
        mx.eval(out)
        mx.synchronize()
        times.append(time.perf_counter() - t0)
        if i + 1 >= min_calls and time.perf_counter() - start > budget:
            break
    if stats is not None and faults is not None:
        stats["page_faults_per_call"] = (_minor_faults() - faults) / len(times)
    del out
    return times


def _minor_faults() -> int | None:
    try:
        import resource
    except ImportError:  # Windows
        return None
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def measure(mode: str, fn, repeat: int, warmup: int, budget: float,
            min_calls: int = 3) -> tuple[list[float], dict]:
    """One per-call measurement in ``mode``, from an emptied MLX cache:
    (seconds per call, what the mode did: the cache limit the calls ran
    under, and for busy other_mlx_work's report)."""
    if mode not in PER_CALL:
        raise ValueError(f"[bench] {mode!r} is not a per-call mode; valid: {', '.join(PER_CALL)}")
    mx.clear_cache()
    prev = mx.set_cache_limit(0)  # returns the limit; the cache is empty, nothing is freed
    if mode != "cache-off":
        mx.set_cache_limit(prev)
    try:
        info = {"cache_limit_mb": 0 if mode == "cache-off" else prev / 2**20}
        if mode == "busy":
            info["busy"] = other_mlx_work()
        return time_calls(fn, repeat, warmup, budget, min_calls, info), info
    finally:
        mx.set_cache_limit(prev)


def run_fresh(case, impl: str, pas: str, mode: str, repeat: int, warmup: int, budget: float,
              min_calls: int, device: str = "cpu", cache_limit_mb: int = -1):
    """:func:`measure` in a fresh Python process (this module's ``main``):
    (seconds per call, what the mode did). The child imports the same
    flashsnn as this process."""
    return fresh_process(
        "flashsnn.bench.percall",
        ["--family", case.family, "--shape", f"{case.T},{case.B},{case.N}", "--dtype",
         case.dtype, "--impl", impl, "--pass", pas, "--mode", mode, "--repeat", str(repeat),
         "--warmup", str(warmup), "--budget", str(budget), "--min-calls", str(min_calls),
         "--device", device, "--mlx-cache-limit", str(cache_limit_mb)],
        f"{impl} {pas} {mode}")


def fresh_process(module: str, args: list[str], what: str):
    """``python -m module args`` in a fresh process that imports the same
    flashsnn as this one, and the ``{"times", "info"}`` JSON its last line
    of stdout holds: (seconds per call, what the mode did)."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])  # the folder that holds flashsnn/
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    res = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                         env=env)
    if res.returncode != 0:
        raise RuntimeError(f"[bench] the fresh process for {what} failed "
                           f"(exit {res.returncode}):\n{res.stderr[-3000:]}")
    data = json.loads(res.stdout.strip().splitlines()[-1])
    return data["times"], data["info"]


def main(argv=None) -> int:
    """One per-call measurement of one implementation and pass; prints
    ``{"times": [s, ...], "info": {...}}`` as the last line of stdout."""
    from .registry import BENCHMARKS, Case, make_inputs

    p = argparse.ArgumentParser(prog="python -m flashsnn.bench.percall",
                                description=main.__doc__.splitlines()[0])
    p.add_argument("--family", default="leaky", choices=sorted(BENCHMARKS))
    p.add_argument("--shape", required=True, metavar="T,B,N")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    p.add_argument("--impl", required=True)
    p.add_argument("--pass", dest="pas", default="fwd+bwd", choices=["fwd", "fwd+bwd"])
    p.add_argument("--mode", default="latency", choices=PER_CALL)
    p.add_argument("--repeat", type=int, default=15)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--budget", type=float, default=10.0)
    p.add_argument("--min-calls", type=int, default=3)
    p.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    p.add_argument("--mlx-cache-limit", type=int, default=-1, metavar="MB")
    a = p.parse_args(argv)
    if a.device == "gpu":
        mx.set_default_device(mx.gpu)
    if a.mlx_cache_limit >= 0:
        mx.set_cache_limit(a.mlx_cache_limit << 20)
    impls = {i.name: i for i in BENCHMARKS[a.family]["impls"]}
    if a.impl not in impls:
        print(f"[bench] unknown implementation {a.impl!r}; valid: {sorted(impls)}",
              file=sys.stderr)
        return 2
    case = Case(a.family, *(int(v) for v in a.shape.split(",")), a.dtype)
    prep = impls[a.impl].prepare(case, make_inputs(case, cotangents=False), a.device)
    fn = prep.call_fwd if a.pas == "fwd" else prep.call_fwdbwd
    if fn is None:
        print(f"[bench] {a.impl} has no per-call {a.pas}", file=sys.stderr)
        return 2
    times, info = measure(a.mode, fn, a.repeat, a.warmup, a.budget, a.min_calls)
    print(json.dumps({"times": times, "info": info}))
    return 0


def other_mlx_work(seed: int = 0) -> dict:
    """Deterministic MLX work unrelated to the benchmark, run before ``busy``.

    What a process has often done before it calls a layer: many small
    evaluations of varied sizes, a compiled function, a training step. It
    evaluates, on the default device:

    1. 300 elementwise, reduction and slicing graphs on vectors of 1-160 KB,
       then 40 on 256-490 KB, each size 6 KB above the last, so MLX's cache
       can rarely hand a freed buffer to a later request: together they free
       more than its 32 MB on the CPU, and it is left full (31.6 MB) of
       buffers that fit none of a layer's [T, B, N] planes;
    2. an ``mx.compile``d function on three input shapes;
    3. five steps of a 784-256-10 MLP with cross entropy and Adam.

    The same scenario, hand-written, sent every forward+backward at T=100
    B=32 N=1024 to fresh pages: 9,600 page faults and 16-28 ms per call
    against 2.4-3.0 ms (docs/design.md, CPU kernel). Returns what it did and
    the cache it left (``cache_mb``), so a run shows whether the cache was
    full. Keys are explicit: MLX's global random state is not touched.
    """
    import mlx.nn as nn
    import mlx.optimizers as optim

    t0 = time.perf_counter()
    calls = 0
    for i in range(340):
        # 1-160 KB, then 256-490 KB of float32, in steps of 6 KB
        n = 256 + (i * 1543) % 40_704 if i < 300 else 65_536 + (i - 300) * 1_543
        a = mx.arange(n, dtype=mx.float32) * (1.0 / n)
        b = mx.sqrt(a * a + 1.0) - a
        mx.eval(b, b.sum(), b[::2])
        calls += 1

    keys = mx.random.split(mx.random.key(seed), 10)
    fused = mx.compile(lambda u, w: mx.tanh(u @ w + 1.0).mean(axis=0))
    for j, (m, k) in enumerate(((64, 96), (128, 48), (200, 160))):
        u = mx.random.normal((m, k), key=keys[j])
        w = mx.random.normal((k, k), key=keys[3 + j])
        mx.eval(fused(u, w))
        calls += 1

    def init(key, shape):
        return mx.random.normal(shape, key=key) * (shape[0] ** -0.5)

    params = {"w1": init(keys[6], (784, 256)), "b1": mx.zeros((256,)),
              "w2": init(keys[7], (256, 10)), "b2": mx.zeros((10,))}
    xb = mx.random.uniform(shape=(64, 784), key=keys[8])
    yb = mx.random.randint(0, 10, (64,), key=keys[9])

    def loss(p):
        h = mx.maximum(xb @ p["w1"] + p["b1"], 0.0)
        return nn.losses.cross_entropy(h @ p["w2"] + p["b2"], yb, reduction="mean")

    opt = optim.Adam(learning_rate=1e-3)
    step = mx.value_and_grad(loss)
    for _ in range(5):
        value, grads = step(params)
        params = opt.apply_gradients(grads, params)
        mx.eval(value, params, opt.state)
        calls += 1
    return {"calls": calls, "cache_mb": round(mx.get_cache_memory() / 2**20, 1),
            "seconds": round(time.perf_counter() - t0, 3)}


def table(rows: list[dict], modes, busy: dict | None = None) -> str:
    """The per-call table: per case, implementation and pass, each mode's
    median ms, latency's ratio to throughput and the others' to latency.
    Empty when no per-call mode ran."""
    shown = [m for m in MODES if m in modes]
    if not any(m in PER_CALL for m in shown):
        return ""
    groups: dict = {}
    for r in rows:
        if "pass" in r:
            groups.setdefault((r["case"], r["impl"], r["pass"]), {})[r["mode"]] = r
    base = {"latency": "throughput", "cache-off": "latency", "busy": "latency"}
    heads = [m if m == "throughput" else f"{m} (x {base[m]})" for m in shown]
    what = ["each in a fresh process", "latency with MLX's cache as users have it"]
    if "cache-off" in shown:
        what.append("cache-off under mx.set_cache_limit(0)")
    if "busy" in shown:
        left = f", which left {busy['cache_mb']} MB in MLX's cache" if busy else ""
        what.append(f"busy after other MLX work (percall.other_mlx_work{left})")
    lines = ["Per call, as users run it (build the graph, mx.eval, mx.synchronize; median ms): "
             + "; ".join(what) + ". The JSON has each one's page faults per call.", "",
             "| case | pass | implementation | " + " | ".join(heads) + " |",
             "|---|---|---|" + "---:|" * len(shown)]
    for (case, impl, pas), by in groups.items():
        if not any(m in by for m in PER_CALL):
            continue
        cells = []
        for m in shown:
            r = by.get(m)
            if r is None:
                cells.append("")
                continue
            cell = f"{r['median_ms']:.3f}"
            ratio = r.get(f"vs_{base.get(m)}")
            if not r["parity_ok"]:
                cell += " (FAIL)"
            elif ratio:
                cell += f" ({ratio:.2f}x)"
            cells.append(cell)
        lines.append(f"| {case} | {pas} | {impl} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

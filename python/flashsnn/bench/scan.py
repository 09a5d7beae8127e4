"""``flashsnn bench --family selective_scan``: Mamba-1's selective scan.

Shapes (batch, L, D, N): the Mamba-Spike recipes' (32, 100, 256, 16) and
(16, 500, 512, 16), and a long sequence (2, 4096, 256, 16). For each: the
fused op, the pure-MLX reference loop, that loop under ``mx.compile``, and a
PyTorch sequential scan (a loop over L on the same device; on a GPU also
under ``torch.compile``), forward and forward+backward (the gradient of every
input for random cotangents), with softplus, D, z and a bias as Mamba uses
them. Each flashsnn path is checked against the reference first (outputs and
every gradient, relative RMS <= 1e-5); PyTorch's against the reference's
outputs and du. Times are medians of passes run back to back with a wait
after each; "x floor" is the time over the fewest bytes the pass moves at
the same run's ``x * 2`` bandwidth. ``--memory`` instead reports the peak
memory of one forward+backward against L (MLX's allocator and flashsnn's
own cache, which holds the fused kernels' outputs), at (1, L, 256, 16) for
L = 1024, 4096, 16384 or the given shapes, fused and (up to L = 4096) the
reference.

``--modes`` as for the neuron families (flashsnn/bench/percall.py):
``throughput`` is the table above; ``latency``, ``cache-off`` and ``busy``
time the fused op one call at a time (build the graph, ``mx.eval``,
``mx.synchronize``; forward+backward is ``mx.grad`` of the output's plain
``.sum()`` with respect to u), each in a fresh process, from MLX's default
cache, with it off, and after other MLX work.

    flashsnn bench --family selective_scan [--device gpu] [--shapes B,L,D,N ...]
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import mlx.core as mx
import numpy as np

import flashsnn as fs

SHAPES = [(32, 100, 256, 16), (16, 500, 512, 16), (2, 4096, 256, 16)]
MEMORY_LS = [1024, 4096, 16384]
REFERENCE_MAX_L = 4096  # the loop's graph and time grow with L; past it, not run
# mx.compile and torch.compile unroll the loop over L, and compiling grows
# with it: mx.compile's reference took seconds at L=500 on the CPU, while
# torch.compile (Dynamo and Inductor over an unrolled graph, forward and
# backward) takes far longer per position, so each runs up to its own L.
COMPILE_MAX_L = {"reference+compile": 500, "torch.compile loop": 100}
PARITY_TOL = 1e-5


def inputs(b, L, D, N, seed=0):
    k = mx.random.split(mx.random.key(seed), 9)
    x = dict(u=mx.random.normal((b, L, D), key=k[0]),
             delta=mx.random.normal((b, L, D), key=k[1]) * 0.5 - 1.0,
             A=-mx.exp(mx.random.normal((D, N), key=k[2]) * 0.5),
             B=mx.random.normal((b, L, N), key=k[3]), C=mx.random.normal((b, L, N), key=k[4]),
             D=mx.random.normal((D,), key=k[5]), z=mx.random.normal((b, L, D), key=k[6]),
             delta_bias=mx.random.normal((D,), key=k[7]) * 0.1)
    cot = mx.random.normal((b, L, D), key=k[8])
    mx.eval(*x.values(), cot)
    return x, cot


ARGS = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")


def mlx_impl(backend: str, compiled: bool):
    def f(u, delta, A, B, C, D, z, bias):
        return fs.ops.selective_scan(u, delta, A, B, C, D, z, delta_bias=bias,
                                     delta_softplus=True, backend=backend)

    def vjp(args, cot):
        return mx.vjp(f, args, [cot])
    fwd = mx.compile(f) if compiled else f
    fb = mx.compile(vjp) if compiled else vjp
    return (lambda x, c: fwd(*[x[n] for n in ARGS]),
            lambda x, c: fb([x[n] for n in ARGS], c), mx.eval)


def torch_impl(device: str, compiled: bool):
    import torch
    dev = "cuda" if device == "gpu" else "cpu"

    def scan(u, delta, A, B, C, D, z, bias):
        dt = torch.nn.functional.softplus(delta + bias)
        h = u.new_zeros(u.shape[0], u.shape[2], A.shape[1])
        ys = []
        for t in range(u.shape[1]):
            h = torch.exp(dt[:, t, :, None] * A) * h + \
                (dt[:, t, :, None] * u[:, t, :, None]) * B[:, t, None, :]
            ys.append((h * C[:, t, None, :]).sum(-1))
        y = torch.stack(ys, 1) + D * u
        return y * torch.nn.functional.silu(z)
    fn = torch.compile(scan) if compiled else scan

    def sync(_):
        if dev == "cuda":
            torch.cuda.synchronize()
    cache = {}

    def to_torch(x, c):
        key = id(x)
        if key not in cache:
            t = {n: torch.tensor(np.array(x[n]), device=dev).requires_grad_(True) for n in ARGS}
            cache.clear()
            cache[key] = (t, torch.tensor(np.array(c), device=dev))
        return cache[key]

    def fwd(x, c):
        t, _ = to_torch(x, c)
        with torch.no_grad():
            return fn(*[t[n] for n in ARGS])

    def fwdbwd(x, c):
        t, tc = to_torch(x, c)
        for v in t.values():
            v.grad = None
        y = fn(*[t[n] for n in ARGS])
        y.backward(tc)
        return y, t["u"].grad
    return fwd, fwdbwd, sync


def floor_bytes(b, L, D, N, pas):
    plane, row = 4 * b * L * D, 4 * b * L * N
    fwd = 3 * plane + 2 * row + plane  # u, delta, z, B, C in; out
    if pas == "fwd":
        return fwd
    # backward: the forward's inputs and dout in; du, ddelta, dz, dB, dC out
    return fwd + 4 * plane + 2 * row + 3 * plane + 2 * row


def timed(run, sync, repeat, budget):
    sync(run())
    ts = []
    start = time.perf_counter()
    for _ in range(repeat):
        t0 = time.perf_counter()
        sync(run())
        ts.append(time.perf_counter() - t0)
        if time.perf_counter() - start > budget and len(ts) >= 3:
            break
    return statistics.median(ts) * 1e3, len(ts)


def rel(a, b):
    a, b = np.array(a, np.float64), np.array(b, np.float64)
    return float(np.sqrt(np.mean((a - b) ** 2)) / (np.sqrt(np.mean(b ** 2)) + 1e-30))


class _Rows(list):
    """The case's rows, each printed as it is measured: a run stopped midway
    (a time limit) still shows what it measured."""

    def __init__(self, shape):
        super().__init__()
        self.shape = list(shape)

    def append(self, r):
        r["shape"] = self.shape
        if "ms" in r:
            r["mode"] = "throughput"
        print(_line(r), flush=True)
        super().append(r)


def run_case(shape, impls, device, repeat, budget):
    b, L, D, N = shape
    x, cot = inputs(*shape)
    ref_ok = L <= REFERENCE_MAX_L
    if ref_ok:
        (ry,), rg = mx.vjp(lambda *a: [fs.ops.selective_scan(
            *a[:5], a[5], a[6], delta_bias=a[7], delta_softplus=True, backend="reference")],
            [x[n] for n in ARGS], [cot])
        mx.eval(ry, rg)
    rows = _Rows(shape)
    y2 = lambda: x["u"] * 2  # noqa: E731
    ms, n = timed(y2, mx.eval, repeat, budget)
    bw = 2 * x["u"].nbytes / (ms * 1e-3)
    rows.append({"impl": "x*2", "pass": "fwd", "ms": ms, "runs": n, "parity": "yardstick"})
    for name, make in impls:
        if name.startswith("reference") and not ref_ok:
            rows.append(dict(impl=name, skipped=f"L > {REFERENCE_MAX_L}: not run"))
            continue
        if L > COMPILE_MAX_L.get(name, L):
            rows.append(dict(impl=name, skipped=f"L > {COMPILE_MAX_L[name]}: compiling the "
                                                f"unrolled loop takes minutes; not run"))
            continue
        try:
            fwd, fb, sync = make()
        except Exception as e:  # noqa: BLE001 - a missing peer is reported, not fatal
            rows.append(dict(impl=name, skipped=f"unavailable: {e}"))
            continue
        parity = "not checked (no reference at this L)"
        if ref_ok:
            out = fb(x, cot)
            sync(out)
            if name.startswith("torch"):
                y, gu = out
                errs = [rel(y.detach().cpu().numpy(), np.array(ry)),
                        rel(gu.cpu().numpy(), np.array(rg[0]))]
            else:
                (y,), g = out
                errs = [rel(y, ry)] + [rel(a, r) for a, r in zip(g, rg)]
            worst = max(errs)
            parity = f"ok ({worst:.1e})" if worst <= PARITY_TOL else f"FAIL ({worst:.1e})"
        for pas, call in (("fwd", fwd), ("fwd+bwd", fb)):
            ms, n = timed(lambda: call(x, cot), sync, repeat, budget)
            fl = floor_bytes(b, L, D, N, pas) / bw * 1e3
            rows.append({"impl": name, "pass": pas, "ms": ms, "runs": n, "parity": parity,
                         "floor_ms": fl, "vs_floor": ms / fl})
    ref = {r["pass"]: r["ms"] for r in rows if r.get("impl") == "reference" and "ms" in r}
    for r in rows:
        if "ms" in r and r.get("pass") in ref:
            r["reference_over"] = ref[r["pass"]] / r["ms"]
            if r["impl"] not in ("reference", "x*2"):
                print(f"B={b} L={L} D={D} N={N} {r['impl']:<20} {r['pass']:<8} "
                      f"{r['reference_over']:.1f}x the reference's speed", flush=True)
    return rows


def peak_memory(shape, backend):
    """Peak memory (MB) of one forward+backward: MLX's allocator and
    flashsnn's own cache (the fused kernels' outputs; src/ops/buffers.h),
    each from a reset, and their sum (a bound on the two together)."""
    b, L, D, N = shape
    x, cot = inputs(*shape)
    mx.clear_cache()
    fs.memory.clear_cache()
    mx.reset_peak_memory()
    fs.memory.reset_peak_memory()
    out = mx.vjp(lambda *a: [fs.ops.selective_scan(*a[:5], a[5], a[6], delta_bias=a[7],
                                                   delta_softplus=True, backend=backend)],
                 [x[n] for n in ARGS], [cot])
    mx.eval(out)
    m, f = mx.get_peak_memory() / 2**20, fs.memory.get_peak_memory() / 2**20
    del out
    return {"mlx": m, "flashsnn": f, "total": m + f}


def percall_fn(shape, pas: str, backend: str = "fused"):
    """What one user call does: the forward, or mx.grad of its .sum()."""
    x, _ = inputs(*shape)

    def fwd(u):
        return fs.ops.selective_scan(u, *[x[n] for n in ARGS[1:5]], x["D"], x["z"],
                                     delta_bias=x["delta_bias"], delta_softplus=True,
                                     backend=backend)
    if pas == "fwd":
        return lambda: fwd(x["u"])
    g = mx.grad(lambda u: fwd(u).sum())
    return lambda: g(x["u"])


def percall_main(argv=None) -> int:
    """One per-call measurement in this (fresh) process; prints
    ``{"times": [s, ...], "info": {...}}`` as the last line of stdout."""
    import argparse

    from . import percall
    p = argparse.ArgumentParser(prog="python -m flashsnn.bench.scan")
    p.add_argument("--shape", required=True, metavar="B,L,D,N")
    p.add_argument("--pass", dest="pas", default="fwd+bwd", choices=["fwd", "fwd+bwd"])
    p.add_argument("--mode", default="latency", choices=percall.PER_CALL)
    p.add_argument("--repeat", type=int, default=15)
    p.add_argument("--budget", type=float, default=10.0)
    p.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    a = p.parse_args(argv)
    if a.device == "gpu":
        mx.set_default_device(mx.gpu)
    fn = percall_fn(tuple(int(v) for v in a.shape.split(",")), a.pas)
    times, info = percall.measure(a.mode, fn, a.repeat, 3, a.budget)
    print(json.dumps({"times": times, "info": info}))
    return 0


def percall_row(shape, pas, mode, args) -> dict:
    """percall_main in a fresh process (it imports the same flashsnn)."""
    from . import percall
    times, info = percall.fresh_process(
        "flashsnn.bench.scan",
        ["--shape", ",".join(map(str, shape)), "--pass", pas, "--mode", mode, "--repeat",
         str(min(args.repeat, 15)), "--budget", str(args.budget), "--device", args.device],
        f"selective_scan {pas} {mode}")
    return {"impl": "fused", "pass": pas, "mode": mode, "shape": list(shape),
            "ms": statistics.median(times) * 1e3, "runs": len(times),
            **{k: v for k, v in info.items() if k != "busy"}}


def run(args) -> int:
    """From ``flashsnn bench``'s arguments (runner.add_arguments): --device,
    --shapes as B,L,D,N, --impls, --repeat, --budget, --memory, --out."""
    from ..cli import fail
    from .runner import machine_info, parse_shapes
    try:
        shapes = parse_shapes(args.shapes or [], "BLDN", "32,100,256,16", "selective_scan")
    except ValueError as e:
        return fail("bench", str(e))
    if not shapes:
        shapes = [(1, L, 256, 16) for L in MEMORY_LS] if args.memory else SHAPES
    result = {"machine": machine_info(args.device), "family": "selective_scan",
              "command": "flashsnn bench " + " ".join(sys.argv[2:])}
    if args.memory:
        rows = []
        for shape in shapes:
            row = {"shape": list(shape), "fused_peak_mb": peak_memory(shape, "fused")}
            if shape[1] <= REFERENCE_MAX_L:
                row["reference_peak_mb"] = peak_memory(shape, "reference")
            # Inputs and cotangent alone (4 of [1, L, D] and 2 of [1, L, N]
            # float32, plus A, D, bias): what no implementation can avoid.
            row["inputs_mb"] = sum(v.nbytes for v in inputs(*shape)[0].values()) / 2**20
            rows.append(row)
            print(row, flush=True)
        result["memory"] = rows
    else:
        impls = [("fused", lambda: mlx_impl("fused", False)),
                 ("reference", lambda: mlx_impl("reference", False)),
                 ("reference+compile", lambda: mlx_impl("reference", True)),
                 ("torch loop", lambda: torch_impl(args.device, False))]
        if args.device == "gpu":
            impls.append(("torch.compile loop", lambda: torch_impl(args.device, True)))
        if args.impls:
            impls = [i for i in impls if i[0] in args.impls]
        rows = []
        for shape in shapes:
            if "throughput" in args.modes:
                rows += run_case(shape, impls, args.device, args.repeat, args.budget)
            for mode in (m for m in args.modes if m != "throughput"):
                for pas in ("fwd", "fwd+bwd"):
                    r = percall_row(shape, pas, mode, args)
                    b, L, D, N = shape
                    print(f"B={b} L={L} D={D} N={N} {'fused':<20} {pas:<8} {r['ms']:9.2f} ms  "
                          f"one call at a time ({mode})", flush=True)
                    rows.append(r)
        result["rows"] = rows
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1))
        print(f"wrote {args.out}")
    return 0


def _line(r):
    b, L, D, N = r["shape"]
    head = f"B={b} L={L} D={D} N={N} {r['impl']:<20}"
    if "skipped" in r:
        return f"{head} skipped: {r['skipped']}"
    extra = f"  {r['vs_floor']:.2f}x floor" if "vs_floor" in r else ""
    return f"{head} {r['pass']:<8} {r['ms']:9.2f} ms{extra}  parity {r['parity']}"


if __name__ == "__main__":
    sys.exit(percall_main())

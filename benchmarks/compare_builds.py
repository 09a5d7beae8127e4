"""This build's fused Leaky against another build's, in one process, interleaved.

    python benchmarks/compare_builds.py --baseline /path/to/old/_ext.cpython-311-x86_64-linux-gnu.so \
        [--device cpu|gpu] [--shapes 100,32,1024 ...] [--out compare.json]

The baseline is a compiled flashsnn extension from another commit (built
beside this one, e.g. `git worktree add /tmp/old <rev>` and a CMake build
there). It is loaded under another module name, so both run in this process
on the same inputs: first a parity check (spikes, membrane and every gradient
bitwise equal), then rounds that alternate the two builds, each timing
forward and forward+backward (mx.vjp with dense cotangents) back to back, and
one call at a time with a sync of mx.grad of the spikes' plain .sum() (the
way users run it). Medians over rounds; the ratio new/old is printed and
written to JSON. Old builds expose `_ext.leaky(x, mem, beta, th, ...)`, new
ones `_ext.fused(0, x, [mem], [beta, th], ...)`; either works as either side.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import importlib.util
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import mlx.core as mx
import numpy as np

import flashsnn as fs

KW = dict(reset=0, mode=0, detach=False, surrogate_id=0, surrogate_a=2.0, surrogate_b=0.0,
          mem_all=False)


def load_baseline(path: str):
    loader = importlib.machinery.ExtensionFileLoader("_ext", path)
    spec = importlib.util.spec_from_file_location("_ext", path, loader=loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def leaky_of(ext):
    """(x, mem, beta, th) -> (spk, mem) through whichever entry point `ext` has."""
    if hasattr(ext, "fused"):
        return lambda x, m, b, t: tuple(ext.fused(0, x, [m], [b, t], **KW))
    return lambda x, m, b, t: tuple(ext.leaky(x, m, b, t, **KW))


def timed(fn, sync, n):
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        sync(fn())
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e3


def back_to_back(fn, n):
    """ms per pass, `n` passes launched before one wait."""
    t0 = time.perf_counter()
    outs = [fn() for _ in range(n)]
    mx.eval(outs)
    return (time.perf_counter() - t0) / n * 1e3


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--baseline", required=True, help="the other build's _ext .so")
    p.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    p.add_argument("--shapes", nargs="*", default=["100,32,1024"], metavar="T,B,N")
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--repeat", type=int, default=10, help="calls per measurement and round")
    p.add_argument("--out", type=Path, default=Path("compare-builds.json"))
    a = p.parse_args(argv)
    mx.set_default_device(mx.cpu if a.device == "cpu" else mx.gpu)
    builds = {"new": leaky_of(fs._backend.ext), "old": leaky_of(load_baseline(a.baseline))}
    z, beta, th = mx.array(0.0), mx.array(0.9), mx.array(1.0)
    rows = []
    for shape in a.shapes:
        T, B, N = (int(v) for v in shape.split(","))
        k = mx.random.split(mx.random.key(0), 3)
        x = mx.random.normal((T, B, N), key=k[0]) * 0.8 + 0.3
        cs, cm = mx.random.normal((T, B, N), key=k[1]), mx.random.normal((B, N), key=k[2])
        mx.eval(x, cs, cm)
        fns = {}
        for name, f in builds.items():
            fwd = lambda f=f: f(x, z, beta, th)  # noqa: E731
            vjp = lambda f=f: mx.vjp(lambda x_: f(x_, z, beta, th), [x], [cs, cm])  # noqa: E731
            grad = mx.grad(lambda x_, f=f: f(x_, z, beta, th)[0].sum())
            fns[name] = {"fwd": fwd, "fwd+bwd": vjp, "per-call .sum() grad": lambda g=grad: g(x)}
        # Parity first: a build that computes something else is not timed.
        flat = lambda out: [np.array(v) for v in (*out[0], *out[1])]  # noqa: E731
        ref, got = flat(fns["old"]["fwd+bwd"]()), flat(fns["new"]["fwd+bwd"]())
        same = all(np.array_equal(u, v) for u, v in zip(got, ref))
        print(f"T={T} B={B} N={N}: outputs and dx bitwise equal: {same}", flush=True)
        if not same:
            return 1
        samples = {(b, m): [] for b in builds for m in fns["new"]}
        for r in range(a.rounds):
            order = list(builds) if r % 2 == 0 else list(reversed(builds))
            for b in order:
                for m, fn in fns[b].items():
                    fn()  # warm
                    if m.startswith("per-call"):
                        samples[(b, m)].append(timed(fn, mx.eval, a.repeat))
                    else:
                        samples[(b, m)].append(back_to_back(fn, a.repeat))
        for m in fns["new"]:
            new, old = (statistics.median(samples[(b, m)]) for b in ("new", "old"))
            rows.append({"shape": [T, B, N], "measure": m, "new_ms": new, "old_ms": old,
                         "ratio": new / old})
            print(f"  {m:22s} new {new:8.3f} ms  old {old:8.3f} ms  new/old {new / old:.3f}",
                  flush=True)
    info = {"command": "python benchmarks/compare_builds.py " + " ".join(
                argv if argv is not None else sys.argv[1:]),
            "baseline": a.baseline, "device": a.device, "mlx": mx.__version__,
            "machine": platform.platform(), "processor": platform.processor(),
            "rounds": a.rounds, "repeat": a.repeat}
    a.out.write_text(json.dumps({"info": info, "rows": rows}, indent=1))
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

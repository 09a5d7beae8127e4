"""flashsnn's own Python cost per call of ``fs.ops.leaky``, against a bare ``_ext.fused``.

On inputs so small (default T=4 B=1 N=8) that the kernel costs nothing, it
times building the graph only, never evaluating it: the forward
``fs.ops.leaky(x, beta=0.9)``, and the trace that ``mx.grad`` of the spikes'
``.sum()`` runs (forward, sum and the backward primitive, still unevaluated).
MLX's own floor is one ``x * 2`` and ``mx.grad`` of ``(x * 2).sum()``.
Beside each sits the same graph built by calling ``_ext.fused`` directly with
ready-made arguments, so the difference is what flashsnn's Python adds
(argument checks, scalars to arrays, surrogate lookup, dispatch). Medians of
many calls in one process, in interleaved rounds.

    python -m flashsnn.bench.overhead                  # CPU
    python -m flashsnn.bench.overhead --calls 20000 --device gpu
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import mlx.core as mx

import flashsnn as fs


def cases(x: mx.array) -> dict:
    """name -> a callable that builds one graph (and evaluates nothing)."""
    ext = fs._backend.ext
    zero, beta, th = (mx.array(v, dtype=mx.float32) for v in (0.0, 0.9, 1.0))
    g = fs.surrogate.atan()
    kw = dict(reset=0, mode=0, detach=False, surrogate_id=g.kernel_id, surrogate_a=g.a,
              surrogate_b=g.b, mem_all=False)

    def bare(a):
        return ext.fused(0, a, [zero], [beta, th], **kw)

    def op(a):
        return fs.ops.leaky(a, beta=0.9)

    grad_x2 = mx.grad(lambda a: (a * 2).sum())
    grad_bare = mx.grad(lambda a: bare(a)[0].sum())
    grad_op = mx.grad(lambda a: op(a)[0].sum())
    return {
        "x * 2 (one MLX op)": lambda: x * 2,
        "grad trace: (x * 2).sum()": lambda: grad_x2(x),
        "forward: _ext.fused": lambda: bare(x),
        "forward: fs.ops.leaky": lambda: op(x),
        "grad trace: _ext.fused": lambda: grad_bare(x),
        "grad trace: fs.ops.leaky": lambda: grad_op(x),
    }


def measure(fns: dict, calls: int, rounds: int = 5) -> dict:
    """Median microseconds per call of each callable; the calls are split
    over `rounds` interleaved rounds so that a machine's drift reaches every
    callable alike."""
    samples = {k: [] for k in fns}
    per = max(1, calls // rounds)
    for _ in range(rounds):
        for k, fn in fns.items():
            for _ in range(min(per, 200)):  # warm-up: caches, branch predictors
                fn()
            ts = samples[k]
            for _ in range(per):
                t0 = time.perf_counter()
                fn()
                ts.append(time.perf_counter() - t0)
    return {k: statistics.median(v) * 1e6 for k, v in samples.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m flashsnn.bench.overhead",
                                description=__doc__.splitlines()[0])
    p.add_argument("--shape", default="4,1,8", metavar="T,B,N")
    p.add_argument("--calls", type=int, default=20000, help="timed calls per line (median)")
    p.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    args = p.parse_args(argv)
    if fs.fused_unavailable_reason() is not None:
        print(f"[overhead] needs the fused kernel: {fs.fused_unavailable_reason()}",
              file=sys.stderr)
        return 2
    if args.device == "gpu":
        mx.set_default_device(mx.gpu)
    shape = tuple(int(v) for v in args.shape.split(","))
    x = mx.random.normal(shape)
    mx.eval(x)
    res = measure(cases(x), args.calls)
    print(f"# graph construction only, {args.device}, x {list(shape)}, median of "
          f"{args.calls} calls, mlx {mx.__version__}")
    for k, us in res.items():
        print(f"{k:28s} {us:7.2f} us")
    for what in ("forward", "grad trace"):
        extra = res[f"{what}: fs.ops.leaky"] - res[f"{what}: _ext.fused"]
        print(f"{what}: flashsnn's Python adds {extra:.2f} us a call")
    return 0


if __name__ == "__main__":
    sys.exit(main())

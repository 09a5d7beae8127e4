"""Where the time of one fused Leaky call goes, piece by piece (GPU or CPU).

    python benchmarks/gpu_diag.py --device gpu [--shape 100,64,4096]

Times, each the median of repeated runs waiting on every output: the raw
extension call with and without saving h, with parameters made once or per
call, the public op, the forward+backward under mx.vjp, and x*2 as the
bandwidth yardstick.
"""

import argparse
import statistics
import time

import mlx.core as mx

import flashsnn as fs


def bench(fn, repeat=30, warmup=5):
    for _ in range(warmup):
        mx.eval(fn())
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        mx.eval(fn())
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e3


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="gpu", choices=["cpu", "gpu"])
    p.add_argument("--shape", default="100,64,4096")
    a = p.parse_args()
    if a.device == "gpu":
        mx.set_default_device(mx.gpu)
    T, B, N = map(int, a.shape.split(","))
    k = mx.random.split(mx.random.key(0), 3)
    x = mx.random.normal((T, B, N), key=k[0]) * 0.8 + 0.3
    cs = mx.random.normal((T, B, N), key=k[1])
    cm = mx.random.normal((B, N), key=k[2])
    z, b, th = mx.array(0.0), mx.array(0.9), mx.array(1.0)
    mx.eval(x, cs, cm, z, b, th)
    e = fs._backend.ext
    kw = dict(reset=0, mode=0, detach=False, surrogate_id=0, surrogate_a=2.0, surrogate_b=0.0,
              mem_all=False)
    f = lambda x_: fs.ops.leaky(x_, beta=0.9, backend="fused")  # noqa: E731
    rows = {
        "x*2": lambda: x * 2,
        "ext save=0, params made once": lambda: e.leaky(x, z, b, th, save=0, **kw),
        "ext save=1, params made once": lambda: e.leaky(x, z, b, th, save=1, **kw),
        "ext save=0, params per call": lambda: e.leaky(x, mx.array(0.0), mx.array(0.9),
                                                       mx.array(1.0), save=0, **kw),
        "ops.leaky fwd": lambda: f(x),
        "ops.leaky fwd, spk only": lambda: f(x)[0],
        "mx.vjp fwd+bwd": lambda: mx.vjp(f, [x], [cs, cm]),
    }
    for name, fn in rows.items():
        print(f"{name:34s} {bench(fn):8.3f} ms", flush=True)
    if a.device == "gpu":
        bandwidth_yardsticks(x.size)


def bandwidth_yardsticks(n):
    """x*2 over the same number of float32 elements outside MLX: torch
    (device memory from its caching allocator) and CuPy on device memory and
    on managed memory (what MLX's allocator::malloc returns), to tell the
    kernels' limits from the memory's."""
    import importlib.util

    def cuda_bench(fn, sync, repeat=50):
        for _ in range(10):
            fn()
        sync()
        ts = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            sync()
            ts.append(time.perf_counter() - t0)
        return statistics.median(ts) * 1e3

    gb = 2 * n * 4 / 1e9
    if importlib.util.find_spec("torch"):
        import torch
        t = torch.randn(n, device="cuda")
        ms = cuda_bench(lambda: t * 2, torch.cuda.synchronize)
        print(f"{'torch x*2':34s} {ms:8.3f} ms  {gb / ms:.2f} TB/s", flush=True)
    if importlib.util.find_spec("cupy"):
        import cupy as cp
        for label, alloc in (("device", None), ("managed", cp.cuda.malloc_managed)):
            pool = cp.cuda.MemoryPool(alloc) if alloc else cp.cuda.MemoryPool()
            with cp.cuda.using_allocator(pool.malloc):
                c = cp.random.standard_normal(n, dtype=cp.float32)
                sync = cp.cuda.Stream.null.synchronize
                ms = cuda_bench(lambda: c * 2, sync)
                print(f"{'cupy x*2 ' + label:34s} {ms:8.3f} ms  {gb / ms:.2f} TB/s", flush=True)
    print(f"{'ops.leaky fwd, 2 calls per eval':34s} "
          f"{bench(lambda: [f(x), f(x * 1.0)]):8.3f} ms", flush=True)


if __name__ == "__main__":
    main()

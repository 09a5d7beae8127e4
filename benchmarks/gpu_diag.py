"""Where the time of one fused Leaky call goes, piece by piece (GPU or CPU).

    python benchmarks/gpu_diag.py --device gpu [--shape 100,64,4096]
    FLASHSNN_CUDA_VEC=1 FLASHSNN_CUDA_BLOCK=64 python benchmarks/gpu_diag.py ...

Times, each the median over batches of passes run back to back (one wait per
batch, as CUDA-event timing would): the raw extension call with and without
saving h, with parameters made once or per call, the public op, the
forward+backward under mx.vjp, and x*2 as the bandwidth yardstick, in MLX and
(on a GPU) in torch and CuPy on device and managed memory. The environment
variables override the CUDA launch shape for tuning runs (csrc/family.cu).
"""

import argparse
import importlib.util
import statistics
import time

import mlx.core as mx

import flashsnn as fs


def batched(run, sync, batch=20, repeat=15):
    """ms per call of run(), `batch` calls between waits."""
    for _ in range(3):
        sync(run())
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(batch - 1):
            run()
        sync(run())
        ts.append((time.perf_counter() - t0) / batch)
    return statistics.median(ts) * 1e3


def mlx_time(fn, batch):
    def run():
        out = fn()
        mx.async_eval(out)
        return out
    return batched(run, mx.eval, batch)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="gpu", choices=["cpu", "gpu"])
    p.add_argument("--shape", default="100,64,4096")
    a = p.parse_args()
    if a.device == "gpu":
        mx.set_default_device(mx.gpu)
    batch = 20 if a.device == "gpu" else 1
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
    gb = x.nbytes / 1e9
    rows = {  # name: (fn, planes of x's size moved at least)
        "x*2": (lambda: x * 2, 2),
        "ext save=0 (x, spk)": (lambda: e.fused(0, x, [z], [b, th], save=0, **kw), 2),
        "ext save=1 (x, spk, h)": (lambda: e.fused(0, x, [z], [b, th], save=1, **kw), 3),
        "ext save=0, params per call": (lambda: e.fused(0, x, [mx.array(0.0)], [mx.array(0.9),
                                                        mx.array(1.0)], save=0, **kw), 2),
        "ops.leaky fwd": (lambda: f(x), 2),
        "mx.vjp fwd+bwd": (lambda: mx.vjp(f, [x], [cs, cm]), 6),
    }
    for name, (fn, planes) in rows.items():
        ms = mlx_time(fn, batch)
        print(f"{name:30s} {ms:8.3f} ms  {planes * gb / ms:6.2f} TB/s", flush=True)
    if a.device == "gpu":
        bandwidth_yardsticks(x.size, gb)


def bandwidth_yardsticks(n, gb):
    """x*2 over as many float32 elements outside MLX: torch (its caching
    allocator's device memory) and CuPy on device and on managed memory
    (what MLX's allocator::malloc returns), to tell the kernels' limits from
    the memory's."""
    if importlib.util.find_spec("torch"):
        import torch
        t = torch.randn(n, device="cuda")
        ms = batched(lambda: t * 2, lambda _: torch.cuda.synchronize())
        print(f"{'torch x*2':30s} {ms:8.3f} ms  {2 * gb / ms:6.2f} TB/s", flush=True)
    if importlib.util.find_spec("cupy"):
        import cupy as cp
        for label, alloc in (("device", None), ("managed", cp.cuda.malloc_managed)):
            pool = cp.cuda.MemoryPool(alloc) if alloc else cp.cuda.MemoryPool()
            with cp.cuda.using_allocator(pool.malloc):
                c = cp.random.standard_normal(n, dtype=cp.float32)
                ms = batched(lambda: c * 2, lambda _: cp.cuda.Stream.null.synchronize())
                print(f"{'cupy x*2 ' + label:30s} {ms:8.3f} ms  {2 * gb / ms:6.2f} TB/s",
                      flush=True)


if __name__ == "__main__":
    main()

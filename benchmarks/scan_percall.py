# One selective-scan call at a time (graph, mx.eval, mx.synchronize) with a plain .sum() loss,
# in a fresh process ("fresh") or after other MLX work ("busy"), MLX default cache:
#   python benchmarks/scan_percall.py fresh|busy [cpu|gpu]
import sys, time, statistics, mlx.core as mx, flashsnn as fs
device = sys.argv[2] if len(sys.argv) > 2 else "cpu"
mx.set_default_device(mx.gpu if device == "gpu" else mx.cpu)
busy = sys.argv[1] == "busy"
b, L, D, N = 32, 100, 256, 16
k = mx.random.split(mx.random.key(0), 5)
u = mx.random.normal((b, L, D), key=k[0]); dt = mx.random.normal((b, L, D), key=k[1]) * 0.5
A = -mx.exp(mx.random.normal((D, N), key=k[2]) * 0.5)
B = mx.random.normal((b, L, N), key=k[3]); C = mx.random.normal((b, L, N), key=k[4])
mx.eval(u, dt, A, B, C)
if busy:  # other MLX work first: a few matmuls and reductions leave MLX's cache in use
    for _ in range(20):
        w = mx.random.normal((512, 512)); mx.eval((w @ w).sum(), mx.exp(w).mean())
g = mx.grad(lambda u_: fs.ops.selective_scan(u_, dt, A, B, C, delta_softplus=True).sum())
f = lambda: fs.ops.selective_scan(u, dt, A, B, C, delta_softplus=True)
ts = {"fwd": [], "fwd+bwd": []}
for i in range(12):
    for name, fn in (("fwd", f), ("fwd+bwd", lambda: g(u))):
        t0 = time.perf_counter(); mx.eval(fn()); mx.synchronize(); ts[name].append(time.perf_counter() - t0)
print(device, sys.argv[1], {k: round(statistics.median(v[2:]) * 1e3, 2) for k, v in ts.items()})

"""One fused Leaky forward+backward on the GPU, for Nsight Compute.

    ncu -k regex:family_ --launch-skip 4 --launch-count 2 \
        --section SpeedOfLight --section MemoryWorkloadAnalysis \
        --section Occupancy --section WarpStateStats \
        python benchmarks/ncu_leaky.py [--shape 100,64,4096]
"""

import argparse

import mlx.core as mx

import flashsnn as fs

p = argparse.ArgumentParser()
p.add_argument("--shape", default="100,64,4096")
T, B, N = map(int, p.parse_args().shape.split(","))
mx.set_default_device(mx.gpu)
k = mx.random.split(mx.random.key(0), 3)
x = mx.random.normal((T, B, N), key=k[0]) * 0.8 + 0.3
cs, cm = mx.random.normal((T, B, N), key=k[1]), mx.random.normal((B, N), key=k[2])
mx.eval(x, cs, cm)
f = lambda x_: fs.ops.leaky(x_, beta=0.9, backend="fused")  # noqa: E731
for _ in range(3):
    mx.eval(mx.vjp(f, [x], [cs, cm]))

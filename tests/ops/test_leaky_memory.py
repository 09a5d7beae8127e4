"""How the fused Leaky op gets and uses memory: flashsnn's own buffer cache
(flashsnn.memory, src/ops/buffers.h) and cotangents read as one row.

A .sum() loss, or a sum of the spikes over time, gives a spike cotangent that
is the same at every step; the op passes it to the backward kernel as one
[*S] row (step stride 0) instead of a materialized [T, *S] array. Gradients
must not change by a bit, and MLX must not allocate that array.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import mlx.core as mx
import numpy as np
import pytest

import flashsnn as fs
from helpers import describe, np32, rel_rms

pytestmark = pytest.mark.skipif(fs.fused_unavailable_reason() is not None,
                                reason=f"no fused kernel: {fs.fused_unavailable_reason()}")


def _inputs(T=40, S=(3, 33), seed=0):
    k = mx.random.split(mx.random.key(seed), 4)
    x = mx.random.normal((T, *S), key=k[0]) * 0.8 + 0.3
    mem = mx.random.normal(S, key=k[1]) * 0.5
    beta = mx.random.uniform(0.5, 1.0, S[-1:], key=k[2])
    th = mx.random.uniform(0.8, 1.2, S[-1:], key=k[3])
    return x, mem, beta, th


# Losses whose spike (or membrane) cotangent is the same at every step.
LOSSES = {
    "sum": lambda spk, mem: spk.sum(),
    "mean": lambda spk, mem: spk.mean(),
    "sum_over_time": lambda spk, mem: (spk.sum(0) * mx.arange(spk.shape[-1])).sum(),
    "sum_plus_mem": lambda spk, mem: spk.sum() + (mem * mem).sum(),
    "mem_all_sum": lambda spk, mem: spk.sum() + 0.5 * mem.sum(),
}


@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("convention", ["snntorch", "same_step"])
@pytest.mark.parametrize("loss", list(LOSSES))
def test_row_cotangent_gradients(loss, convention, reset):
    """Every gradient through a loss whose cotangent is one row: equal to the
    reference's, and bitwise equal to the fused op's own under the same
    cotangent materialized over all T steps."""
    x, mem, beta, th = _inputs(seed=len(loss))
    output_mem = "all" if loss == "mem_all_sum" else "last"
    kw = dict(reset_mechanism=reset, convention=convention, output_mem=output_mem)

    def f(backend):
        def run(x_, m_, b_, t_):
            return LOSSES[loss](*fs.ops.leaky(x_, m_, beta=b_, threshold=t_, backend=backend, **kw))
        return mx.grad(run, argnums=(0, 1, 2, 3))

    fused = f("fused")(x, mem, beta, th)
    ref = f("reference")(x, mem, beta, th)
    # The same cotangents as dense arrays (mx.vjp with materialized ones).
    outs, pull = mx.vjp(lambda *a: LOSSES[loss](*a), list(fs.ops.leaky(x, mem, beta=beta, threshold=th,
                                                                       **kw)), [mx.array(1.0)])
    dense = [mx.array(np.array(c)) for c in pull]
    _, dense_grads = mx.vjp(lambda *a: fs.ops.leaky(*a[:2], beta=a[2], threshold=a[3],
                                                    backend="fused", **kw), [x, mem, beta, th], dense)
    for name, g, r, d in zip(("x", "mem", "beta", "threshold"), fused, ref, dense_grads):
        assert g.shape == r.shape, (name, g.shape, r.shape)
        assert rel_rms(g, r) <= 1e-5, f"d{name} vs reference: {describe(g, r)}"
        np.testing.assert_array_equal(np32(g), np32(d), err_msg=f"d{name} row vs dense")


def test_sum_loss_allocates_no_cotangent_array():
    """MLX's peak memory during a .sum() gradient stays below one [T, *S]
    array: the cotangent goes to the kernel as one row. (The kernels'
    outputs come from flashsnn's cache, which MLX's count leaves out.)"""
    x = mx.random.normal((100, 4, 1024))
    mx.eval(x)
    g = mx.grad(lambda a: fs.ops.leaky(a, beta=0.9, backend="fused")[0].sum())
    mx.eval(g(x))
    mx.synchronize()
    mx.reset_peak_memory()
    base = mx.get_active_memory()
    mx.eval(g(x))
    mx.synchronize()
    grew = mx.get_peak_memory() - base
    assert grew < x.nbytes // 2, f"MLX allocated {grew} bytes during the gradient (x: {x.nbytes})"


def test_vmap_of_a_sum_loss_gradient():
    """vmap over the gradient: the backward primitive's vmap expands a row
    cotangent to the steps it stands for."""
    xs = mx.random.normal((3, 20, 2, 17)) * 0.8 + 0.3

    def g(backend):
        return mx.grad(lambda a: fs.ops.leaky(a, beta=0.8, backend=backend)[0].sum())

    got = mx.vmap(g("fused"))(xs)
    want = mx.stack([g("reference")(xs[i]) for i in range(3)])
    assert rel_rms(got, want) <= 1e-5, describe(got, want)


def test_memory_counts_and_caches_outputs():
    """flashsnn.memory sees the op's large outputs while they live, keeps
    them for reuse after, and gives them back on request."""
    dev = mx.default_device()
    if fs.memory.get_cache_limit() == 0:
        pytest.skip("this build keeps no cache of its own (Metal)")
    fs.memory.clear_cache()
    before = fs.memory.get_active_memory()
    fs.memory.reset_peak_memory()
    spk, mem = fs.ops.leaky(mx.random.normal((50, 8, 1024)), beta=0.9, backend="fused")
    mx.eval(spk, mem)
    assert fs.memory.get_active_memory() - before >= spk.nbytes
    assert fs.memory.get_peak_memory() >= spk.nbytes
    ref = np.array(spk)  # a host read of flashsnn's buffer (CUDA: MLX copies it out)
    assert float((spk * 2).sum().item()) == pytest.approx(2 * float(ref.sum()))
    del spk, mem
    mx.synchronize()
    assert fs.memory.get_active_memory() == before
    assert fs.memory.get_cache_memory() > 0
    old = fs.memory.set_cache_limit(0)
    assert fs.memory.get_cache_memory() == 0
    fs.memory.set_cache_limit(old)
    assert fs.memory.get_cache_limit(dev) == old


@pytest.mark.parametrize("bad", [-1, 1.5, "1GB", True])
def test_cache_limit_rejects_bad_values(bad):
    with pytest.raises(ValueError, match=r"\[memory\] limit must be a whole number"):
        fs.memory.set_cache_limit(bad)


@pytest.mark.skipif(fs.gpu_backend() != "none" or mx.default_device() != mx.cpu,
                    reason="page faults of the CPU-only build's host cache")
def test_no_page_faults_per_call_after_other_work():
    """In a process whose MLX cache already holds other buffers, a .sum()
    gradient at T=100 B=32 N=1024 takes no fresh pages per call: with MLX's
    allocator it took about 6,400 page faults per call (13 MB arrays that
    glibc gave back to the kernel), with flashsnn's cache none."""
    script = textwrap.dedent("""
        import resource, mlx.core as mx, flashsnn as fs
        for i in range(200):  # other work: fill MLX's cache with other sizes
            a = mx.random.normal((64 + 7 * i, 129)); mx.eval((a @ a.T).sum())
        x = mx.random.normal((100, 32, 1024)); mx.eval(x)
        g = mx.grad(lambda a: fs.ops.leaky(a, beta=0.9, backend="fused")[0].sum())
        for _ in range(3): mx.eval(g(x))
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(5): mx.eval(g(x))
        print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) // 5)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    faults = int(out.stdout.strip().splitlines()[-1])
    assert faults < 300, f"{faults} page faults per call"

"""python/flashsnn/bench/overhead.py: the per-call overhead tool runs and
reports every line (no timing assertions: a shared machine drifts)."""

from __future__ import annotations

import pytest

import flashsnn as fs
from flashsnn.bench import overhead

pytestmark = pytest.mark.skipif(fs.fused_unavailable_reason() is not None,
                                reason=f"no fused kernel: {fs.fused_unavailable_reason()}")


def test_overhead_reports_each_graph(capsys):
    assert overhead.main(["--calls", "50"]) == 0
    out = capsys.readouterr().out
    for line in ("x * 2 (one MLX op)", "grad trace: (x * 2).sum()", "forward: _ext.fused",
                 "forward: fs.ops.leaky", "grad trace: _ext.fused", "grad trace: fs.ops.leaky",
                 "forward: flashsnn's Python adds", "grad trace: flashsnn's Python adds"):
        assert line in out


def test_graphs_are_the_ops_own():
    """The bare and the op graphs compute the same spikes, so the difference
    between their times is the Python around the same primitive."""
    import mlx.core as mx
    x = mx.random.normal((4, 1, 8), key=mx.random.key(1))
    fns = overhead.cases(x)
    a, b = fns["forward: _ext.fused"](), fns["forward: fs.ops.leaky"]()
    assert mx.array_equal(a[0], b[0]) and mx.array_equal(a[1], b[1])
    assert mx.array_equal(fns["grad trace: _ext.fused"](), fns["grad trace: fs.ops.leaky"]())

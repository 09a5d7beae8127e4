"""Where a training step's time goes: the LIF ops (forward + backward) against
the Linear layers (forward + backward), each timed alone on the same batch.

On Linux, MLX's CPU wheel links netlib's reference BLAS (DESIGN.md section 4):
a [3200, 784] @ [784, 256] float32 matmul took 402 ms on the 2-core
development host against 17 ms in single-threaded NumPy (about 3 vs 75
GFLOP/s). So the matmuls, not the neurons, dominate a training step there;
this split shows by how much on the machine at hand.
"""

from __future__ import annotations

import time

import mlx.core as mx
import mlx.nn as nn

from .. import functional


def _best_ms(fn, repeats: int) -> float:
    """The fastest of ``repeats`` timed runs after a warm-up. The minimum, not
    the median: other processes only ever add time. (On a shared 2-core host
    at a load average of ~4.5, one fused training step measured min 83-160 ms,
    median 148-211 ms over three runs: even minima are only good to ~2x
    there, so compare parts measured in the same run.)"""
    mx.eval(fn())
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        mx.eval(fn())
        times.append((time.perf_counter() - t0) * 1e3)
    return min(times)


def time_split(model, x: mx.array, y: mx.array, *, repeats: int = 10) -> dict:
    """Best-of-``repeats`` milliseconds of one training step and of its two parts.

    Args:
        model: a :class:`flashsnn.models.SpikingMLP`.
        x: one rate-coded batch ``[T, B, D]``; y: its labels ``[B]``.
        repeats: timed runs after one warm-up.

    Returns:
        ``{"step_ms", "lif_ms", "linear_ms", "backend"}``: a whole forward +
        backward step; both LIF layers' forward + backward alone (inputs
        fixed); both Linear layers' forward + backward alone (the products
        a step needs: outputs, weight gradients and the hidden layer's input
        gradient).
    """
    def loss_fn(m, xb, yb):
        return functional.membrane_ce(m(xb)[1], yb)

    step = nn.value_and_grad(model, loss_fn)
    h1 = model.fc1(x)
    spk1, _ = model._lif(h1, "subtract")
    o = model.fc2(spk1)
    mx.eval(h1, spk1, o)
    key = mx.random.key(0)
    k1, k2, k3 = mx.random.split(key, 3)
    r1 = mx.random.normal(h1.shape, key=k1)          # random cotangents
    r2 = mx.random.normal(o.shape[1:], key=k2)
    r3 = mx.random.normal(o.shape, key=k3)

    def lif_loss(a, b):
        s, _ = model._lif(a, "subtract")
        _, m = model._lif(b, "none")
        return mx.sum(s * r1) + mx.sum(m * r2)

    lif = mx.value_and_grad(lif_loss, argnums=(0, 1))

    def linear_loss(params, s):
        model.update(params)
        return mx.sum(model.fc1(x) * r1) + mx.sum(model.fc2(s) * r3)

    linear = mx.value_and_grad(linear_loss, argnums=(0, 1))
    params = model.trainable_parameters()
    out = {
        "step_ms": _best_ms(lambda: step(model, x, y), repeats),
        "lif_ms": _best_ms(lambda: lif(h1, o), repeats),
        "linear_ms": _best_ms(lambda: linear(params, spk1), repeats),
        "backend": model.backend,
    }
    model.update(params)
    return out

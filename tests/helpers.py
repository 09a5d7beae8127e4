"""Shared test utilities: error measures and the fused-vs-reference harness."""

from __future__ import annotations

import mlx.core as mx
import numpy as np

import flashsnn as fs


def np32(a) -> np.ndarray:
    return np.array(a.astype(mx.float32)) if isinstance(a, mx.array) else np.asarray(a, np.float32)


def rel_rms(a, b) -> float:
    """||a - b||_rms / ||b||_rms (0 when both are all zero)."""
    a, b = np32(a).astype(np.float64), np32(b).astype(np.float64)
    num = np.sqrt(np.mean((a - b) ** 2)) if a.size else 0.0
    den = np.sqrt(np.mean(b ** 2)) if b.size else 0.0
    if den == 0.0:
        return 0.0 if num == 0.0 else float("inf")
    return float(num / den)


def describe(a, b) -> str:
    a, b = np32(a), np32(b)
    return f"max|diff|={np.max(np.abs(a - b)) if a.size else 0:.3e} rel_rms={rel_rms(a, b):.3e}"


def vjp_both(fn, primals, cotangents):
    """(outputs, grads) of fn under mx.vjp, evaluated."""
    outs, grads = mx.vjp(fn, primals, cotangents)
    mx.eval(outs, grads)
    return outs, grads


# Every kernel surrogate, some with non-default parameters (the fused tests
# run each one against the reference).
SURROGATES = {
    "atan": fs.surrogate.atan(),
    "atan_a5": fs.surrogate.atan(alpha=5.0),
    "fast_sigmoid": fs.surrogate.fast_sigmoid(),
    "sigmoid": fs.surrogate.sigmoid(slope=5),
    "triangular": fs.surrogate.triangular(),
    "straight_through": fs.surrogate.straight_through(),
    "heaviside": fs.surrogate.heaviside(),
    "spike_rate_escape": fs.surrogate.spike_rate_escape(beta=2, slope=0.5),
    "SFS": fs.surrogate.SFS(slope=10, B=-0.5),
    "LSO": fs.surrogate.LSO(slope=0.2),
}

"""RLeaky, the pure-MLX way: one step per time step, float32 state,
straight-through surrogate. Written from snnTorch's ``RLeaky`` (same operation
order)::

    R_t = stop_gradient(H(U_{t-1} - threshold))
    B_t = beta*U_{t-1} + X_t + V*S_{t-1}        (or + recurrent(S_{t-1}))
    U_t = B_t - R_t*threshold    (subtract)
          B_t - R_t*B_t          (zero: the whole step, input included)
    S_t = spike_grad(U_t - threshold)           (fed back with its gradient)
    reset_delay=False:  U_t -= (S_t - R_t)*threshold   (subtract)
                        U_t -= (S_t - R_t)*U_t         (zero)
"""

from __future__ import annotations

import mlx.core as mx

from .. import surrogate as _surrogate
from ..ops.rleaky import RLeakyArgs, check_args


def _clamp01(p: mx.array) -> mx.array:
    # torch.clamp's gradient: passes on [0, 1] inclusive, zero outside.
    return mx.where(p < 0, 0.0, mx.where(p > 1, 1.0, p))


def run(a: RLeakyArgs) -> tuple[mx.array, mx.array]:
    dtype, T = a.x.dtype, a.x.shape[0]
    x = a.x.astype(mx.float32)
    beta, th = _clamp01(a.beta), a.threshold
    fire = _surrogate.fire
    feedback = a.recurrent if a.recurrent is not None else (lambda s: s * a.V)
    zeros = mx.zeros(a.S, dtype=mx.float32)
    spk = a.spk if a.spk is not None else zeros
    mem = a.mem if a.mem is not None else zeros
    spks, mems = [], []
    for t in range(T):
        r = mx.stop_gradient(fire(a.spike_grad, mem - th))
        base = beta * mem + x[t] + feedback(spk).astype(mx.float32)
        if a.reset == "subtract":
            mem = base - r * th
        elif a.reset == "zero":
            mem = base - r * base
        else:
            mem = base
        spk = fire(a.spike_grad, mem - th)
        if not a.reset_delay:
            if a.reset == "subtract":
                mem = mem - (spk - r) * th
            elif a.reset == "zero":
                mem = mem - (spk - r) * mem
        spks.append(spk)
        if a.mem_all:
            mems.append(mem)
    if T == 0:
        empty = mx.zeros(a.x.shape, dtype=dtype)
        return empty, (empty if a.mem_all else mem.astype(dtype))
    out = mx.stack(spks).astype(dtype)
    return out, (mx.stack(mems) if a.mem_all else mem).astype(dtype)


def rleaky(x: mx.array, spk: mx.array | None = None, mem: mx.array | None = None, *,
           beta, V=None, recurrent=None, threshold=1.0, reset_mechanism: str = "subtract",
           reset_delay: bool = True, spike_grad=_surrogate.atan(),
           output_mem: str = "last") -> tuple[mx.array, mx.array]:
    """Same signature and results as :func:`flashsnn.ops.rleaky` (without
    ``backend``), computed step by step in plain MLX."""
    return run(check_args(x, spk, mem, beta, V, recurrent, threshold, reset_mechanism,
                          reset_delay, spike_grad, output_mem))

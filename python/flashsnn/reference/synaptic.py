"""Synaptic, the pure-MLX way: one step per time step, float32 state,
straight-through surrogate. Written from snnTorch's ``Synaptic`` (same
operation order, so float32 results match it to the last bit in practice)::

    R_t   = stop_gradient(H(U_{t-1} - threshold))
    I_t   = alpha*I_{t-1} + X_t
    U_t   = beta*U_{t-1} + I_t  - R_t*threshold        (subtract)
            (beta*U_{t-1} + I_t)*(1 - R_t)              (zero; I_t is not reset)
    S_t   = spike_grad(U_t - threshold)
    reset_delay=False:  U_t -= (S_t - R_t)*threshold   (subtract)
                        U_t -= (S_t - R_t)*U_t         (zero)
"""

from __future__ import annotations

import mlx.core as mx

from .. import surrogate as _surrogate
from ..ops.synaptic import SynapticArgs, check_args


def _clamp01(p: mx.array) -> mx.array:
    # torch.clamp's gradient: passes on [0, 1] inclusive, zero outside.
    return mx.where(p < 0, 0.0, mx.where(p > 1, 1.0, p))


def run(a: SynapticArgs) -> tuple[mx.array, mx.array, mx.array]:
    dtype, T = a.x.dtype, a.x.shape[0]
    x = a.x.astype(mx.float32)
    alpha, beta, th = _clamp01(a.alpha), _clamp01(a.beta), a.threshold
    fire = _surrogate.fire
    zeros = mx.zeros(a.S, dtype=mx.float32)
    syn = a.syn if a.syn is not None else zeros
    mem = a.mem if a.mem is not None else zeros
    spks, syns, mems = [], [], []
    for t in range(T):
        r = mx.stop_gradient(fire(a.spike_grad, mem - th))
        syn = alpha * syn + x[t]
        mem = beta * mem + syn
        if a.reset == "subtract":
            mem = mem - r * th
        elif a.reset == "zero":
            mem = mem - mem * r
        s = fire(a.spike_grad, mem - th)
        if not a.reset_delay:
            if a.reset == "subtract":
                mem = mem - (s - r) * th
            elif a.reset == "zero":
                mem = mem - (s - r) * mem
        spks.append(s)
        if a.mem_all:
            syns.append(syn)
            mems.append(mem)
    if T == 0:
        empty = mx.zeros(a.x.shape, dtype=dtype)
        if a.mem_all:
            return empty, empty, empty
        return empty, syn.astype(dtype), mem.astype(dtype)
    spk = mx.stack(spks).astype(dtype)
    if a.mem_all:
        return spk, mx.stack(syns).astype(dtype), mx.stack(mems).astype(dtype)
    return spk, syn.astype(dtype), mem.astype(dtype)


def synaptic(x: mx.array, syn: mx.array | None = None, mem: mx.array | None = None, *,
             alpha, beta, threshold=1.0, reset_mechanism: str = "subtract",
             reset_delay: bool = True, spike_grad=_surrogate.atan(),
             output_mem: str = "last") -> tuple[mx.array, mx.array, mx.array]:
    """Same signature and results as :func:`flashsnn.ops.synaptic` (without
    ``backend``), computed step by step in plain MLX."""
    return run(check_args(x, syn, mem, alpha, beta, threshold, reset_mechanism,
                          reset_delay, spike_grad, output_mem))

"""Lapicque, the pure-MLX way: one step per time step, float32 state,
straight-through surrogate. Written from snnTorch's ``Lapicque`` (same
operation order)::

    R_t = stop_gradient(H(U_{t-1} - threshold))
    B_t = X_t*R*(1/(R*C))*dt + (1 - dt/(R*C))*U_{t-1}
    U_t = B_t - R_t*threshold      (subtract)
          B_t - R_t*B_t            (zero: the whole step, input included)
          B_t                      (none)
    S_t = spike_grad(U_t - threshold)
"""

from __future__ import annotations

import mlx.core as mx

from .. import surrogate as _surrogate
from ..ops.lapicque import LapicqueArgs, check_args
from ._common import Steps, reset, zeros_if_none


def run(a: LapicqueArgs) -> tuple[mx.array, mx.array]:
    x = a.x.astype(mx.float32)
    R, C, dt, th = a.R, a.C, a.time_step, a.threshold
    fire = _surrogate.fire
    # snnTorch's grouping: x*R*(1/(R*C))*dt + (1 - dt/(R*C))*U
    gain = 1 / (R * C)
    keep = 1 - dt / (R * C)
    (mem,) = zeros_if_none(a.S, a.mem)
    steps = Steps(a)
    for t in range(x.shape[0]):
        r = mx.stop_gradient(fire(a.spike_grad, mem - th))
        base = x[t] * R * gain * dt + keep * mem
        mem = reset(base, r, th, a.reset)
        steps.add(fire(a.spike_grad, mem - th), mem)
    return steps.outputs(mem)


def lapicque(x: mx.array, mem: mx.array | None = None, *, R, C, time_step=1.0,
             threshold=1.0, reset_mechanism: str = "subtract",
             spike_grad=_surrogate.atan(), output_mem: str = "last"
             ) -> tuple[mx.array, mx.array]:
    """Same signature and results as :func:`flashsnn.ops.lapicque` (without
    ``backend``), computed step by step in plain MLX."""
    return run(check_args(x, mem, R, C, time_step, threshold, reset_mechanism,
                          spike_grad, output_mem))

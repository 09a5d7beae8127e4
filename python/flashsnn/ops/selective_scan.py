"""Mamba-1's selective scan, fused: ``flashsnn.ops.selective_scan``.

All L positions in one kernel launch, forward and backward, with a real VJP
for every input. Channels-last (MLX's habit; mamba_ssm is channels-first)::

    u, delta, z   [batch, L, D]      the sequence inputs, one dtype
    A             [D, N]             float32
    B, C          [batch, L, N]      per step (u's dtype), or [D, N] float32
    D, delta_bias [D]                float32
    initial_state [batch, D, N]      float32; the state is float32 throughout

    delta <- softplus(delta + delta_bias)            (delta_softplus=True)
    h_l   = exp(delta_l A) h_{l-1} + delta_l B_l u_l
    y_l   = sum_n h_l C_l + D u_l ;  out = y * silu(z)   (z given)

Returns ``out`` (u's dtype), or ``(out, last_state)`` with
``return_last_state=True``. The forward keeps the state entering every chunk
of ``chunk`` positions; the backward recomputes the states inside a chunk
from it, so a fused forward+backward holds O(batch D N L / chunk) floats of
state, where the reference loop holds every step's.

Backends: ``"fused"`` (the CPU kernel; on a GPU the CUDA or Metal kernel,
for up to ``GPU_MAX_STATES[kind]`` states; beyond, an error that says why),
``"reference"`` (the pure-MLX loop, flashsnn.reference.selective_scan),
``"auto"`` (fused where a kernel applies, else the reference).

Example::

    import mlx.core as mx
    import flashsnn as fs
    b, L, D, N = 2, 50, 8, 4
    u, delta = mx.random.normal((b, L, D)), mx.random.normal((b, L, D))
    A = -mx.exp(mx.random.normal((D, N)))
    B, C = mx.random.normal((b, L, N)), mx.random.normal((b, L, N))
    y = fs.ops.selective_scan(u, delta, A, B, C, delta_softplus=True)
    assert y.shape == (b, L, D)
"""

from __future__ import annotations

import mlx.core as mx

from .. import _backend
from . import _checks
from ._scan_checks import check_args

OP = "selective_scan"
# Positions between saved states: the backward recomputes at most this many
# steps per chunk; the saves are N * 4 / chunk bytes per position and channel
# (16 states: 1 byte, a quarter of a float32 u).
CHUNK = 64


# The GPU kernels hold a channel's states in registers, built for up to this
# many (csrc/scan.h kScanMaxN, metal/scan.h); Mamba's d_state is 16.
GPU_MAX_STATES = {"cuda": 64, "metal": 128}


def _why_not_fused(N: int) -> str | None:
    why = _backend.fused_unavailable_reason()
    if why is not None:
        return why
    kind = _backend.device_kind()
    most = GPU_MAX_STATES.get(kind)
    if most is not None and N > most:
        return f"the {kind} kernels take up to {most} states per channel, A has N={N}"
    return None


def selective_scan(u, delta, A, B, C, D=None, z=None, *, delta_bias=None,
                   delta_softplus: bool = False, initial_state=None,
                   return_last_state: bool = False, chunk: int = CHUNK,
                   backend: str = "auto"):
    a = check_args(OP, u, delta, A, B, C, D, z, delta_bias, delta_softplus, initial_state)
    if not isinstance(return_last_state, bool):
        raise TypeError(f"[{OP}] return_last_state must be True or False, "
                        f"got {return_last_state!r}")
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"[{OP}] chunk must be a positive int, got {chunk!r}")
    if _checks.use_fused(OP, backend, _why_not_fused(a.A.shape[1])):
        opt = lambda v: [] if v is None else [v]  # noqa: E731
        y, h = _backend.ext.selective_scan(
            a.u, a.delta, a.A, a.B, a.C, D=opt(a.D), z=opt(a.z), delta_bias=opt(a.delta_bias),
            initial_state=opt(a.initial_state), softplus=a.delta_softplus, chunk=chunk)
    else:
        from ..reference.selective_scan import run
        y, h = run(a)
    return (y, h) if return_last_state else y

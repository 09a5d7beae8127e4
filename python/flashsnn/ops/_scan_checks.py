"""Argument checks of ``flashsnn.ops.selective_scan``, shared by the op and
its reference so that both refuse the same inputs with the same words.

Shapes (channels-last): u, delta, z ``[B, L, D]``; A ``[D, N]``; B and C
``[B, L, N]`` (per step) or ``[D, N]`` (time-invariant); D and delta_bias
``[D]``; initial_state ``[B, D, N]``. The sequence inputs (u, delta, z and
per-step B, C) share one dtype, float32, float16 or bfloat16, which the output
takes; A, D, delta_bias, time-invariant B/C and initial_state are float32
(as mamba_ssm keeps them); the state is float32 throughout.
"""

from __future__ import annotations

from dataclasses import dataclass

import mlx.core as mx

DTYPES = {mx.float32: "float32", mx.float16: "float16", mx.bfloat16: "bfloat16"}


@dataclass(frozen=True)
class ScanArgs:
    u: mx.array
    delta: mx.array
    A: mx.array
    B: mx.array
    C: mx.array
    D: mx.array | None
    z: mx.array | None
    delta_bias: mx.array | None
    delta_softplus: bool
    initial_state: mx.array | None
    B_varies: bool   # B is [B, L, N] (else [D, N])
    C_varies: bool

    @property
    def out_dtype(self):
        return self.u.dtype

    @property
    def dims(self) -> tuple[int, int, int, int]:
        """(batch, L, D, N)"""
        batch, L, D = self.u.shape
        return batch, L, D, self.A.shape[1]


def _array(op: str, name: str, v, optional: bool = False):
    if v is None:
        if optional:
            return None
        raise TypeError(f"[{op}] {name} is required")
    if not isinstance(v, mx.array):
        raise TypeError(f"[{op}] {name} must be an mlx.core.array, got {type(v).__name__}")
    if not mx.issubdtype(v.dtype, mx.floating):
        raise TypeError(f"[{op}] {name} must be floating (float32, float16 or bfloat16), "
                        f"got {v.dtype}")
    if v.dtype not in DTYPES:
        raise TypeError(f"[{op}] {name} has dtype {v.dtype}; valid: "
                        f"{', '.join(DTYPES.values())}")
    return v


def _shape(op: str, name: str, v, want: tuple[int, ...], what: str):
    if v is not None and tuple(v.shape) != want:
        raise ValueError(f"[{op}] {name} must have shape {what} = {want}, got {tuple(v.shape)}")


def check_args(op: str, u, delta, A, B, C, D=None, z=None, delta_bias=None,
               delta_softplus=False, initial_state=None) -> ScanArgs:
    u = _array(op, "u", u)
    if u.ndim != 3:
        raise ValueError(f"[{op}] u must be [batch, L, D] (channels-last), got shape "
                         f"{tuple(u.shape)}")
    batch, L, Dch = u.shape
    delta = _array(op, "delta", delta)
    A = _array(op, "A", A)
    B, C = _array(op, "B", B), _array(op, "C", C)
    D, z = _array(op, "D", D, True), _array(op, "z", z, True)
    delta_bias = _array(op, "delta_bias", delta_bias, True)
    initial_state = _array(op, "initial_state", initial_state, True)
    if not isinstance(delta_softplus, bool):
        raise TypeError(f"[{op}] delta_softplus must be True or False, got {delta_softplus!r}")
    if A.ndim != 2 or A.shape[0] != Dch:
        raise ValueError(f"[{op}] A must have shape [D, N] with D = {Dch} (u's last axis), "
                         f"got {tuple(A.shape)}")
    N = A.shape[1]
    _shape(op, "delta", delta, (batch, L, Dch), "u's [batch, L, D]")
    _shape(op, "z", z, (batch, L, Dch), "u's [batch, L, D]")
    _shape(op, "D", D, (Dch,), "[D]")
    _shape(op, "delta_bias", delta_bias, (Dch,), "[D]")
    _shape(op, "initial_state", initial_state, (batch, Dch, N), "[batch, D, N]")
    varies = {}
    for name, m in (("B", B), ("C", C)):
        if tuple(m.shape) == (batch, L, N):
            varies[name] = True
        elif tuple(m.shape) == (Dch, N):
            varies[name] = False
        else:
            raise ValueError(f"[{op}] {name} must be [batch, L, N] = {(batch, L, N)} (per step) "
                             f"or [D, N] = {(Dch, N)} (time-invariant), got {tuple(m.shape)}")
    seq = {"delta": delta, "z": z}
    seq.update({k: m for k, m in (("B", B), ("C", C)) if varies[k]})
    for name, v in seq.items():
        if v is not None and v.dtype != u.dtype:
            raise TypeError(f"[{op}] {name} must have u's dtype {u.dtype}, got {v.dtype} "
                            "(the sequence inputs share one dtype)")
    fixed = {"A": A, "D": D, "delta_bias": delta_bias, "initial_state": initial_state}
    fixed.update({k: m for k, m in (("B", B), ("C", C)) if not varies[k]})
    for name, v in fixed.items():
        if v is not None and v.dtype != mx.float32:
            raise TypeError(f"[{op}] {name} must be float32 (parameters and the state stay "
                            f"in float32), got {v.dtype}")
    return ScanArgs(u, delta, A, B, C, D, z, delta_bias, delta_softplus, initial_state,
                    varies["B"], varies["C"])

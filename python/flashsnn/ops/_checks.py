"""Argument checks shared by every op and its reference entry point.

Errors name the op (``[<op>] ...``) and, for a choice, list the valid ones.
"""

from __future__ import annotations

import math
import warnings

import mlx.core as mx

from .. import _backend

FLOAT_DTYPES = (mx.float32, mx.float16, mx.bfloat16)
BACKENDS = ("auto", "fused", "reference")


def choice(op: str, name: str, value, options):
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"[{op}] unknown {name} {value!r}; valid: "
                         + ", ".join(repr(o) for o in options))
    return value


def input_sequence(op: str, x) -> tuple:
    """Check x is ``[T, *S]`` floating; return S."""
    if not isinstance(x, mx.array):
        raise TypeError(f"[{op}] x must be an mlx.core.array; got {type(x).__name__}")
    shape = x.shape  # a tuple
    if not shape:
        raise ValueError(f"[{op}] x must be [T, *S] with a leading time axis; got a scalar")
    if x.dtype not in FLOAT_DTYPES:
        raise ValueError(f"[{op}] x must be float32, float16 or bfloat16; got {x.dtype}")
    return shape[1:]


def flag(op: str, name: str, value) -> bool:
    """A boolean option: True or False (a NumPy bool too), nothing else
    (``detach_reset="yes"`` or ``reset_delay=None`` is an error, not truthy)."""
    if isinstance(value, bool) or (type(value).__module__ == "numpy"
                                   and type(value).__name__ in ("bool", "bool_")):
        return bool(value)
    raise TypeError(f"[{op}] {name} must be True or False; got {value!r}")


def as_array(op: str, name: str, v, what: str):
    """``v`` as an mlx.core.array when it is a NumPy array or scalar or a
    (nested) list or tuple of numbers; other values are returned as they
    are. NumPy's float64 becomes float32."""
    if isinstance(v, mx.array):
        return v
    if isinstance(v, (list, tuple)) or hasattr(v, "__array__"):
        try:
            a = mx.array(v)
        except (TypeError, ValueError) as e:
            raise TypeError(f"[{op}] {name} must be {what}; got {type(v).__name__} ({e})") \
                from None
        return a.astype(mx.float32) if a.dtype == mx.float64 else a
    return v


def broadcasts_to(shape: tuple, S: tuple) -> bool:
    """Whether an array of ``shape`` broadcasts to exactly ``S``."""
    try:
        return tuple(mx.broadcast_shapes(tuple(shape), S)) == S
    except ValueError:
        return False


class StateShapeError(ValueError):
    """A state that does not broadcast to the neuron shape S. Its message is
    the op's; ``name``, ``shape`` and ``S`` let a caller (a ``flashsnn.nn``
    layer) say it in its own words without a copy of the rule. Built from a
    message alone (as ``type(e)(msg)`` retags errors) they are None."""

    def __init__(self, msg: str, name: str | None = None, shape: tuple | None = None,
                 S: tuple | None = None):
        super().__init__(msg)
        self.name, self.shape, self.S = name, shape, S


def state(op: str, name: str, s, S: tuple):
    """A state argument (``mem``, ``syn``...): None, a float, or a float
    array of shape S or broadcastable to it (a NumPy array or a list too),
    returned as float32 [*S] (state arithmetic is float32 on every path; a
    broadcast state's gradient sums back to its own shape)."""
    if s is None:
        return None
    if isinstance(s, (int, float)) and not isinstance(s, bool):
        s = mx.array(float(s), dtype=mx.float32)
    if not isinstance(s, mx.array):
        s = as_array(op, name, s, "an mlx.core.array or None")
    if not isinstance(s, mx.array):
        raise TypeError(f"[{op}] {name} must be an mlx.core.array or None; got {type(s).__name__}")
    if s.dtype not in FLOAT_DTYPES:
        raise ValueError(f"[{op}] {name} must be float32, float16 or bfloat16; got {s.dtype}")
    shape = tuple(s.shape)
    if shape != S:
        if not broadcasts_to(shape, S):
            raise StateShapeError(f"[{op}] {name} must have shape {S} (x without its time "
                                  f"axis) or one that broadcasts to it; got {shape}",
                                  name, shape, S)
        s = mx.broadcast_to(s, S)
    return s.astype(mx.float32)


# Scalar parameters as float32 arrays, one per value, made once: mx.array(0.9)
# cost 0.34 us a call and a dict hit 0.09 us (2-core Xeon VM, MLX 0.32.4), and
# beta and threshold are floats in most calls. The arrays are never handed to
# users, and the cache's own reference keeps MLX from donating their buffers.
# Keys are the numbers themselves (1 and 1.0 share the array float(1));
# zeros are keyed with their sign (0.0 == -0.0) and NaN is never cached.
_SCALARS: dict = {}
_SCALARS_MAX = 256  # a float schedule that changes every call refills it


def scalar(v) -> mx.array:
    """``mx.array(float(v), dtype=float32)``, shared between calls."""
    key = v if v else (v, math.copysign(1.0, v))
    a = _SCALARS.get(key)
    if a is None:
        a = mx.array(float(v), dtype=mx.float32)
        if v == v:
            if len(_SCALARS) >= _SCALARS_MAX:
                _SCALARS.clear()
            _SCALARS[key] = a
    return a


def param(op: str, name: str, p, S: tuple) -> mx.array:
    """A neuron parameter: a real number, or an array broadcastable to S.
    Returned as float32 (differentiable when it was an array)."""
    if type(p) is float:  # the common case, first: 0.58 -> 0.16 us with scalar()
        return scalar(p)
    if not isinstance(p, mx.array):  # (the message is formatted only then: 0.4 us)
        p = as_array(op, name, p, f"a float or an mlx.core.array broadcastable to {S}")
    if isinstance(p, bool) or not isinstance(p, (int, float, mx.array)):
        raise TypeError(f"[{op}] {name} must be a float or an mlx.core.array broadcastable "
                        f"to {S}; got {type(p).__name__}")
    if not isinstance(p, mx.array):
        return scalar(p)
    if not (mx.issubdtype(p.dtype, mx.floating) or mx.issubdtype(p.dtype, mx.integer)) \
            or p.dtype == mx.bool_:
        raise ValueError(f"[{op}] {name} must be a real-valued array; got {p.dtype}")
    if not broadcasts_to(tuple(p.shape), S):
        raise ValueError(f"[{op}] {name} of shape {tuple(p.shape)} does not broadcast to the "
                         f"neuron shape {S} (x without its time axis)")
    return p.astype(mx.float32)


def states(op: str, S: tuple, **named) -> dict:
    """:func:`state` of each ``name=value``, checked in the order given."""
    return {name: state(op, name, s, S) for name, s in named.items()}


def params(op: str, S: tuple, **named) -> dict:
    """:func:`param` of each ``name=value``, checked in the order given."""
    return {name: param(op, name, p, S) for name, p in named.items()}


def suffix_param(p: mx.array, S: tuple) -> mx.array:
    """The form the kernels take: a parameter whose shape (leading 1s aside)
    ends S is used as is, element i of S reading p[i % p.size]; any other
    broadcast shape is materialized to S."""
    if p.ndim == 0:  # a float beta or threshold: 0.25 -> 0.12 us
        return p
    shape = list(p.shape)
    while shape and shape[0] == 1:
        shape.pop(0)
    if len(shape) <= len(S) and tuple(shape) == tuple(S[len(S) - len(shape):]):
        return p
    return mx.broadcast_to(p, S)


class ReferenceFallbackWarning(UserWarning):
    """``backend="auto"`` ran an op on its pure-MLX reference where the user
    may have expected the fused kernel (once per op and reason)."""


# op -> (path, reason) of its last dispatch (flashsnn.ops.last_path), and the
# (op, reason) pairs already warned about.
_LAST: dict = {}
_WARNED: set = set()


def last_path(op: str) -> dict:
    """Which path the last call of ``op`` took: ``{"path": "fused" or
    "reference", "why": None or the reason no kernel ran}``. Under
    ``mx.compile`` that is the call that traced the graph."""
    if op not in _LAST:
        raise ValueError(f"[last_path] {op!r} has not run in this process; ran: "
                         + (", ".join(sorted(_LAST)) or "none"))
    path, why = _LAST[op]
    return {"path": path, "why": why}


def use_fused(op: str, backend: str, why_not: str | None) -> bool:
    """Resolve ``backend`` given the reason a kernel cannot run (None if it can)."""
    choice(op, "backend", backend, BACKENDS)
    if backend == "reference":
        _LAST[op] = ("reference", "backend='reference'")
        return False
    if why_not is None:
        _LAST[op] = ("fused", None)
        return True
    if backend == "fused":
        raise RuntimeError(f"[{op}] backend='fused' but no fused kernel applies: {why_not}")
    if why_not == _backend.build_mismatch():
        # A wrong install (no kernels for the GPU MLX runs on): an error, not
        # a silent fallback to the reference (flashsnn/_backend.py).
        raise RuntimeError(f"[{op}] {why_not} (backend='reference' runs the pure-MLX path)")
    _LAST[op] = ("reference", why_not)
    # A missing extension was said once at import (flashsnn/__init__.py);
    # anything else is said once per op and reason: a reference Leaky at
    # T = 1e5, N = 1 took 62 s and 4 GB where the kernel took 0.02 s.
    if why_not != _backend.fused_unavailable_reason() and (op, why_not) not in _WARNED:
        _WARNED.add((op, why_not))
        warnings.warn(f"[{op}] backend='auto' runs the pure-MLX reference, not the fused "
                      f"kernel: {why_not}. Pass backend='reference' to choose it without "
                      "this warning; flashsnn.ops.last_path(op) tells which path ran",
                      ReferenceFallbackWarning, stacklevel=4)
    return False


def kernel_reason(spike_grad) -> str | None:
    """Why this surrogate rules out the kernels, or the device/build reason."""
    kid = getattr(spike_grad, "kernel_id", None)
    if kid is None:
        return ("spike_grad is not one of the kernels' surrogates (a user callable or a "
                "stochastic one), so it runs on the reference path")
    return _backend.fused_unavailable_reason()

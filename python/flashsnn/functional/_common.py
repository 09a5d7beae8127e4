"""Shared pieces of the losses and accuracies: argument checks, log-softmax
and NLL, reductions, snnTorch's population code and target tensors."""

from __future__ import annotations

import numpy as np

import mlx.core as mx

from ..ops._checks import choice

REDUCTIONS = ("mean", "sum", "none")
OVER_TIME = ("last", "max", "mean")


def as_array(op: str, a, name: str) -> mx.array:
    if isinstance(a, mx.array):
        return a
    if isinstance(a, (np.ndarray, list, tuple)):
        return mx.array(np.asarray(a))
    raise TypeError(f"[{op}] {name} must be an mlx.core.array; got {type(a).__name__}")


def record(op: str, a, name: str = "spk_out", ndim: int = 3) -> mx.array:
    """A time-first recording ``[T, B, C]`` (``ndim=3``) or ``[B, C]``."""
    a = as_array(op, a, name)
    if a.ndim != ndim:
        want = "[T, B, C] (time first)" if ndim == 3 else "[B, C]"
        raise ValueError(f"[{op}] {name} must be {want}; got shape {tuple(a.shape)}")
    return a


def labels(op: str, targets, B: int, C: int | None = None) -> mx.array:
    """Integer class labels ``[B]``, each in ``[0, C)`` when ``C`` is given
    (:func:`label_range`)."""
    y = as_array(op, targets, "targets")
    if y.ndim != 1 or y.shape[0] != B:
        raise ValueError(f"[{op}] targets must be class indices [B] with B = {B}; "
                         f"got shape {tuple(y.shape)}")
    if not mx.issubdtype(y.dtype, mx.integer):
        raise ValueError(f"[{op}] targets must be integer class indices; got {y.dtype}")
    if C:  # population_code without num_classes: its own error follows
        label_range(op, y, C)
    return y


def label_range(op: str, y: mx.array, C: int) -> None:
    """Every label in ``[0, C)``: a label out of range would pick another
    row's logit (or garbage) and return a plausible loss. Checked on the
    labels' values (a [B] reduction, evaluated); under mx.compile or mx.vmap,
    where no value can be read, the check is skipped."""
    if y.size == 0:
        return
    try:
        lo, hi = mx.stack([mx.min(y), mx.max(y)]).tolist()  # one evaluation, not two
    except ValueError:  # "Attempting to eval an array during ... compile or vmap"
        return
    if lo < 0 or hi >= C:
        bad = lo if lo < 0 else hi
        raise ValueError(f"[{op}] targets must be class indices in [0, {C}) "
                         f"({C} classes); got {bad}")


def log_softmax(z: mx.array) -> mx.array:
    z = z.astype(mx.float32)
    return z - mx.logsumexp(z, axis=-1, keepdims=True)


def nll(logp: mx.array, y: mx.array) -> mx.array:
    """``-logp[b, y[b]]`` per sample ``[B]``."""
    return -mx.take_along_axis(logp, y.astype(mx.int32)[:, None], axis=-1)[:, 0]


def reduce(op: str, per: mx.array, reduction: str) -> mx.array:
    choice(op, "reduction", reduction, REDUCTIONS)
    if reduction == "mean":
        return mx.mean(per)
    if reduction == "sum":
        return mx.sum(per)
    return per


def over_time(op: str, mem: mx.array, how: str) -> mx.array:
    """``[B, C]`` as is; ``[T, B, C]`` reduced over T by ``how``."""
    choice(op, "over_time", how, OVER_TIME)
    if mem.ndim == 2:
        return mem
    if mem.ndim != 3:
        raise ValueError(f"[{op}] mem must be [B, C] or [T, B, C]; got shape {tuple(mem.shape)}")
    if how == "last":
        return mem[-1]
    return mx.max(mem, axis=0) if how == "max" else mx.mean(mem, axis=0)


def population_counts(op: str, spk: mx.array, num_classes) -> mx.array:
    """snnTorch's population code: spike counts ``[B, num_classes]``, class
    k owning outputs ``[k*N/K, (k+1)*N/K)``."""
    N = spk.shape[-1]
    if not num_classes:
        raise ValueError(f"[{op}] num_classes must be given with population_code=True")
    if N % num_classes:
        raise ValueError(f"[{op}] the number of outputs ({N}) must be a multiple of "
                         f"num_classes ({num_classes})")
    c = mx.sum(spk, axis=0)
    return mx.sum(c.reshape(c.shape[0], num_classes, N // num_classes), axis=-1)


def one_hot(y: mx.array, C: int, on: float = 1.0, off: float = 0.0) -> mx.array:
    """``[B, C]``: ``on`` at each label, ``off`` elsewhere. (snnTorch 1.0's
    ``targets_convert`` turns a negative ``off`` into 0 when ``on > off``;
    here ``off`` is used as given.)"""
    hit = y.astype(mx.int32)[..., None] == mx.arange(C)
    return mx.where(hit, on, off).astype(mx.float32)


def class_weight(op: str, weight, C: int) -> mx.array | None:
    if weight is None:
        return None
    w = as_array(op, weight, "weight").astype(mx.float32)
    if w.shape != (C,):
        raise ValueError(f"[{op}] weight must have one entry per class ({C},); "
                         f"got shape {tuple(w.shape)}")
    return w

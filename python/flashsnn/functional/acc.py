"""Accuracy of spiking outputs: rate coded (spike counts), membrane, and
first spike time. Each returns a Python float in [0, 1]; ties go to the
lowest class index (MLX's ``argmax``, like torch's ``max`` on the CPU)."""

from __future__ import annotations

import mlx.core as mx

from . import _common as c
from .loss import first_spike_time


def _accuracy(pred: mx.array, y: mx.array) -> float:
    return mx.mean((pred == y.astype(pred.dtype)).astype(mx.float32)).item()


def accuracy_rate(spk_out, targets, population_code=False, num_classes=False) -> float:
    """snnTorch's ``accuracy_rate``: the class with the most spikes.

    Args:
        spk_out: ``[T, B, C]``; targets: ``[B]``.
        population_code, num_classes: count spikes per class over groups of
            ``C / num_classes`` outputs.

    >>> import mlx.core as mx, flashsnn as fs
    >>> spk = mx.array([[[0.0, 1.0], [1.0, 0.0]], [[0.0, 1.0], [0.0, 1.0]]])   # [T=2, B=2, C=2]
    >>> fs.functional.accuracy_rate(spk, mx.array([1, 0]))     # counts [0, 2] and [1, 1]: tie -> 0
    1.0
    """
    op = "accuracy_rate"
    spk = c.record(op, spk_out)
    y = c.labels(op, targets, spk.shape[1], num_classes if population_code else spk.shape[2])
    counts = c.population_counts(op, spk, num_classes) if population_code \
        else mx.sum(spk, axis=0)
    return _accuracy(mx.argmax(counts, axis=-1), y)


def accuracy_membrane(mem, targets, *, over_time: str = "last") -> float:
    """The class with the largest membrane: ``mem`` ``[B, C]``, or ``[T, B, C]``
    reduced by ``over_time`` (``"last"``, ``"max"`` or ``"mean"``).

    >>> import mlx.core as mx, flashsnn as fs
    >>> fs.functional.accuracy_membrane(mx.array([[0.2, 0.9], [0.5, 0.1]]), mx.array([1, 1]))
    0.5
    """
    op = "accuracy_membrane"
    logits = c.over_time(op, c.as_array(op, mem, "mem"), over_time)
    y = c.labels(op, targets, logits.shape[0], logits.shape[-1])
    return _accuracy(mx.argmax(logits, axis=-1), y)


def accuracy_temporal(spk_out, targets) -> float:
    """snnTorch's ``accuracy_temporal``: the class that fires first (a
    neuron that never fires counts as firing at T - 1)."""
    op = "accuracy_temporal"
    spk = c.record(op, spk_out)
    y = c.labels(op, targets, spk.shape[1], spk.shape[2])
    return _accuracy(mx.argmin(first_spike_time(spk), axis=-1), y)

"""Losses, accuracies and the BPTT helper for spiking networks.

Plain functions (the mlx-snn paper's set) — :func:`spike_count_ce`,
:func:`membrane_ce`, :func:`spike_count_mse` — and snnTorch's
``snntorch.functional`` loss objects with their names and arguments —
:class:`ce_rate_loss`, :class:`ce_count_loss`, :class:`ce_max_membrane_loss`,
:class:`mse_count_loss`, :class:`mse_membrane_loss`,
:class:`mse_temporal_loss`, :class:`ce_temporal_loss`. Recordings are time
first ``[T, B, C]``; targets are class indices ``[B]``.

>>> import mlx.core as mx, flashsnn as fs
>>> import flashsnn.functional as SF
>>> spk = (mx.random.uniform(shape=(25, 8, 10), key=mx.random.key(0)) > 0.7).astype(mx.float32)
>>> y = mx.arange(8) % 10
>>> loss = SF.ce_rate_loss()(spk, y)                  # as snntorch.functional
>>> acc = SF.accuracy_rate(spk, y)                    # a float in [0, 1]
"""

from .acc import accuracy_membrane, accuracy_rate, accuracy_temporal
from .bptt import bptt_forward
from .loss import (ce_count_loss, ce_max_membrane_loss, ce_rate_loss, ce_temporal_loss,
                   first_spike_time, membrane_ce, mse_count_loss, mse_membrane_loss,
                   mse_temporal_loss, spike_count_ce, spike_count_mse)

__all__ = [
    "spike_count_ce", "membrane_ce", "spike_count_mse",
    "ce_rate_loss", "ce_count_loss", "ce_max_membrane_loss", "mse_count_loss",
    "mse_membrane_loss", "mse_temporal_loss", "ce_temporal_loss", "first_spike_time",
    "accuracy_rate", "accuracy_membrane", "accuracy_temporal", "bptt_forward",
]

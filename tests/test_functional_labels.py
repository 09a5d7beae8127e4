"""Class labels out of range are a tagged error in every loss and accuracy
of flashsnn.functional that takes them (issue 19, item 3: ce_rate_loss with a
target of 30 among 10 classes returned a loss)."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest

import flashsnn.functional as SF

T, B, C = 4, 3, 10
SPK = (mx.random.uniform(shape=(T, B, C), key=mx.random.key(0)) > 0.5).astype(mx.float32)

CALLS = {
    "ce_rate_loss": lambda y: SF.ce_rate_loss()(SPK, y),
    "ce_count_loss": lambda y: SF.ce_count_loss()(SPK, y),
    "ce_count_loss-population": lambda y: SF.ce_count_loss(population_code=True,
                                                           num_classes=5)(SPK, y),
    "ce_max_membrane_loss": lambda y: SF.ce_max_membrane_loss()(SPK, y),
    "mse_count_loss": lambda y: SF.mse_count_loss()(SPK, y),
    "mse_count_loss-population": lambda y: SF.mse_count_loss(population_code=True,
                                                             num_classes=5)(SPK, y),
    "mse_membrane_loss": lambda y: SF.mse_membrane_loss()(SPK, y),
    "mse_membrane_loss-time_var": lambda y: SF.mse_membrane_loss(time_var_targets=True)(
        SPK, mx.broadcast_to(y, (T, B))),
    "mse_temporal_loss": lambda y: SF.mse_temporal_loss()(SPK, y),
    "ce_temporal_loss": lambda y: SF.ce_temporal_loss()(SPK, y),
    "spike_count_ce": lambda y: SF.spike_count_ce(SPK, y),
    "spike_count_mse": lambda y: SF.spike_count_mse(SPK, y),
    "membrane_ce": lambda y: SF.membrane_ce(SPK, y),
    "accuracy_rate": lambda y: SF.accuracy_rate(SPK, y),
    "accuracy_rate-population": lambda y: SF.accuracy_rate(SPK, y, population_code=True,
                                                           num_classes=5),
    "accuracy_membrane": lambda y: SF.accuracy_membrane(SPK, y),
    "accuracy_temporal": lambda y: SF.accuracy_temporal(SPK, y),
}


def _classes(name: str) -> int:
    return 5 if name.endswith("population") else C


@pytest.mark.parametrize("name", list(CALLS))
def test_label_out_of_range(name):
    tag = name.split("-")[0]
    K = _classes(name)
    for bad in (K, 30, -1):
        y = mx.array([0, bad, 1], dtype=mx.int32)
        with pytest.raises(ValueError, match=rf"\[{tag}\] targets must be class indices in "
                                             rf"\[0, {K}\) \({K} classes\); got {bad}"):
            CALLS[name](y)


@pytest.mark.parametrize("name", list(CALLS))
def test_labels_in_range_still_work(name):
    y = mx.array([0, _classes(name) - 1, 1], dtype=mx.int32)
    out = CALLS[name](y)
    assert np.isfinite(float(out.item() if isinstance(out, mx.array) else out))
    CALLS[name](np.array([0, 1, 2]))  # NumPy labels, checked the same way


def test_numpy_labels_out_of_range():
    with pytest.raises(ValueError, match=r"\[ce_rate_loss\] targets must be class indices"):
        SF.ce_rate_loss()(SPK, np.array([0, 30, 1]))


def test_compiled_loss_still_compiles():
    """Under mx.compile no value can be read: the check is skipped, the loss
    is the uncompiled one."""
    y = mx.array([0, 9, 1], dtype=mx.int32)
    loss = SF.ce_rate_loss()
    got = mx.compile(lambda s, t: loss(s, t))(SPK, y)
    assert got.item() == pytest.approx(loss(SPK, y).item(), rel=1e-6)

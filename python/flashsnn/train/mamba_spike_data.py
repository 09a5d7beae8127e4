"""What ``flashsnn train --model mamba-spike`` trains on: scikit-learn's
8x8 digits coded as ON/OFF spike frames (no download), or an event dataset
from a local folder (``flashsnn.data.load_events``), both as frames
``[T, B, H, W, P]`` (time first, channels last; the audio sets' frames are
one row of channels, ``(1, channels, 1)``).

Digits follow the public code's "sequential MNIST" coding (T Bernoulli
steps, ON with probability ``0.1 * pixel``, OFF with ``0.05 * (1 - pixel)``)
scaled by ``gain`` (probabilities capped at 1): each training batch is coded
afresh from a key split off the run's seed, the test set once with its own
key, so every epoch is tested on the same spikes.
"""

from __future__ import annotations

import numpy as np

import mlx.core as mx

from .. import data as _data

OP = "train mamba-spike"
# The recipes' frame sets, and the audio sets, whose one-row frames the
# front end pools along the channels only (flashsnn.models.mamba_spike).
FRAME_SETS = ("nmnist", "dvs_gesture", "cifar10_dvs")
AUDIO_SETS = ("ntidigits", "shd")
EVENT_SETS = FRAME_SETS + AUDIO_SETS


def on_off_frames(x: mx.array, steps: int, key: mx.array, *, gain: float = 1.0,
                  shape: tuple = (8, 8)) -> mx.array:
    """Pixels ``x`` ``[B, H*W]`` in [0, 1] -> spikes ``[T, B, H, W, 2]``: the
    ON channel fires with probability ``min(1, gain * 0.1 * pixel)``, the OFF
    channel with ``min(1, gain * 0.05 * (1 - pixel))``.

    >>> import mlx.core as mx
    >>> s = on_off_frames(mx.ones((3, 64)), 1000, mx.random.key(0), gain=5.0)
    >>> s.shape, round(float(s[..., 0].mean()), 1), float(s[..., 1].mean())
    ((1000, 3, 8, 8, 2), 0.5, 0.0)
    """
    on = mx.minimum(gain * 0.1 * x, 1.0)
    off = mx.minimum(gain * 0.05 * (1.0 - x), 1.0)
    p = mx.stack([on, off], axis=-1).reshape(x.shape[0], *shape, 2)
    u = mx.random.uniform(shape=(steps, *p.shape), key=key)
    return (u < p).astype(mx.float32)


class DigitsFrames:
    """The digits as ON/OFF frames (module docstring)."""

    def __init__(self, steps: int, gain: float, seed: int, limit_train=None, limit_test=None):
        self.ds = _data.load("digits").limit(limit_train, limit_test)
        self.steps, self.gain = steps, gain
        self.in_shape, self.num_classes = (8, 8, 2), self.ds.num_classes
        self.n_train, self.n_test = len(self.ds.y_train), len(self.ds.y_test)
        self.key, test_key = mx.random.split(mx.random.key(seed))
        self._test = on_off_frames(mx.array(self.ds.x_test), steps, test_key, gain=gain)
        self.describe = {"name": "digits", "train": self.n_train, "test": self.n_test,
                         "classes": self.num_classes, "frame": list(self.in_shape),
                         "coding": f"ON min(1, {gain:g} * 0.1 * pixel), "
                                   f"OFF min(1, {gain:g} * 0.05 * (1 - pixel)), T {steps}"}

    def train_batches(self, batch_size: int, rng: np.random.Generator):
        for xb, yb in _data.batches(self.ds.x_train, self.ds.y_train, batch_size, rng=rng):
            self.key, sub = mx.random.split(self.key)
            yield on_off_frames(mx.array(xb), self.steps, sub, gain=self.gain), mx.array(yb)

    def test_batches(self, batch_size: int):
        for i in range(0, self.n_test, batch_size):
            yield self._test[:, i:i + batch_size], self.ds.y_test[i:i + batch_size]

    def sample(self) -> np.ndarray:
        """One test sample's frames ``[T, H, W, 2]`` for the plot."""
        return np.array(self._test[:, 0])


class EventFrames:
    """An event dataset binned into frames on the fly."""

    def __init__(self, name: str, path: str, steps: int, bin_us, denoise_us, seed: int,
                 limit_train=None, limit_test=None):
        if name not in EVENT_SETS:
            raise ValueError(f"[{OP}] unknown event dataset {name!r}; valid: "
                             f"{', '.join(EVENT_SETS)}")
        ds = _data.load_events(name, path).limit(limit_train, limit_test,
                                                 rng=np.random.default_rng(seed))
        self.ds, self.steps, self.bin_us, self.denoise_us = ds, steps, bin_us, denoise_us
        H, W, P = ds.sensor_size
        self.in_shape, self.num_classes = (H, W, P), ds.num_classes
        self.n_train, self.n_test = len(ds.train), len(ds.test)
        if self.n_train == 0 or self.n_test == 0:
            raise ValueError(f"[{OP}] {path}: empty split ({self.n_train} train, "
                             f"{self.n_test} test samples)")
        self.describe = {"name": name, "path": path, "train": self.n_train, "test": self.n_test,
                         "classes": self.num_classes, "frame": [H, W, P],
                         "coding": f"event counts in {steps} bins of "
                                   + (f"{bin_us} us" if bin_us else "equal length")
                                   + (f", denoised ({denoise_us} us)" if denoise_us else "")}

    def _frames(self, split, batch_size, rng):
        for x, y in self.ds.batches(split, batch_size, self.steps, bin_us=self.bin_us, rng=rng,
                                    denoise_us=self.denoise_us):
            yield mx.array(x), y

    def train_batches(self, batch_size: int, rng: np.random.Generator):
        for x, y in self._frames("train", batch_size, rng):
            yield x, mx.array(y)

    def test_batches(self, batch_size: int):
        yield from self._frames("test", batch_size, None)

    def sample(self) -> np.ndarray:
        x, _ = next(self.test_batches(1))
        return np.array(x[:, 0])

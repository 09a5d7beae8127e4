"""Spike encoders. Every output is time-first: ``[T, B, ...]``.

- :func:`rate` / :func:`rate_conv`: Bernoulli ("Poisson") rate coding,
  reproducible with an MLX key (snnTorch's ``spikegen.rate``).
- :func:`latency` / :func:`latency_code` / :func:`latency_interpolate`:
  time-to-first-spike, log or linear, normalize, clip (snnTorch's
  ``spikegen.latency``).
- :func:`delta`: delta modulation with threshold and off-spikes (snnTorch's
  ``spikegen.delta``).
- :func:`eeg` / :class:`EEGEncoder`: multi-channel signals ``[B, C, L]`` by
  rate, delta or threshold crossing.
- :func:`direct`: the same analog input at every step.

>>> import mlx.core as mx, flashsnn as fs
>>> img = mx.random.uniform(shape=(32, 64), key=mx.random.key(1))    # [B, 64]
>>> fs.encoding.rate(img, num_steps=25, key=mx.random.key(0)).shape
(25, 32, 64)
"""

from .delta import delta
from .eeg import METHODS as EEG_METHODS, EEGEncoder, eeg
from .latency import latency, latency_code, latency_interpolate
from .rate import direct, rate, rate_conv

__all__ = ["rate", "rate_conv", "direct", "latency", "latency_code", "latency_interpolate",
           "delta", "eeg", "EEGEncoder", "EEG_METHODS"]

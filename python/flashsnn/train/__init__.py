"""Training the spiking MLP: :func:`train` (the loop behind ``flashsnn
train``), :class:`TrainConfig`, :func:`make_train_step` (one compiled
optimizer step), and :func:`time_split` (the LIF and Linear parts of a step,
each timed alone). The command itself is :mod:`flashsnn.train.cli`."""

from .loop import TrainConfig, train
from .profile import time_split
from .step import make_train_step

__all__ = ["TrainConfig", "train", "make_train_step", "time_split"]

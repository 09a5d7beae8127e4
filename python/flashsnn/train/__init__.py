"""Training the spiking MLP: :func:`train` (the loop behind ``flashsnn
train``), :class:`TrainConfig`, and :func:`time_split` (LIF vs Linear time
of one step). The command itself is :mod:`flashsnn.train.cli`."""

from .loop import TrainConfig, train
from .profile import time_split

__all__ = ["TrainConfig", "train", "time_split"]

"""Data for ``flashsnn train``: scikit-learn's bundled 8x8 digits (real data,
no download) with a fixed seeded split, MNIST from IDX files the user
already has, and the event datasets of the Mamba-Spike recipes (N-MNIST,
DVS128 Gesture, CIFAR10-DVS, SHD, N-TIDIGITS) read from local files, binned
into frames (``docs/events.md``).

>>> import flashsnn as fs
>>> d = fs.data.load("digits")
>>> d
Dataset('digits', train=1437, test=360, features=64, classes=10)
"""

from .datasets import (MNIST_FILES, NAMES, Dataset, batches, load, load_digits,
                       load_mnist)
from .events import (CIFAR10_CLASSES, EVENT_DTYPE, NTIDIGITS_CLASSES, cut_gesture,
                     make_events, ntidigits_label, ntidigits_names, read_aedat2_cifar10dvs,
                     read_aedat31, read_gesture_labels, read_nmnist, read_ntidigits, read_shd,
                     read_trial_list)
from .frames import NAMES as EVENT_NAMES
from .frames import EventDataset, denoise, load_events, to_frames
from .idx import read_idx

__all__ = ["Dataset", "load", "load_digits", "load_mnist", "read_idx", "batches",
           "NAMES", "MNIST_FILES",
           "EVENT_DTYPE", "EVENT_NAMES", "CIFAR10_CLASSES", "NTIDIGITS_CLASSES", "EventDataset",
           "load_events", "to_frames", "denoise", "make_events", "read_nmnist", "read_aedat31",
           "read_gesture_labels", "cut_gesture", "read_trial_list", "read_aedat2_cifar10dvs",
           "read_shd", "read_ntidigits", "ntidigits_names", "ntidigits_label"]

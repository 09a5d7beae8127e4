"""flashsnn: fused spiking-neuron kernels for MLX.

All T time steps of a layer run in one kernel launch, forward and backward,
with a real surrogate-gradient VJP; a pure-MLX reference stands beside every
fused op and takes over wherever no kernel applies.

>>> import mlx.core as mx, flashsnn as fs
>>> x = mx.random.normal((25, 8, 100))            # [T, B, N]
>>> spk, mem = fs.ops.leaky(x, beta=0.9)          # spk [25, 8, 100], mem [8, 100]
"""

from . import _blas

# Before libmlx is loaded: on Linux it binds its BLAS and LAPACK calls when
# it loads, to OpenBLAS if that is in the global scope by then (docs/blas.md).
_blas.load()

import mlx.core  # noqa: E402,F401  (loads libmlx before _ext needs it)

from . import _backend, nn, ops, reference, surrogate
from . import data, encoding, functional, memory, models, train
from ._backend import fused_unavailable_reason, gpu_backend
from ._blas import blas_info

__version__ = "0.1.0"

__all__ = ["nn", "ops", "reference", "surrogate", "encoding", "functional", "data", "memory",
           "models", "train", "gpu_backend", "fused_unavailable_reason", "blas_info",
           "__version__"]

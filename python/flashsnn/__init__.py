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


def _no_mlx_backend(error: ImportError) -> ImportError:
    """What to install when ``mlx.core`` cannot load: on Linux the plain
    ``mlx`` wheel has no backend (``libmlx.so`` comes with ``mlx-cpu`` or
    ``mlx-cuda-13``), so ``pip install .`` without an extra ends here."""
    import sys
    if sys.platform == "darwin":
        fix = ('MLX\'s Metal build comes with `pip install mlx` on Apple silicon '
               '(docs/metal.md)')
    else:
        fix = ('install a backend with flashsnn: `pip install "flashsnn[cpu]"` for the CPU '
               '(from a source tree: `pip install ".[cpu]"`) or `pip install '
               '"flashsnn[cuda13]"` for an NVIDIA GPU (docs/cuda.md); plain `mlx` has no '
               'backend on Linux')
    return ImportError(f"flashsnn: MLX cannot load (import mlx.core failed: {error}); {fix}")


try:
    import mlx.core  # noqa: E402,F401  (loads libmlx before _ext needs it)
except ImportError as e:
    raise _no_mlx_backend(e) from e

from . import _backend, nn, ops, reference, surrogate
from . import data, encoding, functional, memory, models, train
from ._backend import fused_unavailable_reason, gpu_backend
from ._blas import blas_info

__version__ = "0.1.0"

__all__ = ["nn", "ops", "reference", "surrogate", "encoding", "functional", "data", "memory",
           "models", "train", "gpu_backend", "fused_unavailable_reason", "blas_info",
           "__version__"]

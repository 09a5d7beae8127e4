"""Test-wide settings.

FLASHSNN_TEST_DEVICE=gpu runs every test with the GPU as MLX's default device
(the fused path then uses the CUDA or Metal kernels); default: the CPU.
"""

import os

import mlx.core as mx
import pytest

_device = os.environ.get("FLASHSNN_TEST_DEVICE", "cpu")
if _device not in ("cpu", "gpu"):
    raise pytest.UsageError(f"FLASHSNN_TEST_DEVICE must be 'cpu' or 'gpu'; got {_device!r}")
if _device == "gpu":
    mx.set_default_device(mx.gpu)


def pytest_report_header(config):
    import flashsnn
    reason = flashsnn.fused_unavailable_reason()
    return (f"flashsnn: default device {mx.default_device()}, GPU backend compiled in: "
            f"{flashsnn.gpu_backend()}, fused kernels: "
            f"{'available' if reason is None else 'UNAVAILABLE: ' + reason}")

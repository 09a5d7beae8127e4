"""Test-wide settings.

FLASHSNN_TEST_DEVICE=gpu runs every test with the GPU as MLX's default device
(the fused path then uses the CUDA or Metal kernels); default: the CPU.

FLASHSNN_REQUIRE_KERNELS=1 makes the run fail before any test when the fused
kernels cannot run on that device: flashsnn._ext missing or failing to load,
built against another MLX version, or (with FLASHSNN_TEST_DEVICE=gpu) built
without kernels for the GPU MLX runs on. Without it those tests skip, so a
broken build would pass. .ci/run sets it (docs/testing.md).
"""

import os

import flashsnn  # noqa: F401  (first: it puts MLX's products on OpenBLAS, docs/blas.md)
import mlx.core as mx
import pytest

_device = os.environ.get("FLASHSNN_TEST_DEVICE", "cpu")
_require = os.environ.get("FLASHSNN_REQUIRE_KERNELS", "0")


def pytest_configure(config):
    # Here rather than at import, so that pytest reports a UsageError as
    # "ERROR: <message>" (exit status 4) instead of a failed conftest import;
    # still before collection, which reads mx.default_device() in skipifs.
    if _device not in ("cpu", "gpu"):
        raise pytest.UsageError(f"FLASHSNN_TEST_DEVICE must be 'cpu' or 'gpu'; got {_device!r}")
    if _require not in ("0", "1"):
        raise pytest.UsageError(f"FLASHSNN_REQUIRE_KERNELS must be '0' or '1'; got {_require!r}")
    if _device == "gpu":
        if not mx.is_available(mx.gpu):
            raise pytest.UsageError(
                "FLASHSNN_TEST_DEVICE=gpu but MLX has no GPU here (mx.is_available(mx.gpu) is "
                "False: MLX's CPU build, or no usable GPU or driver)")
        mx.set_default_device(mx.gpu)
    else:
        mx.set_default_device(mx.cpu)  # MLX's CUDA and Metal builds default to the GPU
    if _require == "1":
        import flashsnn

        missing = flashsnn.fused_unavailable_reason(mx.default_device())
        if missing is not None:
            raise pytest.UsageError(
                f"FLASHSNN_REQUIRE_KERNELS=1: no fused kernels for {mx.default_device()} "
                f"(GPU backend compiled in: {flashsnn.gpu_backend()}): {missing}")


def pytest_report_header(config):
    import flashsnn
    reason = flashsnn.fused_unavailable_reason()
    return (f"flashsnn: default device {mx.default_device()}, GPU backend compiled in: "
            f"{flashsnn.gpu_backend()}, fused kernels: "
            f"{'available' if reason is None else 'UNAVAILABLE: ' + reason}"
            f"{' (required)' if _require == '1' else ''}")

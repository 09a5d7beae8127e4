"""Fixtures for the CUDA backend's checks; helpers live in cudatest.py."""

import pytest

import cudatest


@pytest.fixture(scope="session")
def nvcc() -> str:
    return cudatest.require_nvcc()

"""src/cpu/parallel.h, the CPU kernels' thread pool, checked on its own.

parallel_check.cpp is built with the C++ compiler that built the extension
and run: coverage of every index, exceptions from any thread reaching the
caller, nested and concurrent callers, the same worker threads reused from
call to call, and a pool of its own in a child after fork() (MLX itself does
not run in a forked child once used, so Python cannot check that part).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _compiler() -> str | None:
    for c in (os.environ.get("CXX"), "c++", "g++", "clang++"):
        if c and shutil.which(c):
            return c
    return None


def test_parallel_for_and_its_workers(tmp_path):
    cxx = _compiler()
    if cxx is None:
        pytest.skip("no C++ compiler found (set CXX)")
    exe = tmp_path / "parallel_check"
    build = subprocess.run(
        [cxx, "-std=c++17", "-O1", "-pthread", f"-I{ROOT / 'src'}",
         str(ROOT / "tests" / "cpu" / "parallel_check.cpp"), "-o", str(exe)],
        capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-4000:]
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.strip().endswith("ok"), run.stdout + run.stderr

"""Fixtures for the Metal emulation tests (docs/metal.md, "Emulation")."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import metal_emu  # noqa: E402
import msl  # noqa: E402


def pytest_report_header(config):
    """Say what ran the Metal kernels (pytest calls this for `pytest tests/metal`,
    where this conftest is an initial one)."""
    import mlx.core as mx

    c = msl.compiler()
    lines = [f"metal emulator: {c if isinstance(c, str) else c[2] + ' (' + ' '.join(c[1][-2:]) + ')'}"]
    if mx.metal.is_available():
        info = mx.device_info(mx.gpu)
        lines.append(f"metal device: {info.get('device_name')} ({info.get('architecture')})")
    else:
        lines.append("metal device: none")
    return lines


def _skip_without_clang() -> None:
    c = msl.compiler()
    if isinstance(c, str):
        pytest.skip(f"Metal emulation skipped: {c}")


@pytest.fixture(scope="session")
def clang():
    _skip_without_clang()
    return msl.compiler()


@pytest.fixture(scope="session")
def emu(clang) -> metal_emu.Emulator:
    """metal/kernels/family.metal compiled as C++ and loaded (built once, cached
    by content under $FLASHSNN_EMU_CACHE or the temp directory)."""
    return metal_emu.build()


@pytest.fixture(scope="session")
def family_analysis(clang, tmp_path_factory) -> msl.Analysis:
    """The type-checked AST of the inlined family.metal, analyzed."""
    src = tmp_path_factory.mktemp("metal") / "family.inlined.metal"
    src.write_text(msl.load_embed().inline(msl.KERNELS / "family.metal"))
    r = msl.typecheck(src)
    assert not r.errors, "\n".join(map(str, r.errors))
    return msl.analyze(r.ast)

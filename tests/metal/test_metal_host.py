"""The host side of the Metal backend, as far as Linux can check it.

* metal/family.cpp type-checks against MLX's own Metal headers
  (mlx/backend/metal/device.h of the installed MLX) with a declarations-only
  stand-in for Apple's metal-cpp (fake_metal_cpp/): a misspelt encoder call or
  a wrong argument type fails here, not first on a Mac.
* metal/embed.py produces self-contained, compilable C++ and refuses what
  the runtime Metal compiler could not resolve.
* metal/backend.cmake, configured as on macOS, embeds the kernels and
  compiles the glue (slow; needs cmake, ninja and nanobind, as a
  --no-build-isolation build does).
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import msl

FAKE_METAL_CPP = msl.HERE / "fake_metal_cpp"
embed = msl.load_embed()


def _mlx_include() -> Path:
    import mlx
    inc = Path(list(mlx.__path__)[0]) / "include"
    if not (inc / "mlx" / "backend" / "metal" / "device.h").is_file():
        pytest.skip("the installed MLX ships no mlx/backend/metal/device.h")
    return inc


def _cxx20_check(src: Path, includes: list[Path], tmp_path: Path) -> subprocess.CompletedProcess:
    """Compile `src` as C++20 without linking: the system c++ if there is
    one, else the emulator's clang (zig c++)."""
    flags = ["-std=c++20", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Werror", "-D_METAL_",
             *(f"-I{p}" for p in includes)]
    cxx = shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    if cxx:
        cmd = [cxx, *flags, "-fsyntax-only", str(src)]
    else:
        c = msl.compiler()
        if isinstance(c, str):
            pytest.skip(f"no C++ compiler: {c}")
        cmd = [*c[1], *flags, "-c", str(src), "-o", str(tmp_path / "out.o")]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def _metal_cpp(inc: Path) -> Path:
    """Apple's metal-cpp where MLX's Metal build ships it (macOS), else the
    declarations-only stand-in."""
    real = inc / "metal_cpp"
    return real if (real / "Metal" / "Metal.hpp").is_file() else FAKE_METAL_CPP


@pytest.mark.parametrize("glue", ["family.cpp", "scan.cpp", "encode.cpp"])
def test_eval_gpu_compiles_against_mlx_metal_headers(tmp_path, glue):
    inc = _mlx_include()
    r = _cxx20_check(msl.REPO / "metal" / glue, [inc, msl.REPO, _metal_cpp(inc)], tmp_path)
    assert r.returncode == 0, r.stderr[-4000:]


def _check_mutated_encoder(tmp_path, old: str, new: str) -> subprocess.CompletedProcess:
    """metal/encode.cpp with `old` replaced by `new`, type-checked in a copy
    of the tree (its relative includes, "../src/..." and "encode.h", must
    still resolve)."""
    text = (msl.REPO / "metal" / "encode.cpp").read_text()
    bad = text.replace(old, new)
    assert bad != text, old
    src = tmp_path / "metal" / "encode.cpp"
    src.parent.mkdir()
    src.write_text(bad)
    for rel in ("metal/encode.h", "metal/launch.h", "metal/embedded.h"):
        (tmp_path / rel).write_text((msl.REPO / rel).read_text())
    shutil.copytree(msl.REPO / "src", tmp_path / "src")
    inc = _mlx_include()
    return _cxx20_check(src, [inc, tmp_path, _metal_cpp(inc)], tmp_path)


def test_scan_glue_check_can_fail(tmp_path):
    """A scratch buffer bound through the wrong encoder call (an mx::array
    where MLX's set_buffer takes an MTL::Buffer*): MLX's header rejects it."""
    r = _check_mutated_encoder(tmp_path, "enc.set_input_array(scratch[b.array], b.index);",
                               "enc.set_buffer(scratch[b.array], b.index);")
    assert r.returncode != 0 and "set_buffer" in r.stderr


def test_the_check_above_can_fail(tmp_path):
    """Arguments of get_kernel swapped: MLX's header rejects it."""
    r = _check_mutated_encoder(tmp_path, "d.get_kernel(plan.kernel, lib, plan.pipeline, constants)",
                               "d.get_kernel(plan.kernel, plan.pipeline, lib, constants)")
    assert r.returncode != 0 and "get_kernel" in r.stderr


@pytest.mark.parametrize("stem", ["family", "scan"])
def test_embedded_source_is_self_contained_cpp(tmp_path, stem):
    text = embed.inline(msl.KERNELS / f"{stem}.metal")
    includes = [line for line in text.splitlines() if line.lstrip().startswith("#include")]
    assert includes == ["#include <metal_stdlib>"], includes
    assert "#pragma once" not in text
    # family: common.h, family.h, the registered families' headers and the
    # layout, once each; scan: common.h, selective_scan.h and its layout
    step = sorted((msl.REPO / "src" / "step").glob("*.h"))
    if stem == "scan":
        step = [msl.REPO / "src" / "step" / n for n in ("common.h", "selective_scan.h")]
    else:
        step = [p for p in step if p.name != "selective_scan.h"]
    assert text.count("namespace fs {") == sum(p.read_text().count("namespace fs {") for p in step) + 1
    out = tmp_path / f"{stem}_metal_source.cpp"
    assert embed.main([str(msl.KERNELS / f"{stem}.metal"), "--cpp", str(out)]) == 0
    cpp = out.read_text()
    assert f'"flashsnn_{stem}_{embed.source_hash(text)}"' in cpp
    r = _cxx20_check(out, [msl.REPO], tmp_path)
    assert r.returncode == 0, r.stderr[-4000:]


def test_library_name_follows_the_source():
    """MLX caches a library by name for the life of the process."""
    a = embed.source_hash(embed.inline(msl.KERNELS / "family.metal"))
    b = embed.source_hash(embed.inline(msl.KERNELS / "family.metal") + "\n")
    assert a != b and len(a) == 16


@pytest.mark.parametrize("files,message", [
    ({"k.metal": "#include <cmath>\n"}, r"may include only <metal_stdlib>"),
    ({"k.metal": '#include "a.h"\n', "a.h": '#include "b.h"\n', "b.h": '#include "a.h"\n'},
     r"include cycle: .*k\.metal -> .*a\.h -> .*b\.h -> .*a\.h"),
    ({"k.metal": '#include "missing.h"\n'}, r"missing\.h not found \(included from"),
    ({"k.metal": '#include "../outside.h"\n'}, r"outside"),
    ({"k.metal": 'const char* s = ")FSMETAL";\n'}, r"may not appear"),
])
def test_embed_refuses(tmp_path, files, message):
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "outside.h").write_text("\n")
    for name, text in files.items():
        (root / name).write_text(text)
    with pytest.raises(embed.EmbedError, match=message):
        embed.inline(root / "k.metal", root=root)


def test_pragma_once_headers_are_inlined_once(tmp_path):
    (tmp_path / "a.h").write_text("#pragma once\nint a_value = 1;\n")
    (tmp_path / "k.metal").write_text('#include "a.h"\n#include "a.h"\nint k_value = a_value;\n')
    text = embed.inline(tmp_path / "k.metal", root=tmp_path)
    assert text.count("int a_value") == 1 and "int k_value" in text


@pytest.mark.slow
def test_cmake_metal_backend_builds_its_objects(tmp_path):
    """Configure as MLX's Metal build would (FLASHSNN_GPU=metal), then build
    the embedded kernel source and the glue objects (not the module: it could
    not link against the CPU libmlx)."""
    if not (shutil.which("cmake") and shutil.which("ninja")):
        pytest.skip("cmake and ninja are needed")
    if importlib.util.find_spec("nanobind") is None:
        pytest.skip("nanobind is needed (a --no-build-isolation environment has it)")
    b = tmp_path / "build"
    cfg = subprocess.run(
        ["cmake", "-S", str(msl.REPO), "-B", str(b), "-G", "Ninja", "-DFLASHSNN_GPU=metal",
         f"-DPython_EXECUTABLE={sys.executable}", f"-DCMAKE_CXX_FLAGS=-D_METAL_ -I{FAKE_METAL_CPP}"],
        capture_output=True, text=True, timeout=600)
    assert cfg.returncode == 0, cfg.stdout[-3000:] + cfg.stderr[-3000:]
    assert "GPU backend 'metal'" in cfg.stdout
    objs = ["CMakeFiles/_ext.dir/metal_generated/family_metal_source.cpp.o", "CMakeFiles/_ext.dir/metal/family.cpp.o",
            "CMakeFiles/_ext.dir/metal_generated/scan_metal_source.cpp.o", "CMakeFiles/_ext.dir/metal/scan.cpp.o"]
    r = subprocess.run(["ninja", "-C", str(b), *objs], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-4000:]
    gen = (b / "metal_generated" / "family_metal_source.cpp").read_text()
    assert embed.inline(msl.KERNELS / "family.metal") in gen

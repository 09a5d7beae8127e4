"""The CUDA backend builds cleanly, without a GPU.

- every csrc/*.cu compiles with this machine's nvcc, warnings as errors, with
  the numerics flags of csrc/backend.cmake;
- no kernel spills or keeps a stack frame (ptxas's report);
- the forward kernels contain no fused multiply-add (float32 spikes must match
  the CPU bit for bit), and a build without -fmad=false would be caught;
- the loads and stores have the vector widths the design says (PTX always,
  SASS when cuobjdump is at hand);
- csrc/leaky.cpp, the eval_gpu glue, compiles against MLX's CUDA headers
  (the installed MLX's headers are the same in its CPU and CUDA wheels) with
  fmt's headers, fetched from Debian when they are not installed.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections import Counter
from pathlib import Path

import pytest

import cudatest
from cudatest import ARCH, CSRC, NUMERICS, ROOT, STRICT, run

DTYPES = ("float", "__half", "__nv_bfloat16")


def demangle(names: list[str]) -> list[str]:
    out = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True)
    return out.stdout.splitlines() if out.returncode == 0 else names


def kernel_id(demangled: str) -> tuple[str, str, int, int, int] | None:
    """('forward'|'backward', dtype, reset, mode, vec) from a kernel's name."""
    m = re.search(r"leaky_(forward|backward)_kernel<([\w:]+), (\d), (\d), (\d)>", demangled)
    if not m:
        return None
    return m[1], m[2], int(m[3]), int(m[4]), int(m[5])


@pytest.fixture(scope="module")
def build(nvcc, tmp_path_factory):
    """Every .cu compiled for sm_90 with the build's flags; ptxas's report and
    the PTX kept."""
    out = tmp_path_factory.mktemp("cu")
    sources = sorted(CSRC.glob("*.cu"))
    assert sources, "no csrc/*.cu"
    reports, objects = {}, {}
    for src in sources:
        obj = out / (src.stem + ".o")
        p = run([nvcc, "-c", "-std=c++17", "-O3", f"-arch={ARCH}", *NUMERICS, *STRICT,
                 "-Xptxas", "-v", "--keep", "--keep-dir", str(out), str(src), "-o", str(obj)])
        reports[src.stem] = p.stdout + p.stderr
        objects[src.stem] = obj
    return {"dir": out, "reports": reports, "objects": objects}


def ptxas_usage(report: str) -> dict[str, dict[str, int]]:
    """Per kernel: registers, stack frame and spill bytes from `ptxas -v`."""
    usage = {}
    for m in re.finditer(r"Compiling entry function '(\w+)'.*?(\d+) bytes stack frame, "
                         r"(\d+) bytes spill stores, (\d+) bytes spill loads\n.*?Used (\d+) "
                         r"registers", report, re.S):
        usage[m[1]] = {"stack": int(m[2]), "spill_st": int(m[3]), "spill_ld": int(m[4]),
                       "regs": int(m[5])}
    return usage


def test_every_leaky_kernel_is_built(build):
    usage = ptxas_usage(build["reports"]["leaky"])
    ids = {kernel_id(d) for d in demangle(list(usage))}
    want = {(k, t, r, m, v) for k in ("forward", "backward") for t in DTYPES
            for r in range(3) for m in range(3) for v in (1, 4)}
    assert want <= ids, f"missing kernels: {sorted(want - ids)[:5]}"


def test_no_spills_no_stack(build):
    for stem, report in build["reports"].items():
        usage = ptxas_usage(report)
        assert usage, f"{stem}.cu: no kernel in ptxas's report"
        bad = {n: u for n, u in usage.items() if u["stack"] or u["spill_st"] or u["spill_ld"]}
        assert not bad, f"{stem}.cu: kernels with stack or spills: " + \
            ", ".join(f"{d} {u}" for d, u in zip(demangle(list(bad)), bad.values()))
        # The register caps of __launch_bounds__ (csrc/leaky.cuh, min_blocks).
        for d, u in zip(demangle(list(usage)), usage.values()):
            k = kernel_id(d)
            if k:
                cap = 128 if k[0] == "backward" else (80 if k[4] == 4 else 168)
                assert u["regs"] <= cap, f"{d}: {u['regs']} registers > {cap}"


def ptx_functions(build, stem: str) -> dict[str, str]:
    """Kernel name -> its PTX body."""
    files = list(Path(build["dir"]).glob(f"{stem}*.ptx"))
    assert files, f"no PTX kept for {stem}.cu"
    text = files[0].read_text()
    parts = re.split(r"\n(?:\.visible )?\.entry (\w+)\(", text)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts), 2)}


def test_forward_has_no_fused_multiply_add(build):
    funcs = ptx_functions(build, "leaky")
    names = list(funcs)
    fwd = [(d, funcs[n]) for n, d in zip(names, demangle(names)) if "leaky_forward_kernel" in d]
    assert len(fwd) == 54
    for d, body in fwd:
        assert not re.search(r"\bfma\.|\bmad\.", body), f"{d} contracts a multiply-add"


def test_contraction_check_can_fail(nvcc, tmp_path):
    """The check above would see nvcc's default contraction: the Leaky step
    built without -fmad=false contains fma, with it none."""
    src = tmp_path / "step.cu"
    src.write_text(f'#include "{ROOT}/src/step/leaky.h"\n'
                   "__global__ void k(const float* x, float* o, float b, float th) {\n"
                   "  o[0] = fs::leaky_forward<fs::kSubtract, fs::kDelayed>(o[1], x[0], b, th).h;\n"
                   "}\n")
    ptx = {}
    for name, flags in (("default", []), ("nofma", ["-fmad=false"])):
        out = tmp_path / f"{name}.ptx"
        run([nvcc, "-ptx", f"-arch={ARCH}", *flags, str(src), "-o", str(out)])
        ptx[name] = out.read_text()
    assert re.search(r"\bfma\.rn\.f32", ptx["default"])
    assert not re.search(r"\bfma\.|\bmad\.", ptx["nofma"])


def test_vector_widths_in_ptx(build):
    """V = 4 kernels move x/spk/dx as one vector per 4 neurons (16 bytes for
    float32, 8 for 16-bit) and h as 16 bytes; V = 1 kernels use scalars."""
    funcs = ptx_functions(build, "leaky")
    names = list(funcs)
    for n, d in zip(names, demangle(names)):
        k = kernel_id(d)
        if k is None:
            continue
        body = funcs[n]
        v4 = len(re.findall(r"\b(?:ld|st)\.global(?:\.\w+)*\.v4\.(?:f32|b32|u32)", body))
        v2 = len(re.findall(r"\b(?:ld|st)\.global(?:\.\w+)*\.v2\.(?:b32|u32)", body))
        if k[4] == 4:
            assert v4 > 0, f"{d}: no 16-byte access"
            if k[1] != "float":
                assert v2 > 0, f"{d}: no 8-byte access for 16-bit rows"
        else:
            assert v4 == 0 and v2 == 0, f"{d}: vector access in a V = 1 kernel"


def test_sass_vector_loads_and_no_local_memory(build):
    cuobjdump = cudatest.find_tool("cuobjdump", "CUOBJDUMP")
    nvdisasm = cudatest.find_tool("nvdisasm", "NVDISASM")
    if cuobjdump is None or nvdisasm is None:
        pytest.skip("cuobjdump/nvdisasm not found (CUDA toolkit, or pip install "
                    "nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm): SASS not read")
    env = dict(os.environ, PATH=f"{Path(nvdisasm).parent}:{os.environ.get('PATH', '')}")
    sass = subprocess.run([cuobjdump, "-sass", str(build["objects"]["leaky"])],
                          capture_output=True, text=True, env=env)
    assert sass.returncode == 0, sass.stderr
    parts = re.split(r"\n\s*Function : (\S+)\n", sass.stdout)
    names = parts[1::2]
    seen = 0
    for d, body in zip(demangle(names), parts[2::2]):
        k = kernel_id(d)
        if k is None:
            continue
        seen += 1
        ops = Counter(re.findall(r"\b((?:LDG|STG|LDL|STL)[.\w]*)", body))
        assert not any(o.startswith(("LDL", "STL")) for o in ops), f"{d}: local memory {ops}"
        if k[4] == 4:
            # h (float32) is written forward and read backward as 16 bytes;
            # x / spk / dspk / dx as 16 bytes (float32) or 8 (16-bit).
            assert ops["STG.E.128" if k[0] == "forward" else "LDG.E.128"] > 0, f"{d}: {ops}"
            row = "E.128" if k[1] == "float" else "E.64"
            assert ops[f"LDG.{row}"] > 0 and ops[f"STG.{row}"] > 0, f"{d}: {ops}"
        if k[0] == "forward":
            assert "FFMA" not in body, f"{d}: FFMA in the forward"
    assert seen == 108


@pytest.fixture(scope="module")
def fmt_include(tmp_path_factory) -> Path:
    for cand in (os.environ.get("FMT_INCLUDE_DIR"), "/usr/include",
                 ROOT / "build/gpu-cache/fmt/include"):
        if cand and (Path(cand) / "fmt/format.h").exists():
            return Path(cand)
    dest = tmp_path_factory.mktemp("fmt")
    p = subprocess.run(["bash", str(ROOT / "scripts/gpu/fetch_fmt.sh"), str(dest)],
                       capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip("fmt headers not found and not downloadable (apt-get install libfmt-dev, "
                    f"or set FMT_INCLUDE_DIR): {p.stderr.strip()}")
    return dest / "include"


def test_glue_compiles_against_mlx_cuda_headers(nvcc, fmt_include, tmp_path):
    mlx = pytest.importorskip("mlx")
    mlx_include = Path(list(mlx.__path__)[0]) / "include"
    if not (mlx_include / "mlx/backend/cuda/device.h").exists():
        pytest.skip(f"MLX's CUDA headers are not in {mlx_include}")
    cuda_include = Path(nvcc).resolve().parent.parent / "include"
    if not (cuda_include / "cuda.h").exists():
        cuda_include = Path("/usr/local/cuda/include")
    cxx = os.environ.get("CXX", "g++")
    # fmt found in /usr/include needs no flag: -isystem /usr/include moves the
    # system folder ahead of libstdc++'s, whose <cstdlib> then misses stdlib.h
    # (seen with CXX=/usr/bin/g++ on the GPU host).
    fmt = [] if fmt_include == Path("/usr/include") else ["-isystem", str(fmt_include)]
    for src in sorted(CSRC.glob("*.cpp")):
        # The top-level CMakeLists' C++ flags, warnings as errors.
        run([cxx, "-std=c++20", "-O2", "-fPIC", "-ffp-contract=off", "-fno-fast-math",
             "-Wall", "-Wextra", "-Wno-unused-parameter", "-Werror", "-DFMT_HEADER_ONLY",
             f"-I{ROOT / 'src'}", "-isystem", str(mlx_include), "-isystem", str(cuda_include),
             *fmt, "-c", str(src), "-o", str(tmp_path / "glue.o")])

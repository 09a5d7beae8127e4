"""The CUDA backend builds cleanly, without a GPU.

- every csrc/*.cu compiles with this machine's nvcc, warnings as errors, with
  the numerics flags of csrc/backend.cmake;
- no kernel spills or keeps a stack frame (ptxas's report);
- every family's kernels are built, for exactly the resets and modes it has;
- the forward kernels contain no fused multiply-add (float32 spikes must match
  the CPU bit for bit), and a build without -fmad=false would be caught, for
  every family's step;
- the loads and stores have the vector widths the design says (PTX always,
  SASS when cuobjdump is at hand);
- csrc/*.cpp, the eval_gpu glue, compiles against MLX's CUDA headers
  (the installed MLX's headers are the same in its CPU and CUDA wheels) with
  fmt's headers, fetched from Debian when they are not installed.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import cudatest
from cudatest import ARCH, CSRC, NUMERICS, ROOT, STRICT, run

DTYPES = ("float", "__half", "__nv_bfloat16")


def demangle(names: list[str]) -> list[str]:
    out = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True)
    return out.stdout.splitlines() if out.returncode == 0 else names


# Kernel tuple indices: (kind, family, dtype, reset, mode, vec).
KIND, FAMILY, DTYPE, RESET, MODE, VEC = range(6)


def kernel_id(demangled: str) -> tuple[str, str, str, int, int, int] | None:
    """('forward'|'backward', family trait, dtype, reset, mode, vec) from a
    kernel's name (csrc/kernels.cuh)."""
    m = re.search(r"family_(forward|backward)_kernel<fs::(\w+), ([\w:]+), (\d), (\d), (\d)>",
                  demangled)
    if not m:
        return None
    return m[1], m[2], m[3], int(m[4]), int(m[5]), int(m[6])


# python name -> trait, from the registration list (X(id, name, Trait)).
TRAITS = dict(re.findall(r"X\(\d+,\s*(\w+),\s*(\w+)\)",
                         (ROOT / "src/step/families.h").read_text()))


def expected_kernels() -> set[tuple[str, str, str, int, int, int]]:
    """Every kernel the registered families need: their resets and modes
    (the extension's table), 3 dtypes, V = 1 and 4, forward and backward."""
    ext = pytest.importorskip("flashsnn._ext", reason="flashsnn._ext is not built")
    want = set()
    for name, _, _, _, rmask, mmask, _, _ in ext.families():
        trait = TRAITS[name]
        want |= {(k, trait, t, r, m, v) for k in ("forward", "backward") for t in DTYPES
                 for r in range(3) for m in range(3) for v in (1, 4)
                 if (rmask >> r) & 1 and (mmask >> m) & 1}
    return want


def all_kernels(build) -> dict[str, dict[str, int]]:
    """ptxas's usage of every kernel, over every .cu."""
    usage = {}
    for report in build["reports"].values():
        usage.update(ptxas_usage(report))
    return usage


@pytest.fixture(scope="module")
def build(nvcc, tmp_path_factory):
    """Every .cu compiled for sm_90 with the build's flags; ptxas's report and
    the PTX kept."""
    out = tmp_path_factory.mktemp("cu")
    sources = sorted(CSRC.glob("*.cu"))
    assert sources, "no csrc/*.cu"
    reports, objects = {}, {}

    def compile_one(src):
        # --keep files of their own per source: parallel nvcc runs would
        # otherwise share intermediate names in one folder.
        keep = out / src.stem
        keep.mkdir(exist_ok=True)
        obj = out / (src.stem + ".o")
        p = run([nvcc, "-c", "-std=c++17", "-O3", f"-arch={ARCH}", *NUMERICS, *STRICT,
                 "-Xptxas", "-v", "--keep", "--keep-dir", str(keep), str(src), "-o", str(obj)])
        return src.stem, p.stdout + p.stderr, obj

    # The kernels are split per dtype and direction (csrc/forward_*.cu,
    # backward_*.cu) so that builds run them in parallel; two at a time here
    # (a 2-core CI machine).
    with ThreadPoolExecutor(max_workers=max(2, min(4, os.cpu_count() or 2))) as pool:
        for stem, report, obj in pool.map(compile_one, sources):
            reports[stem] = report
            objects[stem] = obj
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


def test_every_family_kernel_is_built(build):
    """Exactly the kernels the families need: none missing, and none for a
    reset or mode a family lacks (fs::has_reset / fs::has_mode)."""
    usage = all_kernels(build)
    ids = {kernel_id(d) for d in demangle(list(usage))} - {None}
    want = expected_kernels()
    assert want <= ids, f"missing kernels: {sorted(want - ids)[:5]}"
    assert ids <= want, f"kernels no family needs: {sorted(ids - want)[:5]}"


def test_no_spills_no_stack(build):
    assert all_kernels(build), "no kernel in ptxas's report"
    for stem, report in build["reports"].items():
        # family.cu holds the launch API and no kernel: an empty report.
        usage = ptxas_usage(report)
        bad = {n: u for n, u in usage.items() if u["stack"] or u["spill_st"] or u["spill_ld"]}
        assert not bad, f"{stem}.cu: kernels with stack or spills: " + \
            ", ".join(f"{d} {u}" for d, u in zip(demangle(list(bad)), bad.values()))
        # The register caps of __launch_bounds__ (csrc/family.cuh, min_blocks).
        for d, u in zip(demangle(list(usage)), usage.values()):
            k = kernel_id(d)
            if k:
                cap = 128 if k[KIND] == "backward" else (80 if k[VEC] == 4 else 168)
                assert u["regs"] <= cap, f"{d}: {u['regs']} registers > {cap}"


def test_every_scan_kernel_is_built(build):
    """The selective scan: forward and backward for each dtype and one or
    two states per lane (csrc/scan.h, scan_spl), and the sum kernel."""
    names = " ".join(demangle(list(all_kernels(build))))
    for kind in ("forward", "backward"):
        for t in ("float", "__half", "__nv_bfloat16"):
            for spl in (1, 2):
                assert f"scan_{kind}_kernel<{t}, {spl}>" in names, (kind, t, spl)
    assert "scan_sum_kernel" in names


def ptx_functions(build) -> dict[str, str]:
    """Kernel name -> its PTX body, over every .cu."""
    files = list(Path(build["dir"]).glob("*/*.ptx"))
    assert files, "no PTX kept"
    funcs = {}
    for f in files:
        parts = re.split(r"\n(?:\.visible )?\.entry (\w+)\(", f.read_text())
        funcs.update({parts[i]: parts[i + 1] for i in range(1, len(parts), 2)})
    return funcs


def test_forward_has_no_fused_multiply_add(build):
    funcs = ptx_functions(build)
    names = list(funcs)
    fwd = [(d, funcs[n]) for n, d in zip(names, demangle(names)) if "family_forward_kernel" in d]
    assert len(fwd) == sum(1 for k in expected_kernels() if k[KIND] == "forward")
    for d, body in fwd:
        assert not re.search(r"\bfma\.|\bmad\.", body), f"{d} contracts a multiply-add"


def test_contraction_check_can_fail(nvcc, tmp_path):
    """The check above would see nvcc's default contraction: every family's
    forward step (the registration list, src/step/families.h) built without
    -fmad=false contains fma, with it none."""
    src = tmp_path / "step.cu"
    src.write_text(f'#include "{ROOT}/src/step/families.h"\n'
                   "template <class F>\n"
                   "__global__ void step(const float* x, const float* c, float* o) {\n"
                   "  fs::Vec<F::kStates> s;\n"
                   "  for (int j = 0; j < F::kStates; ++j) s.v[j] = o[j];\n"
                   "  fs::Vec<F::kConsts> k;\n"
                   "  for (int j = 0; j < F::kConsts; ++j) k.v[j] = c[j];\n"
                   "  auto r = F::template forward<fs::kSubtract, fs::kDelayed>(s, x[0], k);\n"
                   "  for (int j = 0; j < F::kStates; ++j) o[j] = r.s.v[j];\n"
                   "}\n"
                   "#define FS_STEP(ID, NAME, F) template __global__ void step<fs::F>"
                   "(const float*, const float*, float*);\n"
                   "FS_FOR_EACH_FAMILY(FS_STEP)\n")
    ptx = {}
    for name, flags in (("default", []), ("nofma", ["-fmad=false"])):
        out = tmp_path / f"{name}.ptx"
        run([nvcc, "-ptx", f"-arch={ARCH}", *flags, str(src), "-o", str(out)])
        parts = re.split(r"\n(?:\.visible |\.weak )*\.entry (\w+)\(", out.read_text())
        ptx[name] = dict(zip(demangle(parts[1::2]), parts[2::2]))
    families = {re.search(r"step<fs::(\w+)>", d)[1] for d in ptx["default"]}
    assert TRAITS and families == set(TRAITS.values())
    for d, body in ptx["default"].items():
        assert re.search(r"\bfma\.rn\.f32", body), f"{d}: no fma without -fmad=false"
    for d, body in ptx["nofma"].items():
        assert not re.search(r"\bfma\.|\bmad\.", body), f"{d}: fma with -fmad=false"


def test_stream_sweep_benchmark_compiles(nvcc, tmp_path):
    """benchmarks/cuda/stream_sweep.cu (the H200 load-structure sweep, which
    compiles csrc/family.cuh's Leaky kernels in) keeps building against the
    engine it measures: only the device code, to PTX (about 15 s)."""
    out = tmp_path / "sweep.ptx"
    run([nvcc, "-ptx", f"-arch={ARCH}", "-std=c++17", "-fmad=false", f"-I{ROOT}",
         str(ROOT / "benchmarks" / "cuda" / "stream_sweep.cu"), "-o", str(out)])
    ptx = out.read_text()
    assert "engine_fwd" in ptx and "engine_bwd" in ptx and "fwd_async" in ptx


def test_vector_widths_in_ptx(build):
    """V = 4 kernels move x/spk/dx as one vector per 4 neurons (16 bytes for
    float32, 8 for 16-bit) and h as 16 bytes; V = 1 kernels use scalars."""
    funcs = ptx_functions(build)
    names = list(funcs)
    for n, d in zip(names, demangle(names)):
        k = kernel_id(d)
        if k is None:
            continue
        body = funcs[n]
        v4 = len(re.findall(r"\b(?:ld|st)\.global(?:\.\w+)*\.v4\.(?:f32|b32|u32)", body))
        v2 = len(re.findall(r"\b(?:ld|st)\.global(?:\.\w+)*\.v2\.(?:b32|u32)", body))
        if k[VEC] == 4:
            assert v4 > 0, f"{d}: no 16-byte access"
            if k[DTYPE] != "float":
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
    text = ""
    for obj in build["objects"].values():
        sass = subprocess.run([cuobjdump, "-sass", str(obj)], capture_output=True, text=True,
                              env=env)
        assert sass.returncode == 0, sass.stderr
        text += sass.stdout
    parts = re.split(r"\n\s*Function : (\S+)\n", text)
    names = parts[1::2]
    ptx = ptx_functions(build)
    seen = 0
    for name, d, body in zip(names, demangle(names), parts[2::2]):
        k = kernel_id(d)
        if k is None:
            continue
        seen += 1
        ops = Counter(re.findall(r"\b((?:LDG|STG|LDL|STL)[.\w]*)", body))
        assert not any(o.startswith(("LDL", "STL")) for o in ops), f"{d}: local memory {ops}"
        if k[VEC] == 4:
            # The saves (float32) are written forward and read backward as
            # 16 bytes; x / spk / dspk / dx as 16 bytes (float32) or 8 (16-bit).
            assert ops["STG.E.128" if k[KIND] == "forward" else "LDG.E.128"] > 0, f"{d}: {ops}"
            row = "E.128" if k[DTYPE] == "float" else "E.64"
            assert ops[f"LDG.{row}"] > 0 and ops[f"STG.{row}"] > 0, f"{d}: {ops}"
        # A correctly rounded division (PTX div.rn.f32, Lapicque's 1/(R C)
        # in prepare) expands in SASS to a Newton iteration built of FFMAs,
        # exact by construction (H200, nvcc 13.0: FFMA R7, R5, R6, -1 in
        # the Lapicque forward); the contract is the PTX check above, that
        # nothing of ours is contracted. Kernels without a division have no
        # FFMA at all.
        if k[KIND] == "forward" and not re.search(r"\bdiv\.rn\.f32", ptx.get(name, "")):
            assert "FFMA" not in body, f"{d}: FFMA in the forward"
    assert seen == len(expected_kernels())


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


def test_csrc_is_generic_and_small():
    """csrc/ is generic over the family trait: no file names a family (the
    registration list, src/step/families.h, is the one place that does), and
    no file passes 600 lines."""
    names = {n.lower() for n in TRAITS} | {t.lower() for t in TRAITS.values()}
    assert names
    for f in sorted(CSRC.iterdir()):
        if not f.is_file():
            continue
        text = f.read_text()
        assert text.count("\n") <= 600, f"{f.name}: {text.count(chr(10))} lines"
        found = sorted({w for w in re.findall(r"[A-Za-z_]\w*", text) if w.lower() in names})
        assert not found, f"{f.name} names a family: {found}"

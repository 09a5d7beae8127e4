#!/usr/bin/env bash
# Build flashsnn's CUDA extension on a machine WITHOUT a GPU, for the offline
# NVIDIA host (x86-64, Python 3.12, CUDA 13 driver) that runs the MLX wheels
# staged by ../shared/gpu-host/prepare.sh. Run from anywhere in the checkout.
#
# Needs: python3.12, nvcc 13.x (CUDA 13 toolkit), PyPI and Debian's apt lists.
# Leaves .gpubuild/flashsnn/ (the package with _ext.cpython-312-x86_64-linux-gnu.so,
# a few MB), ignored by git. On the GPU host, after setup.sh stage2:
#   export PYTHONPATH=$PWD/.gpubuild:/root/site     (or copy .gpubuild/flashsnn into /root/site)
#
# Environment:
#   MLX_VERSION                 MLX release to build against (default 0.32.4)
#   PYTHON312                   interpreter (default python3.12)
#   NVCC                        CUDA compiler (default: nvcc on PATH, else /usr/local/cuda/bin/nvcc)
#   FLASHSNN_CUDA_ARCHITECTURES CMake list (default: csrc/backend.cmake's sm_80 and sm_90 + compute_80 PTX)
#   FLASHSNN_GPU_CACHE          downloads and build tree (default build/gpu-cache)
#   FLASHSNN_GPU_OUT            output folder (default .gpubuild)
#   CMAKE_BUILD_PARALLEL_LEVEL  parallel compile jobs (default 1)
set -euo pipefail
MLX_VERSION=${MLX_VERSION:-0.32.4}
root=$(git rev-parse --show-toplevel)
cd "$root"
py=${PYTHON312:-}
if [ -z "$py" ]; then
  if python3.12 -c '' 2>/dev/null; then py=python3.12
  elif command -v pyenv >/dev/null; then py=$(ls -d "$(pyenv root)"/versions/3.12*/bin/python3.12 2>/dev/null | tail -1)
  fi
fi
cache=${FLASHSNN_GPU_CACHE:-$root/build/gpu-cache}
out=${FLASHSNN_GPU_OUT:-$root/.gpubuild}
nvcc=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-1}
[ -x "$nvcc" ] || { echo "build_cuda: no nvcc ($nvcc); set NVCC" >&2; exit 2; }
[ -n "$py" ] && "$py" -c '' || { echo "build_cuda: no Python 3.12; set PYTHON312" >&2; exit 2; }
mkdir -p "$cache"
log() { echo "build_cuda: $*"; }

# 1. A Python 3.12 build environment with MLX's CUDA wheels. --no-deps: the
#    build reads MLX's headers, libmlx.so and CMake config; the nvidia-* runtime
#    wheels it depends on (several GB) are the GPU host's business.
venv=$cache/venv312
if [ ! -x "$venv/bin/python" ]; then
  log "creating $venv"
  "$py" -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check \
  "scikit-build-core>=0.10" "nanobind==3.0.1" "cmake>=3.27" "nvidia-cuda-cuobjdump==13.2.*" \
  "nvidia-cuda-nvdisasm==13.2.*"
"$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps \
  "mlx==$MLX_VERSION" "mlx-cuda-13==$MLX_VERSION"
sp=$("$venv/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
libmlx=$sp/mlx/lib/libmlx.so

# 2. fmt headers (MLX's CUDA headers include <fmt/format.h>). cuDNN, which
#    MLX's CMake config asks for, needs nothing: csrc/mlx_cudnn.cmake answers it.
bash "$root/scripts/gpu/fetch_fmt.sh" "$cache/fmt" >/dev/null

# 3. Build the wheel against that MLX (-C mlx=cuda13: CMake fails unless it
#    finds MLX's CUDA build).
log "building (CMAKE_BUILD_PARALLEL_LEVEL=$CMAKE_BUILD_PARALLEL_LEVEL; the .cu takes minutes)"
rm -rf "$cache/wheel"
defs=(-C mlx=cuda13
      -C "cmake.define.FMT_INCLUDE_DIR=$cache/fmt/include"
      -C "cmake.define.CMAKE_CUDA_COMPILER=$nvcc"
      -C "build-dir=$cache/build/{wheel_tag}")
# Always passed: an empty value means backend.cmake's default, and a value
# cached by an earlier build in the same tree must not linger.
defs+=(-C "cmake.define.FLASHSNN_CUDA_ARCHITECTURES=${FLASHSNN_CUDA_ARCHITECTURES:-}")
PATH="$venv/bin:$PATH" "$venv/bin/python" -m pip wheel -q --disable-pip-version-check \
  --no-build-isolation --no-deps -w "$cache/wheel" "${defs[@]}" "$root"
whl=$(ls "$cache"/wheel/flashsnn-*-cp312-*.whl)

# 4. The package, unpacked, ready for PYTHONPATH.
rm -rf "$out" && mkdir -p "$out"
( cd "$out" && unzip -q "$whl" 'flashsnn/*' )
so=$(ls "$out"/flashsnn/_ext.cpython-312-x86_64-linux-gnu.so)
exclude=$(git rev-parse --git-path info/exclude)
rel=/${out#"$root"/}/
case "$out" in "$root"/*)
  grep -qxF "$rel" "$exclude" 2>/dev/null || echo "$rel" >> "$exclude" ;;
esac

# 5. Checks that a wrong build would otherwise only show on the GPU host.
fail() { echo "build_cuda: CHECK FAILED: $*" >&2; exit 1; }
dyn=$(readelf -d "$so")
grep -q 'RUNPATH.*\[\$ORIGIN/../mlx/lib\]' <<<"$dyn" || fail "RUNPATH is not \$ORIGIN/../mlx/lib"
grep -q 'NEEDED.*\[libmlx.so\]' <<<"$dyn" || fail "libmlx.so is not NEEDED"
if grep -q 'NEEDED.*libcudart' <<<"$dyn"; then fail "links the shared cudart (must be static)"; fi
# libmlx.so exports only MLX_API symbols; one it lacks links fine here and
# fails at import there. Unversioned undefined symbols are MLX's or Python's.
missing=$(comm -23 \
  <(nm -D --undefined-only "$so" | awk '$1 == "U" && $2 !~ /@/ {print $2}' | grep -v '^_\?Py' | sort -u) \
  <(nm -D --defined-only "$libmlx" | awk '{print $3}' | sort -u))
[ -z "$missing" ] || fail "symbols libmlx.so does not export: $(echo "$missing" | c++filt | tr '\n' ';')"
cuobjdump=$(ls "$sp"/nvidia/cu13/bin/cuobjdump)
elfs=$(PATH="$(dirname "$cuobjdump"):$PATH" cuobjdump --list-elf "$so")
ptx=$(PATH="$(dirname "$cuobjdump"):$PATH" cuobjdump --list-ptx "$so" 2>/dev/null || true)
# csrc/backend.cmake's default list, unless another was asked for.
arches="${FLASHSNN_CUDA_ARCHITECTURES:-80-real;90-real;80-virtual}"
for a in $(tr ';' '\n' <<<"$arches" | sed -n 's/-real$//p; /^[0-9]*$/p'); do
  grep -q "sm_$a" <<<"$elfs" || fail "no sm_$a machine code"
done
for a in $(tr ';' '\n' <<<"$arches" | sed -n 's/-virtual$//p; /^[0-9]*$/p'); do
  grep -q "compute_$a\|sm_$a" <<<"$ptx" || fail "no compute_$a PTX"
done
# Every kernel of every architecture: no stack frame, no local memory
# (spills), no shared memory but the selective scan's (its backward's sums)
# and the family backward's (its compensated gradient sums, csrc/family.cuh).
usage=$(PATH="$(dirname "$cuobjdump"):$PATH" cuobjdump --dump-resource-usage "$so")
kernels=$(grep -c 'REG:' <<<"$usage" || true)
[ "$kernels" -gt 0 ] || fail "no kernels in $so"
bad=$(awk '/Function /{f=$2} /REG:/{
  if ($0 !~ /STACK:0 / || $0 !~ /LOCAL:0 / || ($0 !~ /SHARED:0 / && f !~ /scan_|family_backward_kernel/)) print f, $0
}' <<<"$usage")
if [ -n "$bad" ]; then
  fail "a kernel uses stack or local memory: $(head -4 <<<"$bad")"
fi
regs=$(grep -o 'REG:[0-9]*' <<<"$usage" | cut -d: -f2 | sort -n | sed -n '1p;$p' | tr '\n' ' ')

{
  echo "flashsnn $(git describe --always --dirty) built $(date -u +%FT%TZ) on $(hostname)"
  echo "MLX $MLX_VERSION (mlx-cuda-13), $("$nvcc" --version | tail -1), Python 3.12"
  echo "architectures: $arches"
  echo "sha256 $(sha256sum "$so" | cut -d' ' -f1)  flashsnn/$(basename "$so")"
} > "$out/BUILD-INFO.txt"
log "checks passed: RUNPATH \$ORIGIN/../mlx/lib, static cudart, every MLX symbol exported, " \
    "machine code for $(grep -o 'sm_[0-9]*' <<<"$elfs" | sort -u | tr '\n' ' ')" \
    "PTX for $(grep -o 'sm_[0-9]*\|compute_[0-9]*' <<<"$ptx" | sort -u | tr '\n' ' ')," \
    "$kernels kernel images without stack or spills (registers min/max: $regs)"
log "$(du -sh "$out" | cut -f1) in $out ($(du -h "$so" | cut -f1) _ext)"

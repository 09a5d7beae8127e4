#!/usr/bin/env bash
# The second command of a GPU session on the offline NVIDIA host (after
# `bash .gpuhost/a/setup.sh stage1` in the first; ../shared/gpu-host/README.md):
# installs MLX's CUDA wheels, builds flashsnn there for sm_90 (once per
# machine: about 3 minutes on 16 cores), then runs the named jobs in order,
# each writing its log or results under $OUT:
#
#   crash    the direct _ext call with bad arguments, alone, with faulthandler
#   tests    the whole suite with the GPU as MLX's default device (-n 16)
#   fuzz     tests/ops/test_leaky_fuzz.py and tests/ops/test_leaky_memory.py on the GPU
#   bench    flashsnn bench on the GPU, every per-call mode (Leaky T=100 B=64 N=4096)
#   train    the training-step benchmark on the GPU
#   ncu      Nsight Compute on the fused forward and backward kernels
#
#   bash scripts/gpu/h200.sh build tests bench     (from the repository root)
set -uo pipefail
: "${OUT:?run on the GPU host, where OUT is set}"
export PYTHONUNBUFFERED=1
if [ ! -f /root/gpuhost.env ]; then
  bash .gpuhost/b/setup.sh stage2 || exit 1
fi
source /root/gpuhost.env
export PYTHONPATH=/root/fs:$PYTHONPATH

build() {
  [ -f /root/fs/flashsnn/__init__.py ] && { echo "build: already in /root/fs"; return; }
  # The g++ first on PATH there (/opt/gcc) links libstdc++ statically, which
  # the build refuses (scripts/check_shared_libstdcxx.cmake): use the system's.
  if [ -x /usr/bin/g++ ]; then export CXX=/usr/bin/g++ CUDAHOSTCXX=/usr/bin/g++; fi
  local t0=$SECONDS
  CMAKE_BUILD_PARALLEL_LEVEL=16 python3 -m pip install -q --no-build-isolation --no-deps \
    --no-index --target /root/fs . $FLASHSNN_CMAKE_ARGS -C mlx=cuda13 \
    -C cmake.define.FLASHSNN_CUDA_ARCHITECTURES=90-real >"$OUT/build.log" 2>&1 \
    || { tail -40 "$OUT/build.log"; exit 1; }
  echo "build: $((SECONDS - t0)) s"
  python3 -c "import mlx.core as mx, flashsnn as fs; print('flashsnn', fs.gpu_backend(), 'mlx', mx.__version__, mx.default_device(), fs.fused_unavailable_reason(mx.Device(mx.gpu)))"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv,noheader
}

for job in "$@"; do
  echo "=== $job"
  t0=$SECONDS
  case "$job" in
    build) build ;;
    crash)
      FLASHSNN_TEST_DEVICE=gpu python3 -X faulthandler -m pytest -q -p no:cacheprovider \
        "tests/ops/test_leaky.py::test_extension_rejects_bad_direct_calls" 2>&1 | tail -30 ;;
    tests)
      FLASHSNN_REQUIRE_KERNELS=1 FLASHSNN_TEST_DEVICE=gpu python3 -m pytest -q -p no:cacheprovider -n 16 tests \
        >"$OUT/gpu-tests.txt" 2>&1
      echo "rc $?"; grep -E "passed|failed|error" "$OUT/gpu-tests.txt" | tail -15 ;;
    fuzz)
      FLASHSNN_TEST_DEVICE=gpu python3 -X faulthandler -m pytest -q -p no:cacheprovider \
        tests/ops/test_leaky_memory.py tests/ops/test_leaky_fuzz.py 2>&1 | tail -15 ;;
    bench)
      python3 benchmarks/run.py --device gpu --shapes 100,64,4096 --no-progress \
        --modes throughput latency cache-off busy --out "$OUT/leaky-h200.json" 2>&1 | tail -40 ;;
    train)
      python3 benchmarks/train_step.py --device gpu --out "$OUT/train-step-h200.json" 2>&1 | tail -30 ;;
    ncu)
      ncu --clock-control none --section SpeedOfLight --section Occupancy \
        --section WarpStateStats --section MemoryWorkloadAnalysis -k regex:family_ \
        --launch-skip 4 --launch-count 2 \
        python3 benchmarks/ncu_leaky.py >"$OUT/ncu.txt" 2>&1
      grep -E "family_|Duration|DRAM Throughput|Memory Throughput|Achieved Occupancy|Stall" "$OUT/ncu.txt" | head -40 ;;
    *) echo "unknown job '$job' (build crash tests fuzz bench train ncu)"; exit 2 ;;
  esac
  echo "--- $job: $((SECONDS - t0)) s"
done

#!/usr/bin/env bash
# The second command of a GPU session on the offline NVIDIA host (after
# `bash .gpuhost/a/setup.sh stage1` in the first; ../shared/gpu-host/README.md):
# installs MLX's CUDA wheels, builds flashsnn there for sm_90 (once per
# machine: about 3 minutes on 16 cores), then runs the named jobs in order,
# each writing its log or results under $OUT:
#
#   crash    the direct _ext call with bad arguments, alone, with faulthandler
#   tests    the whole suite with the GPU as MLX's default device (-n 16, per file)
#   fuzz     tests/ops/test_leaky_fuzz.py and tests/ops/test_leaky_memory.py on the GPU
#   bench    flashsnn bench on the GPU, every per-call mode (Leaky T=100 B=64 N=4096)
#   train    the training-step benchmark on the GPU
#   ncu      Nsight Compute on the fused forward and backward kernels
#   build-old  build the source tree in .gpuhost/old.tar (another commit, made
#            with `git archive <rev> -o .gpuhost/old.tar`) into /root/fs-old
#   compare  benchmarks/compare_builds.py: this build's Leaky against /root/fs-old's
#   families `flashsnn bench --family` for every benchmark name (throughput), one JSON
#   scan     the selective scan: its tests on the GPU, `flashsnn bench --family
#            selective_scan` (times, then peak memory against L) and one call at a time
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

build_old() {
  [ -f /root/fs-old/flashsnn/__init__.py ] && { echo "build-old: already in /root/fs-old"; return; }
  [ -f .gpuhost/old.tar ] || { echo "build-old: no .gpuhost/old.tar (carry it)"; exit 1; }
  rm -rf /root/old-src && mkdir -p /root/old-src && tar -xf .gpuhost/old.tar -C /root/old-src
  if [ -x /usr/bin/g++ ]; then export CXX=/usr/bin/g++ CUDAHOSTCXX=/usr/bin/g++; fi
  local t0=$SECONDS
  (cd /root/old-src && CMAKE_BUILD_PARALLEL_LEVEL=16 python3 -m pip install -q --no-build-isolation \
    --no-deps --no-index --target /root/fs-old . $FLASHSNN_CMAKE_ARGS -C mlx=cuda13 \
    -C cmake.define.FLASHSNN_CUDA_ARCHITECTURES=90-real) >"$OUT/build-old.log" 2>&1 \
    || { tail -40 "$OUT/build-old.log"; exit 1; }
  echo "build-old: $((SECONDS - t0)) s"
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
      # TEST_PATHS (default: tests) picks a part, to split the suite over calls;
      # PYTEST_ARGS adds options (e.g. --durations=30). --dist loadfile, as
      # .ci/run. The two nvcc host checks are left to CI: their module
      # fixtures compile every kernel once per worker (137 s of setup each
      # on 16 workers, 2026-12-04), which kept whole-suite runs from ending
      # within a call.
      FLASHSNN_REQUIRE_KERNELS=1 FLASHSNN_TEST_DEVICE=gpu python3 -m pytest -q -p no:cacheprovider -n 16 --dist loadfile \
        --ignore=tests/cuda/test_cuda_compile.py --ignore=tests/cuda/test_cuda_kernel_logic.py \
        ${PYTEST_ARGS:-} ${TEST_PATHS:-tests} >"$OUT/gpu-tests.txt" 2>&1
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
    build-old) build_old ;;
    compare)
      python3 benchmarks/compare_builds.py --device gpu --baseline \
        "$(ls /root/fs-old/flashsnn/_ext*.so)" --shapes 100,64,4096 500,32,1024 \
        --out "$OUT/compare-builds-h200.json" 2>&1 | tail -20 ;;
    families)
      # Every benchmark name: the table's families and IF (Leaky at beta = 1).
      mkdir -p /tmp/families
      for f in $(python3 -c "from flashsnn.bench.registry import BENCHMARKS; print(*BENCHMARKS)"); do
        impls="fused reference x*2"
        # SpikingJelly 2.0's fused LIF, IF and Izhikevich (its own model) beside ours.
        case "$f" in leaky|if|izhikevich) impls="$impls spikingjelly" ;; esac
        python3 benchmarks/run.py --device gpu --family "$f" --shapes 100,64,4096 --no-progress \
          --impls $impls --modes throughput --out "/tmp/families/family-$f-h200.json" 2>&1 | tail -12
      done
      # One file for all (the device returns at most 8): {name: that run's JSON}.
      python3 -c "import json,glob,os; json.dump({os.path.basename(p)[7:-10]: json.load(open(p)) for p in sorted(glob.glob('/tmp/families/family-*-h200.json'))}, open('$OUT/families-h200.json','w'), indent=1)"
      ;;
    scan)
      # Logs go to $OUT as they are written (tee), so a run the call's time
      # limit stops still returns what it measured.
      FLASHSNN_REQUIRE_KERNELS=1 FLASHSNN_TEST_DEVICE=gpu python3 -m pytest -q -p no:cacheprovider -n 8 \
        --dist loadfile tests/ops/test_selective_scan.py tests/bench/test_bench_scan.py \
        >"$OUT/scan-tests-h200.txt" 2>&1
      echo "rc $?"; tail -5 "$OUT/scan-tests-h200.txt"
      # The recipes' shapes with every implementation; L=4096 with the fused
      # op and PyTorch's loop (the reference loop of 4096 steps takes minutes
      # per pass there).
      timeout 240 python3 benchmarks/run.py --device gpu --family selective_scan --no-progress --budget 3 \
        --shapes 32,100,256,16 16,500,512,16 --modes throughput --out "$OUT/selective-scan-h200.json" 2>&1 \
        | tee "$OUT/selective-scan-h200.log" | grep -v "^{" | tail -30
      timeout 90 python3 benchmarks/run.py --device gpu --family selective_scan --no-progress --budget 3 \
        --shapes 2,4096,256,16 --impls fused "torch loop" --modes throughput \
        --out "$OUT/selective-scan-long-h200.json" \
        2>&1 | tee "$OUT/selective-scan-long-h200.log" | tail -6
      timeout 90 python3 benchmarks/run.py --device gpu --family selective_scan --memory --no-progress \
        --shapes 1,1024,256,16 1,4096,256,16 1,16384,256,16 \
        --out "$OUT/selective-scan-memory-h200.json" 2>&1 | tail -5
      timeout 120 python3 benchmarks/run.py --device gpu --family selective_scan --no-progress \
        --shapes 32,100,256,16 --modes latency cache-off busy \
        --out "$OUT/selective-scan-percall-h200.json" 2>&1 | tail -8 ;;
    *) echo "unknown job '$job' (build build-old crash tests fuzz bench train ncu compare families scan)"; exit 2 ;;
  esac
  echo "--- $job: $((SECONDS - t0)) s"
done

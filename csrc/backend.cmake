# CUDA backend (csrc/), included by the top-level CMakeLists.txt when the
# installed MLX is its CUDA build (mlx-cuda-13). Adds the kernels (*.cu, nvcc,
# no MLX headers) and the eval_gpu glue (*.cpp, host compiler, MLX's CUDA
# headers) to _ext. Set-up and the flags a pip build needs: docs/cuda.md.
#
# Cache variables:
#   FLASHSNN_CUDA_ARCHITECTURES  GPUs to build machine code for, plus PTX
#   FMT_INCLUDE_DIR              folder holding fmt/format.h (MLX's CUDA
#                                headers include it; the wheels lack it)
# MLX's own config (find_package(MLX) above) needs CUDAToolkit and cuDNN's
# headers: CUDNN_INCLUDE_PATH / CUDNN_LIBRARY_PATH for pip's nvidia-cudnn-cu13.

# sm_80 (A100), sm_86 (RTX 30xx, A10), sm_89 (L4, RTX 40xx), sm_90 (H100,
# H200) as machine code, and compute_90 PTX that newer GPUs (Blackwell)
# compile at load time. CUDA 13 builds nothing older than sm_75.
# (scripts/gpu/build_cuda.sh checks the binary for this same default list.)
set(FLASHSNN_CUDA_ARCHITECTURES "" CACHE STRING
    "CUDA architectures for flashsnn's kernels, CMake CUDA_ARCHITECTURES syntax (empty: the default)")
set(FLASHSNN_CUDA_ARCHS "${FLASHSNN_CUDA_ARCHITECTURES}")
if(NOT FLASHSNN_CUDA_ARCHS)
  set(FLASHSNN_CUDA_ARCHS "80-real;86-real;89-real;90-real;90-virtual")
endif()

# MLX's config found the toolkit; use its nvcc unless one was named.
if(NOT CMAKE_CUDA_COMPILER AND CUDAToolkit_NVCC_EXECUTABLE)
  set(CMAKE_CUDA_COMPILER "${CUDAToolkit_NVCC_EXECUTABLE}")
endif()
if(NOT CMAKE_CUDA_ARCHITECTURES)
  # Only so that enable_language does not probe for a default; the target
  # property below is what counts.
  set(CMAKE_CUDA_ARCHITECTURES 90)
endif()
enable_language(CUDA)

file(GLOB FLASHSNN_CUDA_SOURCES CONFIGURE_DEPENDS
  ${CMAKE_CURRENT_LIST_DIR}/*.cu ${CMAKE_CURRENT_LIST_DIR}/*.cpp)
target_sources(_ext PRIVATE ${FLASHSNN_CUDA_SOURCES})

set_target_properties(_ext PROPERTIES
  CUDA_ARCHITECTURES "${FLASHSNN_CUDA_ARCHS}"
  CUDA_STANDARD 17            # the .cu files see no MLX (C++20) header
  CUDA_STANDARD_REQUIRED ON
  CUDA_SEPARABLE_COMPILATION OFF
  # libmlx.so carries its own static cudart; ours must be static too (and
  # separate): the kernels are resolved to CUfunctions through it (leaky.cu).
  CUDA_RUNTIME_LIBRARY Static)
target_link_libraries(_ext PRIVATE CUDA::cudart_static)

# Float32 spikes must match the CPU kernel and the reference bit for bit:
# no FMA contraction (nvcc contracts a*b+c by default; measured on an H100, a
# default build flipped spikes against the CPU at T=100), no flush-to-zero,
# IEEE division and square root. Never --use_fast_math.
target_compile_options(_ext PRIVATE
  $<$<COMPILE_LANGUAGE:CUDA>:-fmad=false --ftz=false --prec-div=true --prec-sqrt=true
  -Xcompiler=-ffp-contract=off>)

# fmt for MLX's headers (mlx/backend/cuda/lru_cache.h), header-only.
set(FMT_INCLUDE_DIR "" CACHE PATH "folder holding fmt/format.h (e.g. Debian libfmt-dev's /usr/include)")
if(FMT_INCLUDE_DIR)
  if(NOT EXISTS "${FMT_INCLUDE_DIR}/fmt/format.h")
    message(FATAL_ERROR "flashsnn: FMT_INCLUDE_DIR=${FMT_INCLUDE_DIR} has no fmt/format.h")
  endif()
  target_include_directories(_ext SYSTEM PRIVATE "${FMT_INCLUDE_DIR}")
  target_compile_definitions(_ext PRIVATE $<$<COMPILE_LANGUAGE:CXX>:FMT_HEADER_ONLY>)
else()
  find_package(fmt CONFIG QUIET)
  if(TARGET fmt::fmt-header-only)
    target_link_libraries(_ext PRIVATE fmt::fmt-header-only)
  else()
    message(FATAL_ERROR
      "flashsnn: MLX's CUDA headers need fmt (<fmt/format.h>), which the mlx-cuda wheel "
      "does not ship. Install it (Debian/Ubuntu: apt-get install libfmt-dev) or pass "
      "-DFMT_INCLUDE_DIR=<folder holding fmt/format.h> (pip: -C cmake.define.FMT_INCLUDE_DIR=...; "
      "scripts/gpu/fetch_fmt.sh DIR fetches the headers without installing). See docs/cuda.md.")
  endif()
endif()

message(STATUS "flashsnn: CUDA kernels for ${FLASHSNN_CUDA_ARCHS} "
               "(nvcc ${CMAKE_CUDA_COMPILER_VERSION})")

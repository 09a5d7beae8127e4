# CUDA backend (csrc/), included by the top-level CMakeLists.txt when the
# installed MLX is its CUDA build (mlx-cuda-13). Adds the kernels (*.cu, nvcc,
# no MLX headers) and the eval_gpu glue (*.cpp, host compiler, MLX's CUDA
# headers) to _ext. Set-up and the flags a pip build needs: docs/cuda.md.
#
# Cache variables:
#   FLASHSNN_CUDA_ARCHITECTURES  GPUs to build machine code for, plus PTX
#   FMT_INCLUDE_DIR              folder holding fmt/format.h (MLX's CUDA
#                                headers include it; the wheels lack it)
#   FLASHSNN_FMT_URL             where to fetch fmt 12.1.0 when none is found
# MLX's own config (find_package(MLX) above) needs CUDAToolkit and cuDNN;
# csrc/mlx_cudnn.cmake answers the cuDNN part unless CUDNN_INCLUDE_PATH is given.

# The default is one PTX pass for compute_80 compiled to sm_80 and sm_90
# machine code, the PTX kept: sm_80 code runs on sm_86 (RTX 30xx, A10) and
# sm_89 (L4, RTX 40xx) too (same major version), sm_90 on H100/H200, and
# newer GPUs (Blackwell) compile the PTX at load time. Our kernels use nothing
# newer than sm_80, so compute_80 and compute_90 PTX are the same text and
# sm_90 machine code from either is byte for byte the same (nvcc 13.0,
# the float32 kernels, 2026-12-03; docs/cuda.md, "Build time"). One cicc pass
# instead of four: 141 s instead of about 380 s for those kernels, and the
# whole default build 9 min 6 s on 2 cores. CMake's CUDA_ARCHITECTURES cannot
# say "one PTX, two machine codes", hence the explicit --generate-code.
# CUDA 13 builds nothing older than sm_75.
# (scripts/gpu/build_cuda.sh checks the binary for the same list.)
set(FLASHSNN_CUDA_ARCHITECTURES "" CACHE STRING
    "CUDA architectures for flashsnn's kernels, CMake CUDA_ARCHITECTURES syntax (empty: the default)")
set(FLASHSNN_CUDA_DEFAULT_GENCODE "--generate-code=arch=compute_80,code=[compute_80,sm_80,sm_90]")

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

# nvcc reports its host compiler's library folders as CUDA's implicit link
# folders, and CMake puts them on _ext's link line, although the C++
# compiler links _ext. On the GPU host nvcc's g++ (/opt/gcc, first on PATH)
# keeps only a static libstdc++ in its folder: _ext got a libstdc++.a of its
# own beside the libstdc++.so.6 that libmlx.so loads, and every flashsnn error
# message (the first std::ostream use in _ext) segfaulted, on the CPU stream
# too. Only the CUDA toolkit's folders are kept here; that compiler's own
# default link is caught after linking (CMakeLists.txt) and avoided with
# CXX=/usr/bin/g++ CUDAHOSTCXX=/usr/bin/g++ (docs/cuda.md).
set(FLASHSNN_CUDA_LINK_DIRS "")
foreach(dir ${CMAKE_CUDA_IMPLICIT_LINK_DIRECTORIES})
  file(GLOB cuda_libs "${dir}/libcudart*" "${dir}/libcudadevrt*" "${dir}/libcuda.so*")
  if(cuda_libs)
    list(APPEND FLASHSNN_CUDA_LINK_DIRS "${dir}")
  endif()
endforeach()
set(CMAKE_CUDA_IMPLICIT_LINK_DIRECTORIES "${FLASHSNN_CUDA_LINK_DIRS}")

file(GLOB FLASHSNN_CUDA_KERNELS CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/*.cu)
file(GLOB FLASHSNN_CUDA_GLUE CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/*.cpp)
target_sources(_ext PRIVATE ${FLASHSNN_CUDA_KERNELS} ${FLASHSNN_CUDA_GLUE})

if(FLASHSNN_CUDA_ARCHITECTURES)
  set_target_properties(_ext PROPERTIES CUDA_ARCHITECTURES "${FLASHSNN_CUDA_ARCHITECTURES}")
  set(FLASHSNN_CUDA_ARCHS "${FLASHSNN_CUDA_ARCHITECTURES}")
else()
  set_target_properties(_ext PROPERTIES CUDA_ARCHITECTURES OFF)
  set_property(SOURCE ${FLASHSNN_CUDA_KERNELS} APPEND PROPERTY COMPILE_OPTIONS
               "${FLASHSNN_CUDA_DEFAULT_GENCODE}")
  set(FLASHSNN_CUDA_ARCHS "sm_80, sm_90 and compute_80 PTX")
endif()
set_target_properties(_ext PROPERTIES
  CUDA_STANDARD 17            # the .cu files see no MLX (C++20) header
  CUDA_STANDARD_REQUIRED ON
  CUDA_SEPARABLE_COMPILATION OFF
  # libmlx.so carries its own static cudart; ours must be static too (and
  # separate): the kernels are resolved to CUfunctions through it (family.cu).
  CUDA_RUNTIME_LIBRARY Static)
target_link_libraries(_ext PRIVATE CUDA::cudart_static)

# Float32 spikes must match the CPU kernel and the reference bit for bit:
# no FMA contraction (nvcc contracts a*b+c by default; measured on an H100, a
# default build flipped spikes against the CPU at T=100), no flush-to-zero,
# IEEE division and square root. Never --use_fast_math.
target_compile_options(_ext PRIVATE
  $<$<COMPILE_LANGUAGE:CUDA>:-fmad=false --ftz=false --prec-div=true --prec-sqrt=true
  -Xcompiler=-ffp-contract=off>)

# fmt for MLX's headers (mlx/backend/cuda/lru_cache.h includes
# <fmt/format.h>; the mlx-cuda wheels do not ship it), header-only. In order:
# FMT_INCLUDE_DIR, an installed fmt (CMake package, then the system headers,
# e.g. Debian's libfmt-dev), else fmt 12.1.0 (MLX's own) fetched from
# GitHub at its pinned commit, its three headers checked against their
# SHA-256 (git blobs of that commit).
set(FMT_INCLUDE_DIR "" CACHE PATH "folder holding fmt/format.h (e.g. Debian libfmt-dev's /usr/include)")
set(FLASHSNN_FMT_URL
    "https://github.com/fmtlib/fmt/archive/407c905e45ad75fc29bf0f9bb7c5c2fd3475976f.tar.gz"
    CACHE STRING "fmt 12.1.0 source archive, fetched when no fmt is installed")
if(NOT FMT_INCLUDE_DIR)
  find_package(fmt CONFIG QUIET)
  if(NOT TARGET fmt::fmt-header-only)
    find_path(_fs_fmt_dir fmt/format.h)
    if(_fs_fmt_dir)
      set(FMT_INCLUDE_DIR "${_fs_fmt_dir}")
    else()
      set(_fs_fmt "${CMAKE_CURRENT_BINARY_DIR}/fmt-12.1.0")
      if(NOT EXISTS "${_fs_fmt}/include/fmt/format.h")
        message(STATUS "flashsnn: no fmt installed; fetching fmt 12.1.0 from ${FLASHSNN_FMT_URL}")
        file(DOWNLOAD "${FLASHSNN_FMT_URL}" "${CMAKE_CURRENT_BINARY_DIR}/fmt.tar.gz"
             STATUS _fs_status TIMEOUT 120)
        list(GET _fs_status 0 _fs_code)
        if(NOT _fs_code EQUAL 0)
          list(GET _fs_status 1 _fs_why)
          message(FATAL_ERROR
            "flashsnn: MLX's CUDA headers need fmt (<fmt/format.h>), which the mlx-cuda wheel "
            "does not ship; none is installed, and fetching it failed (${_fs_why}). Install it "
            "(Debian/Ubuntu: apt-get install libfmt-dev) or pass -DFMT_INCLUDE_DIR=<folder "
            "holding fmt/format.h> (pip: -C cmake.define.FMT_INCLUDE_DIR=...; "
            "scripts/gpu/fetch_fmt.sh DIR fetches Debian's headers). See docs/cuda.md.")
        endif()
        file(ARCHIVE_EXTRACT INPUT "${CMAKE_CURRENT_BINARY_DIR}/fmt.tar.gz"
             DESTINATION "${CMAKE_CURRENT_BINARY_DIR}/fmt-src" PATTERNS "*/include/fmt/*")
        file(GLOB _fs_fmt_src "${CMAKE_CURRENT_BINARY_DIR}/fmt-src/*/include")
        foreach(_fs_pair "base.h=73ba80ca15c02d6826a611d1651ca6f1495ec127815e257a5d6552d6f6ad313e"
                         "format.h=b4c65350362bf40e76a8e6b450587d912c7081b6eafeafaf3d7bcf53153e17fc"
                         "format-inl.h=e7baf108b84e89b29915bb35733540f8f4262cd8f4b41c15754eed4d2f185f61")
          string(REPLACE "=" ";" _fs_pair "${_fs_pair}")
          list(GET _fs_pair 0 _fs_name)
          list(GET _fs_pair 1 _fs_want)
          set(_fs_got "")
          if(EXISTS "${_fs_fmt_src}/fmt/${_fs_name}")
            file(SHA256 "${_fs_fmt_src}/fmt/${_fs_name}" _fs_got)
          endif()
          if(NOT _fs_got STREQUAL _fs_want)
            message(FATAL_ERROR "flashsnn: fmt/${_fs_name} from ${FLASHSNN_FMT_URL} is not fmt "
                                "12.1.0's (SHA-256 '${_fs_got}'); install libfmt-dev or pass "
                                "-DFMT_INCLUDE_DIR instead")
          endif()
        endforeach()
        file(REMOVE_RECURSE "${_fs_fmt}")
        file(COPY "${_fs_fmt_src}/fmt" DESTINATION "${_fs_fmt}/include")
      endif()
      set(FMT_INCLUDE_DIR "${_fs_fmt}/include")
    endif()
  endif()
endif()
if(FMT_INCLUDE_DIR)
  if(NOT EXISTS "${FMT_INCLUDE_DIR}/fmt/format.h")
    message(FATAL_ERROR "flashsnn: FMT_INCLUDE_DIR=${FMT_INCLUDE_DIR} has no fmt/format.h")
  endif()
  target_include_directories(_ext SYSTEM PRIVATE "${FMT_INCLUDE_DIR}")
  target_compile_definitions(_ext PRIVATE $<$<COMPILE_LANGUAGE:CXX>:FMT_HEADER_ONLY>)
  message(STATUS "flashsnn: fmt headers from ${FMT_INCLUDE_DIR}")
else()
  target_link_libraries(_ext PRIVATE fmt::fmt-header-only)
  message(STATUS "flashsnn: fmt from its CMake package (${fmt_DIR})")
endif()

message(STATUS "flashsnn: CUDA kernels for ${FLASHSNN_CUDA_ARCHS} "
               "(nvcc ${CMAKE_CUDA_COMPILER_VERSION})")

# Included by the top-level CMakeLists.txt before find_package(MLX), when the
# MLX found is its CUDA build (mlx-cuda-13).
#
# That build's CMake config requires cuDNN: its FindCUDNN.cmake looks for
# cudnn.h, cudnn_version.h (for the major version) and libcudnn,
# libcudnn_graph and libcudnn_engines_runtime_compiled by their unversioned
# names, which pip's nvidia-cudnn-cu13 does not have (it ships *.so.9). But
# nothing of flashsnn includes or links cuDNN: MLX's imported target links
# nothing (INTERFACE_LINK_LIBRARIES ""), libmlx.so names libcudnn.so.9
# itself, and no MLX header flashsnn includes pulls in cudnn.h. So unless
# CUDNN_INCLUDE_PATH names a real cuDNN, a stand-in in the build tree
# satisfies the config: headers that say cuDNN 9 (what mlx-cuda-13 0.32.4
# requires: nvidia-cudnn-cu13==9.*) and stop any compile that includes them,
# and empty library files.

if(CUDNN_INCLUDE_PATH)
  message(STATUS "flashsnn: cuDNN for MLX's CMake config: ${CUDNN_INCLUDE_PATH}")
  return()
endif()

set(_fs_cudnn "${CMAKE_CURRENT_BINARY_DIR}/cudnn-standin")
file(MAKE_DIRECTORY "${_fs_cudnn}/include" "${_fs_cudnn}/lib")
file(WRITE "${_fs_cudnn}/include/cudnn_version.h"
  "// flashsnn's stand-in (csrc/mlx_cudnn.cmake): MLX's CMake config reads the major version.\n"
  "#error \"cuDNN stand-in: flashsnn builds without cuDNN; pass CUDNN_INCLUDE_PATH for a real one\"\n"
  "#define CUDNN_MAJOR 9\n")
file(WRITE "${_fs_cudnn}/include/cudnn.h"
  "#error \"cuDNN stand-in: flashsnn builds without cuDNN; pass CUDNN_INCLUDE_PATH for a real one\"\n")
foreach(_fs_lib cudnn cudnn_graph cudnn_engines_runtime_compiled)
  if(NOT EXISTS "${_fs_cudnn}/lib/lib${_fs_lib}.so")
    file(WRITE "${_fs_cudnn}/lib/lib${_fs_lib}.so" "")
  endif()
endforeach()
set(CUDNN_INCLUDE_PATH "${_fs_cudnn}/include")
set(CUDNN_LIBRARY_PATH "${_fs_cudnn}/lib")
message(STATUS "flashsnn: MLX's CMake config asks for cuDNN, which flashsnn neither includes "
               "nor links: a stand-in in ${_fs_cudnn} answers it")

# Fails the build when the linked _ext does not load libstdc++.so.6, i.e.
# when a static libstdc++ was linked into it (see CMakeLists.txt).
#   cmake -DREADELF=readelf -DMODULE=path/to/_ext.so -P check_shared_libstdcxx.cmake
execute_process(COMMAND "${READELF}" -d "${MODULE}" OUTPUT_VARIABLE dyn RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "flashsnn: readelf -d ${MODULE} failed (${rc})")
endif()
if(NOT dyn MATCHES "libstdc\\+\\+\\.so")
  message(FATAL_ERROR
    "flashsnn: ${MODULE} does not load libstdc++.so: a static libstdc++ was linked into it, "
    "beside the shared one libmlx.so loads, and its first error message would crash. The "
    "compiler's library folders hold only libstdc++.a; point CMAKE_CXX_COMPILER (and "
    "CMAKE_CUDA_HOST_COMPILER) at a g++ whose libstdc++.so is found, e.g. /usr/bin/g++.")
endif()

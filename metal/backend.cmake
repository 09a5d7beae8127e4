# Metal backend, included by the top-level CMakeLists.txt when the installed
# MLX is its Metal build. Adds the eval_gpu glue (metal/*.cpp) and the
# kernels, embedded as source: metal/embed.py inlines each
# metal/kernels/<family>.metal with the headers it includes into a C++ string,
# which the Metal device compiles at first use. No Metal toolchain is needed
# to build (docs/metal.md, "How the kernels reach the GPU").

file(GLOB FLASHSNN_METAL_HOST CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/*.cpp)
file(GLOB FLASHSNN_METAL_KERNELS CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/kernels/*.metal)
# Everything a kernel may include (embed.py refuses other system headers).
file(GLOB FLASHSNN_METAL_DEPS CONFIGURE_DEPENDS
  ${CMAKE_CURRENT_LIST_DIR}/kernels/*.h ${PROJECT_SOURCE_DIR}/src/step/*.h)

set(FLASHSNN_METAL_GEN ${CMAKE_CURRENT_BINARY_DIR}/metal_generated)
foreach(kernel ${FLASHSNN_METAL_KERNELS})
  get_filename_component(stem ${kernel} NAME_WE)
  set(out ${FLASHSNN_METAL_GEN}/${stem}_metal_source.cpp)
  add_custom_command(
    OUTPUT ${out}
    COMMAND "${Python_EXECUTABLE}" ${CMAKE_CURRENT_LIST_DIR}/embed.py ${kernel}
            --cpp ${out} --symbol ${stem}_metal_source
    DEPENDS ${kernel} ${FLASHSNN_METAL_DEPS} ${CMAKE_CURRENT_LIST_DIR}/embed.py
    COMMENT "Embedding metal/kernels/${stem}.metal"
    VERBATIM)
  target_sources(_ext PRIVATE ${out})
endforeach()

target_sources(_ext PRIVATE ${FLASHSNN_METAL_HOST})
# "metal/embedded.h" for the generated sources. metal-cpp (<Metal/Metal.hpp>,
# which mlx/backend/metal/device.h includes) and the Metal frameworks come
# with the mlx target of MLX's Metal build.
target_include_directories(_ext PRIVATE ${PROJECT_SOURCE_DIR})

// Every family's CUDA forward kernels for x in float16 (kernels.cuh).
#include "kernels.cuh"

namespace flashsnn::cuda {
template const void* kernel_symbol<__half, false>(int, int, int, int);
}  // namespace flashsnn::cuda

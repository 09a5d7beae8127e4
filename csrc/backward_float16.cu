// Every family's CUDA backward kernels for x in float16 (kernels.cuh).
#include "kernels.cuh"

namespace flashsnn::cuda {
template const void* kernel_symbol<__half, true>(int, int, int, int);
}  // namespace flashsnn::cuda

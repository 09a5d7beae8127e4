// Every family's CUDA forward kernels for x in float32 (kernels.cuh).
#include "kernels.cuh"

namespace flashsnn::cuda {
template const void* kernel_symbol<float, false>(int, int, int, int);
}  // namespace flashsnn::cuda

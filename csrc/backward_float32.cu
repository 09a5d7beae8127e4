// Every family's CUDA backward kernels for x in float32 (kernels.cuh).
#include "kernels.cuh"

namespace flashsnn::cuda {
template const void* kernel_symbol<float, true>(int, int, int, int);
}  // namespace flashsnn::cuda

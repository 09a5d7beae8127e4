// Every family's CUDA forward kernels for x in bfloat16 (kernels.cuh).
#include "kernels.cuh"

namespace flashsnn::cuda {
template const void* kernel_symbol<__nv_bfloat16, false>(int, int, int, int);
}  // namespace flashsnn::cuda

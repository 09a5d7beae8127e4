// Every family's CUDA backward kernels for x in bfloat16 (kernels.cuh).
#include "kernels.cuh"

namespace flashsnn::cuda {
template const void* kernel_symbol<__nv_bfloat16, true>(int, int, int, int);
}  // namespace flashsnn::cuda

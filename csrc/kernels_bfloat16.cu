// Every family's CUDA kernels for x in bfloat16 (kernels.cuh); family.cu picks
// them through kernel_symbol<__nv_bfloat16>.
#include "kernels.cuh"

namespace flashsnn::cuda {
template const void* kernel_symbol<__nv_bfloat16>(bool, int, int, int, int);
}  // namespace flashsnn::cuda

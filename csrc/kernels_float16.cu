// Every family's CUDA kernels for x in float16 (kernels.cuh); family.cu picks
// them through kernel_symbol<__half>.
#include "kernels.cuh"

namespace flashsnn::cuda {
template const void* kernel_symbol<__half>(bool, int, int, int, int);
}  // namespace flashsnn::cuda

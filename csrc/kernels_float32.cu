// Every family's CUDA kernels for x in float32 (kernels.cuh); family.cu picks
// them through kernel_symbol<float>.
#include "kernels.cuh"

namespace flashsnn::cuda {
template const void* kernel_symbol<float>(bool, int, int, int, int);
}  // namespace flashsnn::cuda

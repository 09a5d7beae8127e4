// The selective scan's CUDA kernels for u in bfloat16 (scan_kernels.cuh).
#include "scan_kernels.cuh"

namespace flashsnn::cuda {
template const void* scan_symbol<__nv_bfloat16>(bool, int);
}  // namespace flashsnn::cuda

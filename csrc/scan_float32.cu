// The selective scan's CUDA kernels for u in float32 (scan_kernels.cuh).
#include "scan_kernels.cuh"

namespace flashsnn::cuda {
template const void* scan_symbol<float>(bool, int);
}  // namespace flashsnn::cuda

// The selective scan without a GPU backend (see family.cpp here): the Python
// op never routes GPU arrays to these; a direct _ext call on a GPU stream
// gets this message.
#include "../ops/common.h"
#include "../ops/scan.h"

namespace flashsnn {

namespace {
[[noreturn]] void no_gpu() {
  fail("selective_scan",
       "this flashsnn was built without a GPU backend (the MLX it was built against "
       "had neither Metal nor CUDA); run on mx.cpu, use backend='reference', or "
       "rebuild flashsnn against MLX's Metal or CUDA build (see README)");
}
}  // namespace

void ScanForward::eval_gpu(const std::vector<mx::array>&, std::vector<mx::array>&) {
  no_gpu();
}
void ScanBackward::eval_gpu(const std::vector<mx::array>&, std::vector<mx::array>&) {
  no_gpu();
}

}  // namespace flashsnn

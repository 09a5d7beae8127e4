// Leaky without a GPU backend: this build found neither Metal nor CUDA in the
// installed MLX. The Python op never routes GPU arrays here ("auto" takes the
// reference path); a direct _ext call on a GPU stream fails in leaky_check_gpu.
#include "../ops/common.h"
#include "../ops/leaky.h"

namespace flashsnn {

namespace {
[[noreturn]] void no_gpu() {
  fail("leaky",
       "this flashsnn was built without a GPU backend (the MLX it was built against "
       "had neither Metal nor CUDA); run on mx.cpu, use backend='reference', or "
       "rebuild flashsnn against MLX's Metal or CUDA build (see README)");
}
}  // namespace

// leaky_forward calls this for every GPU stream, so the two eval_gpu below
// are never reached through the op.
void leaky_check_gpu(const mx::Stream&) {
  no_gpu();
}

void LeakyForward::eval_gpu(const std::vector<mx::array>&, std::vector<mx::array>&) {
  no_gpu();
}
void LeakyBackward::eval_gpu(const std::vector<mx::array>&, std::vector<mx::array>&) {
  no_gpu();
}

}  // namespace flashsnn

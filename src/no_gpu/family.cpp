// The fused families without a GPU backend: this build found neither Metal
// nor CUDA in the installed MLX. The Python ops never route GPU arrays here
// ("auto" takes the reference path); a direct _ext call on a GPU stream fails
// in family_check_gpu.
#include "../ops/common.h"
#include "../ops/family.h"

namespace flashsnn {

namespace {
[[noreturn]] void no_gpu(const FamilyOptions& o) {
  fail(o.info().name,
       "this flashsnn was built without a GPU backend (the MLX it was built against "
       "had neither Metal nor CUDA); run on mx.cpu, use backend='reference', or "
       "rebuild flashsnn against MLX's Metal or CUDA build (see README)");
}
}  // namespace

// family_forward calls this for every GPU stream, so the two eval_gpu below
// are never reached through the op.
void family_check_gpu(const FamilyOptions& o, const mx::Stream&) {
  no_gpu(o);
}

void FamilyForward::eval_gpu(const std::vector<mx::array>&, std::vector<mx::array>&) {
  no_gpu(opts_);
}
void FamilyBackward::eval_gpu(const std::vector<mx::array>&, std::vector<mx::array>&) {
  no_gpu(opts_);
}

}  // namespace flashsnn

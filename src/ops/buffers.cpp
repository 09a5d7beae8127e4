// What the backends' output caches share (src/ops/buffers.h); each backend
// implements the rest (src/no_gpu/buffers.cpp, csrc/buffers.cpp, metal/).
#include "buffers.h"

#include <cstdlib>
#include <string>

#include "common.h"

namespace flashsnn {

size_t initial_cache_limit(size_t device_bytes) {
  const char* v = std::getenv("FLASHSNN_CACHE_LIMIT_MB");
  if (v == nullptr) return device_bytes / 8;
  char* end = nullptr;
  const long long mb = std::strtoll(v, &end, 10);
  if (end == v || *end != '\0' || mb < 0)
    fail("memory",
         std::string("FLASHSNN_CACHE_LIMIT_MB must be a whole number of MB >= 0; got '") + v + "'");
  return size_t(mb) << 20;
}

}  // namespace flashsnn

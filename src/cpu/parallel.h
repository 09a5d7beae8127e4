// A minimal parallel-for for the CPU kernels: neurons are independent, so
// each thread takes one contiguous range. MLX runs a CPU primitive on one
// stream thread; splitting a large layer over both cores of a 2-core EPYC
// took the Leaky forward+backward at T=100 B=32 N=1024 from 9.2 to 5.9 ms.
#pragma once

#include <algorithm>
#include <cstdint>
#include <thread>
#include <vector>

namespace flashsnn::cpu {

// f(begin, end) over [0, n), in chunks that are multiples of `align`;
// threads only when each gets at least `min_work` units of `work_per_item`.
template <typename F>
void parallel_for(int64_t n, int64_t work_per_item, F&& f,
                  int64_t align = 64, int64_t min_work = int64_t(1) << 17) {
  int64_t hw = std::max<int64_t>(1, std::thread::hardware_concurrency());
  int64_t by_work = (n * work_per_item) / min_work;
  int64_t nt = std::max<int64_t>(1, std::min({hw, by_work, (n + align - 1) / align}));
  if (nt == 1) {
    f(int64_t(0), n);
    return;
  }
  int64_t chunk = ((n + nt - 1) / nt + align - 1) / align * align;
  std::vector<std::thread> pool;
  for (int64_t b = chunk; b < n; b += chunk) {
    pool.emplace_back([&f, b, e = std::min(n, b + chunk)] { f(b, e); });
  }
  f(int64_t(0), std::min(n, chunk));
  for (auto& t : pool) t.join();
}

}  // namespace flashsnn::cpu

// Checks src/cpu/parallel.h on its own (built and run by test_parallel.py):
// every index covered once, exceptions from the caller's and the workers'
// ranges reach the caller, a parallel_for inside a task or on a second thread
// runs (with threads of its own), the workers are reused between calls, and a
// child after fork() gets a pool of its own instead of waiting forever for
// its parent's threads. Exits non-zero with a message on the first failure.
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "cpu/parallel.h"

using flashsnn::cpu::parallel_for;

namespace {

int failures = 0;

void check(bool ok, const std::string& what) {
  if (!ok) {
    std::printf("FAIL %s\n", what.c_str());
    ++failures;
  }
}

constexpr int64_t kWork = int64_t(1) << 17;  // parallel_for's min_work

long covered_once(int64_t n, int64_t work) {
  std::vector<std::atomic<int>> hit(n);
  for (auto& h : hit) h = 0;
  parallel_for(n, work, [&](int64_t a, int64_t b) {
    for (int64_t i = a; i < b; ++i) hit[i]++;
  });
  long bad = 0;
  for (auto& h : hit) bad += h != 1;
  return bad;
}

long sum_of_ranges() {
  std::atomic<long> s{0};
  parallel_for(int64_t(1) << 16, kWork, [&](int64_t a, int64_t b) { s += b - a; });
  return s;
}

}  // namespace

int main() {
  const bool threads = std::thread::hardware_concurrency() >= 2;
  for (int64_t n : {1, 63, 64, 65, 1000, 4097, 123457})
    for (int64_t work : {int64_t(1), kWork})
      check(covered_once(n, work) == 0,
            "n=" + std::to_string(n) + " work=" + std::to_string(work) + " covered once");

  for (int thrower : {0, 1}) {
    bool caught = false;
    try {
      parallel_for(int64_t(1) << 16, kWork, [&](int64_t a, int64_t) {
        if ((a > 0) == bool(thrower)) throw std::runtime_error("range failed");
      });
    } catch (const std::runtime_error& e) {
      caught = std::string(e.what()) == "range failed";
    }
    check(caught || (thrower == 1 && !threads),
          std::string("exception from the ") + (thrower ? "worker's" : "caller's") + " range");
  }
  check(sum_of_ranges() == (1 << 16), "pool still works after exceptions");

  std::atomic<long> nested{0}, outer{0};
  parallel_for(int64_t(1) << 16, kWork, [&](int64_t, int64_t) {
    ++outer;
    parallel_for(int64_t(1) << 16, kWork, [&](int64_t a, int64_t b) { nested += b - a; });
  });
  check(nested == outer * (1 << 16) && outer >= (threads ? 2 : 1),
        "parallel_for inside a task (" + std::to_string(outer) + " outer ranges)");

  std::vector<long> sums(4);
  std::vector<std::thread> callers;
  for (int i = 0; i < 4; ++i)
    callers.emplace_back([&sums, i] {
      for (int r = 0; r < 200; ++r) sums[i] += sum_of_ranges();
    });
  for (auto& t : callers) t.join();
  for (long s : sums) check(s == 200L * (1 << 16), "concurrent callers");

  if (threads) {
    std::set<long> helpers;
    std::mutex m;
    const long caller = syscall(SYS_gettid);
    for (int r = 0; r < 50; ++r)
      parallel_for(int64_t(1) << 16, kWork, [&](int64_t, int64_t) {
        const long id = syscall(SYS_gettid);
        if (id != caller) {
          std::lock_guard<std::mutex> l(m);
          helpers.insert(id);
        }
      });
    check(helpers.size() + 1 <= std::thread::hardware_concurrency(),
          "the same workers run every call (" + std::to_string(helpers.size()) + " threads seen)");
  }

  const pid_t child = fork();
  if (child == 0) {
    // A child that used its parent's workers (absent here) would wait
    // forever; the alarm ends it, and the check fails.
    alarm(20);
    _exit(sum_of_ranges() == (1 << 16) ? 0 : 3);
  }
  int status = 0;
  waitpid(child, &status, 0);
  check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "parallel_for in a forked child");

  if (failures == 0) std::printf("ok\n");
  return failures == 0 ? 0 : 1;
}

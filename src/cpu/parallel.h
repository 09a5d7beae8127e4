// A minimal parallel-for for the CPU kernels: neurons are independent, so
// each thread takes one contiguous range. MLX runs a CPU primitive on one
// stream thread; splitting a large layer over both cores of a 2-core EPYC
// took a one-state forward+backward at T=100 B=32 N=1024 from 9.2 to 5.9 ms.
//
// The helper threads stay between calls (Workers) and busy-wait a little
// before they sleep. On that machine (a VM: waking a sleeping vCPU costs an
// interrupt and a VM exit) one parallel region with nothing in it took
// 45-51 us when it started and joined a std::thread, 46-73 us when it woke
// a worker sleeping on a condition variable, and 7-9 us when the worker was
// still spinning. A forward+backward runs two regions back to back, so the
// worker that ran the forward catches the backward while it spins: whole
// calls (medians over 8 alternating processes, three runs) at T=25 B=128
// N=256: forward+backward 0.88 / 1.10 -> 0.61 / 0.83 ms, forward
// 0.30 / 0.33 -> 0.20 / 0.26 ms; at T=100 B=32 N=1024: forward+backward
// 2.82 / 2.23 / 3.34 -> 2.05 / 2.12 / 2.91 ms (this VM's speed drifts
// between minutes; only pairs of one run compare).
#pragma once

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace flashsnn::cpu {

// task(i), keeping what it throws in errors[i]: an exception must not leave
// a thread (std::terminate); the caller rethrows it.
inline void call_keeping_error(const std::function<void(int)>& task, int i,
                               std::vector<std::exception_ptr>& errors) {
  try {
    task(i);
  } catch (...) {
    errors[i] = std::current_exception();
  }
}

inline void rethrow_first(const std::vector<std::exception_ptr>& errors) {
  for (const auto& e : errors)
    if (e) std::rethrow_exception(e);
}

// Threads that wait for parallel regions: run(n, task) calls task(0) on the
// caller and task(1..n-1) on waiting workers, and returns when all are done,
// rethrowing the first exception any of them threw. One region at a time:
// a second caller (another MLX stream, or a task that itself calls
// parallel_for) gets false and runs with threads of its own.
class Workers {
 public:
  // Busy-waits up to kSpin for ready() (then the caller sleeps on a
  // condition variable). 50 us: longer than the gap between the two kernels
  // of a forward+backward; the price is a core kept busy that long after a
  // region (parallel_for splits only work of >= 2^17 neuron-steps a thread,
  // some 40 us and more).
  static constexpr auto kSpin = std::chrono::microseconds(50);
  template <typename P>
  static void spin(P&& ready) {
    const auto end = std::chrono::steady_clock::now() + kSpin;
    while (!ready()) {
      for (int k = 0; k < 16; ++k) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
      }
      if (std::chrono::steady_clock::now() > end) return;
    }
  }
  // The process's pool, created on first use with `size` workers. A child
  // after fork() has none of its parent's threads, so it gets a new pool
  // (the parent's is left, never destroyed: its threads may be waiting).
  static Workers& get(int size) {
    static std::mutex create;
    static Workers* pool = nullptr;
    std::lock_guard<std::mutex> l(create);
    if (pool == nullptr || pool->pid_ != getpid()) pool = new Workers(size);
    return *pool;
  }

  int size() const { return int(threads_.size()); }

  bool run(int n, const std::function<void(int)>& task) {
    std::unique_lock<std::mutex> busy(submit_, std::try_to_lock);
    if (!busy.owns_lock() || n - 1 > size()) return false;
    std::vector<std::exception_ptr> errors(n);
    {
      std::lock_guard<std::mutex> l(m_);
      task_ = &task;
      errors_ = &errors;
      items_ = n;
      pending_ = n - 1;
      ++generation_;
    }
    wake_.notify_all();
    call_keeping_error(task, 0, errors);
    {
      // The workers' halves end about when the caller's does: spin first.
      spin([&] { return pending_.load(std::memory_order_acquire) == 0; });
      std::unique_lock<std::mutex> l(m_);
      done_.wait(l, [&] { return pending_.load() == 0; });
      task_ = nullptr;
    }
    rethrow_first(errors);
    return true;
  }

 private:
  explicit Workers(int size) : pid_(getpid()) {
    for (int w = 1; w <= size; ++w) {
      threads_.emplace_back([this, w] { loop(w); });
      threads_.back().detach();
    }
  }

  void loop(int item) {
    uint64_t seen = 0;
    bool worked = false;
    for (;;) {
      // Only a worker that just ran a task spins: the next region usually
      // follows at once (the backward after the forward), and idle workers
      // of a many-core machine then do not all burn their cores.
      if (worked) spin([&] { return generation_.load(std::memory_order_acquire) != seen; });
      std::unique_lock<std::mutex> l(m_);
      wake_.wait(l, [&] { return generation_.load() != seen; });
      seen = generation_;
      worked = item < items_;
      if (!worked) continue;
      const auto* task = task_;
      auto* errors = errors_;
      l.unlock();
      call_keeping_error(*task, item, *errors);
      l.lock();
      if (pending_.fetch_sub(1) == 1) done_.notify_one();
    }
  }

  const pid_t pid_;
  std::vector<std::thread> threads_;
  std::mutex submit_;
  std::mutex m_;
  std::condition_variable wake_, done_;
  const std::function<void(int)>* task_ = nullptr;
  std::vector<std::exception_ptr>* errors_ = nullptr;
  std::atomic<uint64_t> generation_{0};
  int items_ = 0;
  std::atomic<int> pending_{0};
};

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
  const int64_t chunk = ((n + nt - 1) / nt + align - 1) / align * align;
  const int items = int((n + chunk - 1) / chunk);
  const std::function<void(int)> task = [&](int i) {
    f(i * chunk, std::min(n, (i + 1) * chunk));
  };
  if (Workers::get(int(hw) - 1).run(items, task)) return;
  std::vector<std::exception_ptr> errors(items);
  std::vector<std::thread> own;
  for (int i = 1; i < items; ++i)
    own.emplace_back([&, i] { call_keeping_error(task, i, errors); });
  call_keeping_error(task, 0, errors);
  for (auto& t : own) t.join();
  rethrow_first(errors);
}

}  // namespace flashsnn::cpu

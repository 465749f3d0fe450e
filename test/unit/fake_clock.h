#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <stop_token>
#include <vector>

#include "kube/clock.h"

namespace capwatch::kube::testing {

// Time moves only when someone sleeps or Advance() is called.
//
// By default a sleep moves time forward by its own length and returns at once, so a loop on
// another thread runs through its sleeps as fast as it can. A test that must know where such a
// loop is calls HoldSleepers(): from then on a sleep waits (until its stop token is requested)
// for Advance() to reach its wake time, and sleepers() says how many are waiting.
class FakeClock final : public Clock {
 public:
  TimePoint Now() const override {
    std::lock_guard lock(mu_);
    return now_;
  }
  std::chrono::system_clock::time_point WallNow() const override {
    std::lock_guard lock(mu_);
    return wall_ + (now_ - TimePoint{});
  }
  bool SleepFor(Duration d, const std::stop_token& stop) override {
    if (stop.stop_requested()) return false;
    std::unique_lock lock(mu_);
    slept_.push_back(d);
    if (!hold_) {
      if (d > Duration::zero()) now_ += d;
      return true;
    }
    const auto it = waking_.insert(now_ + std::max(d, Duration::zero()));
    const TimePoint wake = *it;
    const bool woke = cv_.wait(lock, stop, [&] { return now_ >= wake; });
    if (!woke) waking_.erase(waking_.find(wake));
    return woke;
  }
  void Advance(Duration d) {
    {
      std::lock_guard lock(mu_);
      if (d > Duration::zero()) now_ += d;
      // The sleepers this wakes stop counting now, before their threads run.
      waking_.erase(waking_.begin(), waking_.upper_bound(now_));
    }
    cv_.notify_all();
  }
  void HoldSleepers() {
    std::lock_guard lock(mu_);
    hold_ = true;
  }
  size_t sleepers() const {
    std::lock_guard lock(mu_);
    return waking_.size();
  }
  std::vector<Duration> slept() const {
    std::lock_guard lock(mu_);
    return slept_;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable_any cv_;
  TimePoint now_{std::chrono::hours(1000)};
  std::chrono::system_clock::time_point wall_{
      std::chrono::sys_days{std::chrono::year{2026} / 11 / 29}};
  std::vector<Duration> slept_;
  bool hold_ = false;
  std::multiset<TimePoint> waking_;  // wake times of the sleepers that wait (hold_ only)
};

}  // namespace capwatch::kube::testing

#pragma once

#include <chrono>
#include <mutex>
#include <stop_token>
#include <vector>

#include "kube/clock.h"

namespace capwatch::kube::testing {

// Time moves only when someone sleeps or Advance() is called.
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
    Advance(d);
    std::lock_guard lock(mu_);
    slept_.push_back(d);
    return true;
  }
  void Advance(Duration d) {
    std::lock_guard lock(mu_);
    if (d > Duration::zero()) now_ += d;
  }
  std::vector<Duration> slept() const {
    std::lock_guard lock(mu_);
    return slept_;
  }

 private:
  mutable std::mutex mu_;
  TimePoint now_{std::chrono::hours(1000)};
  std::chrono::system_clock::time_point wall_{
      std::chrono::sys_days{std::chrono::year{2026} / 11 / 29}};
  std::vector<Duration> slept_;
};

}  // namespace capwatch::kube::testing

#pragma once

#include <mutex>
#include <stop_token>

#include "kube/clock.h"

namespace capwatch::kube {

// A token bucket: `qps` tokens a second, at most `burst` saved up. The client-side limit on
// requests to the API server (--kube-api-qps / --kube-api-burst), shared by all threads.
class TokenBucket {
 public:
  TokenBucket(Clock& clock, double qps, int burst);

  // Takes a token, sleeping until one is there; false if `stop` came first. qps <= 0 means
  // no limit.
  bool Wait(const std::stop_token& stop = {});
  // Takes a token if one is there now.
  bool TryTake();
  // How long until a token would be there (zero when one is).
  Clock::Duration Delay();
  // Takes a token now, possibly on credit, and returns how long the caller should wait before
  // using it (the work queue's global limit delays items instead of blocking).
  Clock::Duration Reserve();

 private:
  Clock::Duration ReserveLocked();
  void Refill();

  Clock& clock_;
  double qps_;
  double burst_;
  std::mutex mu_;
  double tokens_;
  Clock::TimePoint last_;
};

}  // namespace capwatch::kube

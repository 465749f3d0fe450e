#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>

#include "kube/backoff.h"
#include "kube/clock.h"
#include "kube/kube_client.h"

namespace capwatch::kube {

// spec of a coordination.k8s.io/v1 Lease.
struct LeaseRecord {
  std::string holder_identity;
  int lease_duration_seconds = 0;
  std::string acquire_time;  // MicroTime text, kept as the server wrote it
  std::string renew_time;
  int lease_transitions = 0;
  bool operator==(const LeaseRecord&) const = default;
};

// Reads and writes one Lease object, with optimistic concurrency on its resourceVersion.
class LeaseLock {
 public:
  LeaseLock(KubeClient& client, std::string namespace_name, std::string name);
  Result<LeaseRecord> Get(const std::stop_token& stop = {});
  ApiStatus Create(const LeaseRecord& record, const std::stop_token& stop = {});
  // Fails with Conflict when someone wrote the Lease since our last Get/Create/Update.
  ApiStatus Update(const LeaseRecord& record, const std::stop_token& stop = {});
  std::string Describe() const;

 private:
  ApiStatus Remember(const Result<std::string>& response);

  KubeClient& client_;
  ResourceRef resource_;
  std::string name_;
  std::string resource_version_;
};

struct LeaderElectionOptions {
  std::string identity;  // unique per process: pod name + a random suffix
  std::chrono::milliseconds lease_duration{15'000};
  std::chrono::milliseconds renew_deadline{10'000};
  std::chrono::milliseconds retry_period{2'000};
  // Hand the Lease over at shutdown (holder cleared, duration 1 s) so a successor starts at once.
  bool release_on_cancel = true;
};

struct LeaderCallbacks {
  // Runs on its own thread while we lead; `stop` is requested when we stop leading.
  std::function<void(std::stop_token stop)> on_started_leading;
  // After leading ended and on_started_leading returned.
  std::function<void()> on_stopped_leading;
  std::function<void(const std::string& identity)> on_new_leader;
};

// Lease-based leader election (client-go leaderelection): acquire when the Lease is free or
// its holder has not renewed within lease_duration (as observed by our clock), renew every
// retry_period, and step down when renewals keep failing for renew_deadline. IsLeader() turns
// false as soon as the last successful renewal is renew_deadline old, even while a renewal
// request still hangs, so writers stop before another replica can take over.
class LeaderElector {
 public:
  LeaderElector(LeaseLock& lock, Clock& clock, LeaderElectionOptions options);

  // One attempt to acquire or renew, cancelled after half the renew deadline (real time);
  // true when we hold the Lease afterwards.
  bool TryAcquireOrRenew(const std::stop_token& stop = {});
  // Acquires, leads, renews; returns after stepping down, or after `stop` (releasing the Lease
  // when release_on_cancel).
  void Run(const std::stop_token& stop, const LeaderCallbacks& callbacks);
  // Gives the Lease up if we hold it.
  bool Release();

  bool IsLeader() const;
  std::string observed_leader() const;

 private:
  bool AttemptAcquireOrRenew(const std::stop_token& stop);
  // Records that this process holds the Lease as written at `now`.
  void Hold(const LeaseRecord& record, Clock::TimePoint now);

  LeaseLock& lock_;
  Clock& clock_;
  LeaderElectionOptions options_;
  Backoff jitter_;
  mutable std::mutex mu_;
  std::optional<LeaseRecord> observed_;
  Clock::TimePoint observed_at_{};
  Clock::TimePoint last_renew_{};
  bool holding_ = false;
  std::atomic<bool> leading_{false};
};

}  // namespace capwatch::kube

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "fake_kube_client.h"
#include "kube/lease_lock.h"
#include "kube_fakes.h"

namespace capwatch::kube {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

// An in-memory API server holding Leases, with optimistic concurrency, that can be told to
// fail every request (the API server is unreachable).
// The shared in-memory API server (test/unit/fake_kube_client.h), with a switch that makes it
// unreachable.
class LeaseServer {
 public:
  void SetDown(bool down) {
    if (!down) {
      api.SetReactor(nullptr);
      return;
    }
    api.SetReactor([](const Request&) -> std::optional<ApiStatus> {
      return ApiStatus::Transport("connection refused");
    });
  }
  // The Lease `name`, in whichever namespace the test put it.
  json Lease(const std::string& name) const {
    for (const auto& ns : {"capwatch-system", "ns"}) {
      if (auto l = api.Object(ResourceRef::Leases(ns), name)) return *l;
    }
    return nullptr;
  }
  operator KubeClient&() { return api; }  // NOLINT: a LeaseServer is used as the client

  capwatch::testing::FakeKubeClient api;
};

LeaderElectionOptions Options(const std::string& id) {
  LeaderElectionOptions o;
  o.identity = id;
  o.lease_duration = 15s;
  o.renew_deadline = 10s;
  o.retry_period = 2s;
  return o;
}

TEST(LeaderElector, AcquiresRenewsAndKeepsOthersOut) {
  testing::FakeClock clock;
  LeaseServer server;
  LeaseLock lock_a(server, "capwatch-system", "capwatch-leader");
  LeaseLock lock_b(server, "capwatch-system", "capwatch-leader");
  LeaderElector a(lock_a, clock, Options("pod-a"));
  LeaderElector b(lock_b, clock, Options("pod-b"));

  ASSERT_TRUE(a.TryAcquireOrRenew());
  auto lease = server.Lease("capwatch-leader");
  EXPECT_EQ(lease["spec"]["holderIdentity"], "pod-a");
  EXPECT_EQ(lease["spec"]["leaseDurationSeconds"], 15);
  EXPECT_EQ(lease["apiVersion"], "coordination.k8s.io/v1");
  const std::string acquired = lease["spec"]["acquireTime"];

  EXPECT_FALSE(b.TryAcquireOrRenew()) << "held and fresh";
  EXPECT_EQ(b.observed_leader(), "pod-a");

  clock.Advance(2s);
  ASSERT_TRUE(a.TryAcquireOrRenew());
  lease = server.Lease("capwatch-leader");
  EXPECT_EQ(lease["spec"]["acquireTime"], acquired) << "a renewal keeps acquireTime";
  EXPECT_NE(lease["spec"]["renewTime"], acquired);
  EXPECT_EQ(lease["spec"]["leaseTransitions"], 0);

  // b keeps seeing renewals: never acquires. Then a dies; after lease_duration b takes over.
  clock.Advance(5s);
  EXPECT_FALSE(b.TryAcquireOrRenew());
  clock.Advance(14s);
  EXPECT_FALSE(b.TryAcquireOrRenew()) << "15 s have not passed since b saw the last change";
  clock.Advance(2s);
  ASSERT_TRUE(b.TryAcquireOrRenew());
  lease = server.Lease("capwatch-leader");
  EXPECT_EQ(lease["spec"]["holderIdentity"], "pod-b");
  EXPECT_EQ(lease["spec"]["leaseTransitions"], 1);

  // a comes back: its renewal sees b's record and fails.
  EXPECT_FALSE(a.TryAcquireOrRenew());
}

TEST(LeaderElector, ConcurrentWritersConflictAndOnlyOneWins) {
  testing::FakeClock clock;
  LeaseServer server;
  LeaseLock lock_a(server, "ns", "l");
  LeaseLock lock_b(server, "ns", "l");
  LeaderElector a(lock_a, clock, Options("a"));
  LeaderElector b(lock_b, clock, Options("b"));
  ASSERT_TRUE(a.TryAcquireOrRenew());
  clock.Advance(20s);  // a stopped renewing
  // Both read the expired lease, a writes first, b's write then conflicts.
  ASSERT_TRUE(lock_b.Get().ok());
  ASSERT_TRUE(a.TryAcquireOrRenew());
  LeaseRecord stale;
  stale.holder_identity = "b";
  ApiStatus s = lock_b.Update(stale);
  EXPECT_TRUE(s.IsConflict()) << s.ToString();
  EXPECT_FALSE(b.TryAcquireOrRenew());
}

TEST(LeaderElector, StepsDownWhenRenewalsFailAndReleasesOnShutdown) {
  testing::FakeClock clock;
  LeaseServer server;
  LeaseLock lock(server, "ns", "l");
  LeaderElector elector(lock, clock, Options("me"));
  std::atomic<bool> leader_stopped{false}, stopped_leading{false};
  std::atomic<bool> was_leader{false};
  LeaderCallbacks callbacks;
  callbacks.on_started_leading = [&](std::stop_token stop) {
    was_leader = true;
    while (!stop.stop_requested()) std::this_thread::sleep_for(1ms);
    leader_stopped = true;
  };
  callbacks.on_stopped_leading = [&] { stopped_leading = true; };

  // The API server goes away after the first renewals: the fake clock runs through
  // retry_period sleeps until renew_deadline has passed, and the elector steps down.
  std::thread breaker([&] {
    while (!was_leader) std::this_thread::sleep_for(1ms);
    server.SetDown(true);
  });
  elector.Run({}, callbacks);
  breaker.join();
  EXPECT_TRUE(was_leader.load());
  EXPECT_TRUE(leader_stopped.load()) << "the leader's work was told to stop";
  EXPECT_TRUE(stopped_leading.load());
  EXPECT_FALSE(elector.IsLeader());

  // Shutdown while leading hands the Lease over.
  server.SetDown(false);
  testing::FakeClock clock2;
  LeaseServer server2;
  LeaseLock lock2(server2, "ns", "l");
  LeaderElector e2(lock2, clock2, Options("me"));
  std::stop_source stop;
  LeaderCallbacks cb2;
  cb2.on_started_leading = [&](std::stop_token) {
    EXPECT_TRUE(e2.IsLeader());
    stop.request_stop();
  };
  e2.Run(stop.get_token(), cb2);
  auto lease = server2.Lease("l");
  EXPECT_EQ(lease["spec"]["holderIdentity"], "");
  EXPECT_EQ(lease["spec"]["leaseDurationSeconds"], 1);
  EXPECT_FALSE(e2.IsLeader());
}

TEST(LeaderElector, IsLeaderTurnsFalseOnceTheRenewDeadlinePasses) {
  testing::FakeClock clock;
  LeaseServer server;
  LeaseLock lock(server, "ns", "l");
  LeaderElector e(lock, clock, Options("me"));
  std::stop_source stop;
  std::atomic<bool> checked{false};
  LeaderCallbacks cb;
  cb.on_started_leading = [&](std::stop_token) {
    EXPECT_TRUE(e.IsLeader());
    // Renewals stop getting through, and renew_deadline passes before the elector's loop
    // notices: writers must already see IsLeader() false.
    server.SetDown(true);
    clock.Advance(11s);
    EXPECT_FALSE(e.IsLeader());
    checked = true;
    stop.request_stop();
  };
  e.Run(stop.get_token(), cb);
  EXPECT_TRUE(checked.load());
}

}  // namespace
}  // namespace capwatch::kube

namespace capwatch::kube {
namespace {

// An API server that never answers: every request waits until its stop token is requested.
class HangingClient final : public KubeClient {
 public:
  Result<std::string> Send(const Request&, const std::stop_token& stop) override {
    std::mutex mu;
    std::condition_variable_any cv;
    std::unique_lock lock(mu);
    cv.wait(lock, stop, [] { return false; });
    ++cancelled;
    return ApiStatus(0, StatusReason::kCancelled, "cancelled");
  }
  Result<std::unique_ptr<WatchStream>> Watch(const ResourceRef&, const ListOptions&,
                                             const std::stop_token&) override {
    return ApiStatus(500, StatusReason::kInternalError, "no watches here");
  }
  std::atomic<int> cancelled{0};
};

TEST(LeaderElector, SeeingAnotherHolderClosesTheFenceAtOnce) {
  testing::FakeClock clock;
  clock.HoldSleepers();  // the renew loop waits in its retry sleep until the test moves time
  LeaseServer server;
  LeaseLock lock(server, "ns", "l");
  const LeaderElectionOptions options = Options("me");
  LeaderElector e(lock, clock, options);
  std::stop_source stop;
  LeaderCallbacks cb;
  cb.on_started_leading = [&](std::stop_token) {
    ASSERT_TRUE(e.IsLeader());
    while (clock.sleepers() == 0) std::this_thread::yield();
    // Another holder writes the Lease while the elector sleeps (a second replica that thinks
    // it expired, or a human).
    auto lease = server.Lease("l");
    lease["spec"]["holderIdentity"] = "intruder";
    lease["spec"]["leaseDurationSeconds"] = 3600;
    server.api.Put(ResourceRef::Leases("ns"), lease);
    EXPECT_TRUE(e.IsLeader()) << "nothing has looked at the Lease yet";
    // One retry period: the elector wakes for one renewal, and either steps down or sleeps
    // again.
    clock.Advance(options.retry_period);
    while (e.IsLeader() && clock.sleepers() == 0) std::this_thread::yield();
    EXPECT_FALSE(e.IsLeader()) << "the fence must close at the first renewal that sees "
                                  "another holder, not at the renew deadline";
    stop.request_stop();
  };
  e.Run(stop.get_token(), cb);
  EXPECT_EQ(server.Lease("l")["spec"]["holderIdentity"], "intruder");
}

TEST(LeaderElector, ARenewalThatHangsIsCancelledAtItsOwnDeadline) {
  HangingClient client;
  LeaseLock lock(client, "capwatch-system", "capwatch-leader");
  testing::FakeClock clock;
  LeaderElectionOptions options;
  options.identity = "a";
  options.renew_deadline = std::chrono::milliseconds(200);
  LeaderElector elector(lock, clock, options);
  // Without its own deadline this attempt would wait for the hung request forever.
  EXPECT_FALSE(elector.TryAcquireOrRenew());
  EXPECT_EQ(client.cancelled.load(), 1);
  EXPECT_FALSE(elector.IsLeader());
}

}  // namespace
}  // namespace capwatch::kube

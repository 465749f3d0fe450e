#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "kube/work_queue.h"
#include "kube_fakes.h"

namespace capwatch::kube {
namespace {

using namespace std::chrono_literals;

TEST(WorkQueue, DedupesKeysAndNeverHandsOneKeyToTwoWorkers) {
  WorkQueue q(SystemClock());
  q.Add("prod/web");
  q.Add("prod/db");
  q.Add("prod/web");
  EXPECT_EQ(q.Len(), 2u);
  std::string key;
  ASSERT_TRUE(q.Get(key));
  EXPECT_EQ(key, "prod/web");
  // Added again while being processed: not handed out now ...
  q.Add("prod/web");
  ASSERT_TRUE(q.Get(key));
  EXPECT_EQ(key, "prod/db");
  EXPECT_EQ(q.Len(), 0u);
  // ... but once the worker is done.
  q.Done("prod/web");
  EXPECT_EQ(q.Len(), 1u);
  ASSERT_TRUE(q.Get(key));
  EXPECT_EQ(key, "prod/web");
  q.Done("prod/web");
  q.Done("prod/db");
  EXPECT_EQ(q.Len(), 0u);
}

TEST(WorkQueue, PerItemExponentialBackoffAndForget) {
  testing::FakeClock clock;
  WorkQueueOptions o;
  o.base_delay = 5ms;
  o.max_delay = 40ms;
  o.qps = 0;  // global limit off for this test
  WorkQueue q(clock, o);
  EXPECT_EQ(q.When("a"), Clock::Duration(5ms));
  EXPECT_EQ(q.When("a"), Clock::Duration(10ms));
  EXPECT_EQ(q.When("a"), Clock::Duration(20ms));
  EXPECT_EQ(q.When("a"), Clock::Duration(40ms));
  EXPECT_EQ(q.When("a"), Clock::Duration(40ms)) << "capped";
  EXPECT_EQ(q.When("b"), Clock::Duration(5ms)) << "per item";
  EXPECT_EQ(q.NumRequeues("a"), 5);
  q.Forget("a");
  EXPECT_EQ(q.NumRequeues("a"), 0);
  EXPECT_EQ(q.When("a"), Clock::Duration(5ms));
}

TEST(WorkQueue, GlobalRateLimitDelaysAStormOfRetries) {
  testing::FakeClock clock;
  WorkQueueOptions o;
  o.base_delay = 1ms;
  o.qps = 10;
  o.burst = 2;
  WorkQueue q(clock, o);
  EXPECT_EQ(q.When("a"), Clock::Duration(1ms));
  EXPECT_EQ(q.When("b"), Clock::Duration(1ms));
  EXPECT_EQ(q.When("c"), Clock::Duration(100ms)) << "the bucket is empty";
  EXPECT_EQ(q.When("d"), Clock::Duration(200ms));
}

TEST(WorkQueue, RateLimitedKeysComeBackAfterTheirDelay) {
  WorkQueueOptions o;
  o.base_delay = 30ms;
  o.qps = 0;
  WorkQueue q(SystemClock(), o);
  const auto start = std::chrono::steady_clock::now();
  q.AddRateLimited("prod/web");
  EXPECT_EQ(q.Len(), 0u);
  EXPECT_EQ(q.Waiting(), 1u);
  q.AddRateLimited("prod/web");  // already waiting for less: stays one entry
  EXPECT_EQ(q.Waiting(), 1u);
  std::string key;
  ASSERT_TRUE(q.Get(key));
  EXPECT_EQ(key, "prod/web");
  EXPECT_GE(std::chrono::steady_clock::now() - start, 29ms);
  q.Done(key);
  // AddAfter with a shorter delay moves the key forward.
  q.AddAfter("x", 10s);
  q.AddAfter("x", 1ms);
  ASSERT_TRUE(q.Get(key));
  EXPECT_EQ(key, "x");
}

TEST(WorkQueue, ShutDownWakesWorkers) {
  WorkQueue q(SystemClock());
  std::atomic<int> stopped{0};
  std::vector<std::thread> workers;
  for (int i = 0; i < 3; ++i) {
    workers.emplace_back([&] {
      std::string key;
      while (q.Get(key)) q.Done(key);
      ++stopped;
    });
  }
  q.Add("a");
  std::this_thread::sleep_for(20ms);
  q.ShutDown();
  for (auto& w : workers) w.join();
  EXPECT_EQ(stopped.load(), 3);
  q.Add("b");
  EXPECT_EQ(q.Len(), 0u) << "nothing is queued after shutdown";
}

TEST(WorkQueue, ManyProducersEachKeyProcessedWithoutOverlap) {
  WorkQueue q(SystemClock());
  std::mutex mu;
  std::set<std::string> in_flight;
  std::atomic<int> overlaps{0}, processed{0};
  std::vector<std::thread> workers;
  for (int i = 0; i < 4; ++i) {
    workers.emplace_back([&] {
      std::string key;
      while (q.Get(key)) {
        {
          std::lock_guard lock(mu);
          if (!in_flight.insert(key).second) ++overlaps;
        }
        std::this_thread::sleep_for(50us);
        {
          std::lock_guard lock(mu);
          in_flight.erase(key);
        }
        ++processed;
        q.Done(key);
      }
    });
  }
  std::vector<std::thread> producers;
  for (int p = 0; p < 3; ++p) {
    producers.emplace_back([&] {
      for (int i = 0; i < 500; ++i) q.Add("ns/pod-" + std::to_string(i % 20));
    });
  }
  for (auto& p : producers) p.join();
  while (q.Len() > 0) std::this_thread::sleep_for(1ms);
  std::this_thread::sleep_for(20ms);
  q.ShutDown();
  for (auto& w : workers) w.join();
  EXPECT_EQ(overlaps.load(), 0);
  EXPECT_GE(processed.load(), 20);
  EXPECT_LE(processed.load(), 1500);
}

}  // namespace
}  // namespace capwatch::kube

#include <gtest/gtest.h>

#include <deque>

#include "kube/backoff.h"
#include "kube/pod_informer.h"
#include "kube/rate_limiter.h"
#include "kube/reflector.h"
#include "kube_fakes.h"

namespace capwatch::kube {
namespace {

using namespace std::chrono_literals;
using testing::FakeClock;

TEST(Backoff, GrowsFrom800msTo30sWithJitterAndResetsAfterAHealthyPeriod) {
  FakeClock clock;
  Backoff backoff(clock, BackoffOptions{}, /*seed=*/42);
  std::vector<Clock::Duration> delays;
  for (int i = 0; i < 10; ++i) delays.push_back(backoff.Next());
  double expected = 0.8;
  for (const auto& d : delays) {
    const double s = std::chrono::duration<double>(d).count();
    EXPECT_GE(s, std::min(expected, 30.0) - 1e-9);
    EXPECT_LE(s, std::min(expected * 1.5, 30.0) + 1e-9);
    expected *= 2;
  }
  EXPECT_EQ(delays.back(), Clock::Duration(30s)) << "capped";

  // Healthy for a while: the next failure starts small again.
  backoff.MarkHealthy();
  clock.Advance(121s);
  EXPECT_LE(backoff.Next(), Clock::Duration(1200ms));
  // Healthy only briefly: no reset.
  backoff.Next();
  backoff.MarkHealthy();
  clock.Advance(5s);
  EXPECT_GE(backoff.Next(), Clock::Duration(3200ms));
}

TEST(TokenBucket, BurstThenSteadyRate) {
  FakeClock clock;
  TokenBucket bucket(clock, /*qps=*/5, /*burst=*/3);
  EXPECT_TRUE(bucket.TryTake());
  EXPECT_TRUE(bucket.TryTake());
  EXPECT_TRUE(bucket.TryTake());
  EXPECT_FALSE(bucket.TryTake());
  EXPECT_EQ(bucket.Delay(), Clock::Duration(200ms));
  ASSERT_TRUE(bucket.Wait());  // sleeps on the fake clock
  EXPECT_EQ(clock.slept().back(), Clock::Duration(200ms));
  clock.Advance(10s);
  EXPECT_TRUE(bucket.TryTake());
  EXPECT_TRUE(bucket.TryTake());
  EXPECT_TRUE(bucket.TryTake());
  EXPECT_FALSE(bucket.TryTake()) << "no more than the burst is saved up";
}

// A KubeClient double that plays a script: each List or Watch takes the next answer.
class ScriptedClient final : public KubeClient {
 public:
  struct WatchScript {
    ApiStatus open = ApiStatus::Ok();
    std::vector<std::string> lines;
    ApiStatus end = ApiStatus::Ok();
  };
  std::deque<Result<std::string>> lists;
  std::deque<WatchScript> watches;
  std::vector<ListOptions> list_calls, watch_calls;

  Result<std::string> Send(const Request& r, const std::stop_token&) override {
    ListOptions o;
    for (const auto& [k, v] : r.query) {
      if (k == "continue") o.continue_token = v;
    }
    list_calls.push_back(o);
    if (lists.empty()) return ApiStatus(500, StatusReason::kInternalError, "script ended");
    auto r0 = std::move(lists.front());
    lists.pop_front();
    return r0;
  }
  Result<std::unique_ptr<WatchStream>> Watch(const ResourceRef&, const ListOptions& o,
                                             const std::stop_token&) override {
    watch_calls.push_back(o);
    if (watches.empty()) return ApiStatus(500, StatusReason::kInternalError, "script ended");
    WatchScript w = std::move(watches.front());
    watches.pop_front();
    if (!w.open.ok()) return w.open;
    return std::unique_ptr<WatchStream>(new Stream(std::move(w)));
  }

 private:
  class Stream final : public WatchStream {
   public:
    explicit Stream(WatchScript w) : w_(std::move(w)) {}
    bool NextLine(std::string& line) override {
      if (i_ >= w_.lines.size()) return false;
      line = w_.lines[i_++];
      return true;
    }
    const ApiStatus& status() const override { return i_ >= w_.lines.size() ? w_.end : ok_; }

   private:
    WatchScript w_;
    std::size_t i_ = 0;
    ApiStatus ok_ = ApiStatus::Ok();
  };
};

std::string PodList(const std::string& rv, const std::vector<std::string>& names,
                    const std::string& cont = {}) {
  std::string body = R"({"metadata":{"resourceVersion":")" + rv + "\"";
  if (!cont.empty()) body += R"(,"continue":")" + cont + "\"";
  body += R"(},"items":[)";
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i) body += ",";
    body += testing::MakePodJson("ns", names[i], 1, "v1");
  }
  return body + "]}";
}

std::string Event(const std::string& type, const std::string& name, long long rv) {
  return R"({"type":")" + type + R"(","object":)" + testing::MakePodJson("ns", name, rv, "v1") +
         "}";
}

TEST(Reflector, StateMachineStepByStep) {
  FakeClock clock;
  ScriptedClient client;
  ReflectorOptions o = PodReflectorOptions();
  o.page_size = 1;
  PodInformer informer(client, clock, o);
  Reflector& r = informer.reflector();

  // Listing fails -> Backoff -> Listing again.
  client.lists.push_back(ApiStatus(500, StatusReason::kInternalError, "boom"));
  EXPECT_EQ(r.Step({}), ReflectorState::kBackoff);
  EXPECT_EQ(r.Step({}), ReflectorState::kListing);
  EXPECT_GE(r.last_backoff(), Clock::Duration(800ms));

  // Two pages, then Watching.
  client.lists.push_back(PodList("10", {"a"}, "next"));
  client.lists.push_back(PodList("10", {"b"}));
  EXPECT_EQ(r.Step({}), ReflectorState::kWatching);
  EXPECT_TRUE(informer.HasSynced());
  EXPECT_EQ(informer.size(), 2u);
  EXPECT_EQ(r.resource_version(), "10");
  EXPECT_EQ(client.list_calls.back().continue_token, "next");

  // A watch session: an event, a bookmark, then the server's clean end -> watch again.
  client.watches.push_back(
      {ApiStatus::Ok(),
       {Event("ADDED", "c", 11),
        R"({"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"15"}}})"},
       ApiStatus::Ok()});
  EXPECT_EQ(r.Step({}), ReflectorState::kWatching);
  EXPECT_EQ(client.watch_calls.back().resource_version, "10");
  EXPECT_GE(client.watch_calls.back().timeout_seconds, 300);
  EXPECT_LE(client.watch_calls.back().timeout_seconds, 600);
  EXPECT_EQ(r.resource_version(), "15");
  EXPECT_EQ(informer.size(), 3u);

  // A dropped connection -> Backoff -> Watching (the resourceVersion is still good).
  client.watches.push_back(
      {ApiStatus::Ok(), {Event("DELETED", "a", 16)}, ApiStatus::Transport("connection reset")});
  EXPECT_EQ(r.Step({}), ReflectorState::kBackoff);
  EXPECT_EQ(r.Step({}), ReflectorState::kWatching);
  EXPECT_EQ(informer.size(), 2u);

  // 410 on open -> Listing.
  client.watches.push_back({ApiStatus(410, StatusReason::kGone, "too old"), {}, ApiStatus::Ok()});
  EXPECT_EQ(r.Step({}), ReflectorState::kListing);
  EXPECT_EQ(client.watch_calls.back().resource_version, "16");

  // The relist replaces the cache: only "z" is left.
  client.lists.push_back(PodList("30", {"z"}));
  EXPECT_EQ(r.Step({}), ReflectorState::kWatching);
  EXPECT_EQ(informer.size(), 1u);
  EXPECT_NE(informer.Get("ns", "z"), nullptr);

  // ERROR 410 inside a watch -> Listing; another ERROR -> Backoff.
  client.watches.push_back(
      {ApiStatus::Ok(),
       {R"({"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired","message":"x"}})"},
       ApiStatus::Ok()});
  EXPECT_EQ(r.Step({}), ReflectorState::kListing);
  client.lists.push_back(PodList("31", {"z"}));
  EXPECT_EQ(r.Step({}), ReflectorState::kWatching);
  client.watches.push_back(
      {ApiStatus::Ok(),
       {R"({"type":"ERROR","object":{"kind":"Status","code":500,"reason":"InternalError","message":"x"}})"},
       ApiStatus::Ok()});
  EXPECT_EQ(r.Step({}), ReflectorState::kBackoff);

  const auto stats = r.stats();
  EXPECT_EQ(stats.lists, 3u);
  EXPECT_EQ(stats.relists_gone, 2u);
  EXPECT_EQ(stats.bookmarks, 1u);
  EXPECT_EQ(stats.error_events, 2u);
}

TEST(Reflector, ExpiredContinueRestartsTheListAndGivesUpAfterALimit) {
  FakeClock clock;
  ScriptedClient client;
  ReflectorOptions o = PodReflectorOptions();
  o.max_list_restarts = 1;
  PodInformer informer(client, clock, o);
  client.lists.push_back(PodList("10", {"a"}, "c1"));
  client.lists.push_back(ApiStatus(410, StatusReason::kExpired, "continue too old"));
  client.lists.push_back(PodList("12", {"a"}, "c2"));
  client.lists.push_back(PodList("12", {"b"}));
  EXPECT_EQ(informer.reflector().Step({}), ReflectorState::kWatching);
  EXPECT_EQ(informer.size(), 2u);
  EXPECT_EQ(client.list_calls[2].continue_token, "") << "restarted from the beginning";
  EXPECT_EQ(informer.reflector().stats().list_restarts, 1u);

  client.lists.push_back(PodList("20", {"a"}, "c3"));
  client.lists.push_back(ApiStatus(410, StatusReason::kExpired, "x"));
  client.lists.push_back(PodList("21", {"a"}, "c4"));
  client.lists.push_back(ApiStatus(410, StatusReason::kExpired, "x"));
  client.watches.push_back({ApiStatus(410, StatusReason::kGone, "x"), {}, ApiStatus::Ok()});
  EXPECT_EQ(informer.reflector().Step({}), ReflectorState::kListing);
  EXPECT_EQ(informer.reflector().Step({}), ReflectorState::kBackoff);
  EXPECT_EQ(informer.size(), 2u) << "a failed list leaves the cache as it was";
}

TEST(Reflector, BackoffHonoursRetryAfterOfA429) {
  FakeClock clock;
  ScriptedClient client;
  PodInformer informer(client, clock, PodReflectorOptions());
  client.lists.push_back(PodList("10", {}));
  ASSERT_EQ(informer.reflector().Step({}), ReflectorState::kWatching);
  ApiStatus throttled(429, StatusReason::kTooManyRequests, "slow down");
  throttled.set_retry_after(std::chrono::seconds(7));
  client.watches.push_back({throttled, {}, ApiStatus::Ok()});
  EXPECT_EQ(informer.reflector().Step({}), ReflectorState::kBackoff);
  EXPECT_EQ(informer.reflector().Step({}), ReflectorState::kWatching);
  EXPECT_GE(informer.reflector().last_backoff(), Clock::Duration(7s));
  EXPECT_GE(clock.slept().back(), Clock::Duration(7s));
}

TEST(Reflector, UndecodableEventsAreSkippedNotFatal) {
  FakeClock clock;
  ScriptedClient client;
  PodInformer informer(client, clock, PodReflectorOptions());
  client.lists.push_back(PodList("10", {}));
  ASSERT_EQ(informer.reflector().Step({}), ReflectorState::kWatching);
  client.watches.push_back({ApiStatus::Ok(),
                            {"garbage", R"({"type":"ADDED","object":{"metadata":{"name":1}}})",
                             Event("ADDED", "ok", 12)},
                            ApiStatus::Ok()});
  EXPECT_EQ(informer.reflector().Step({}), ReflectorState::kWatching);
  EXPECT_EQ(informer.size(), 1u);
  EXPECT_EQ(informer.reflector().stats().decode_errors, 2u);
  EXPECT_EQ(informer.reflector().resource_version(), "12");
}

}  // namespace
}  // namespace capwatch::kube

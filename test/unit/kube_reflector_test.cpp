#include <gtest/gtest.h>

#include <gmock/gmock.h>

#include <deque>
#include <stdexcept>

#include "controller/pod_informer.h"
#include "kube/backoff.h"
#include "kube/rate_limiter.h"
#include "kube/reflector.h"
#include "kube_fakes.h"

namespace capwatch::kube {
namespace {

// The Pod and owner-metadata informers live in lib/controller (capwatch_cluster_views).
using controller::PodInformer;
using controller::PodReflectorOptions;

using namespace std::chrono_literals;
using testing::FakeClock;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

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
    // How long the session stays open on `clock`, passed when the stream ends.
    Clock::Duration lasts{};
  };
  FakeClock* clock = nullptr;
  std::deque<Result<std::string>> lists;
  std::deque<WatchScript> watches;
  std::vector<ListOptions> list_calls, watch_calls;

  Result<std::string> Send(const Request& r, const std::stop_token&) override {
    ListOptions o;
    for (const auto& [k, v] : r.query) {
      if (k == "continue") o.continue_token = v;
      if (k == "limit") o.limit = std::stoi(v);
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
    return std::unique_ptr<WatchStream>(new Stream(std::move(w), clock));
  }

 private:
  class Stream final : public WatchStream {
   public:
    Stream(WatchScript w, FakeClock* clock) : w_(std::move(w)), clock_(clock) {}
    bool NextLine(std::string& line) override {
      if (i_ >= w_.lines.size()) {
        if (clock_ != nullptr && !ended_) clock_->Advance(w_.lasts);
        ended_ = true;
        return false;
      }
      line = w_.lines[i_++];
      return true;
    }
    const ApiStatus& status() const override { return i_ >= w_.lines.size() ? w_.end : ok_; }

   private:
    WatchScript w_;
    FakeClock* clock_;
    bool ended_ = false;
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
  o.stream_lists = false;  // paginated lists
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

// What a page costs is its bytes (body, decoder copy, index): a list of large objects must
// not come in pages of 500 of them. 500 Pods of 100 containers are a 30 MiB page; 500
// CapabilityReports of 900 KiB, 440 MiB.
TEST(Reflector, ListPagesAreSizedByTheBytesOfTheLastPage) {
  FakeClock clock;
  ScriptedClient client;
  ReflectorOptions o = PodReflectorOptions();
  o.stream_lists = false;  // paginated lists
  o.page_size = 500;
  o.first_page_size = 2;
  const std::size_t pod_bytes = testing::MakePodJson("ns", "p00", 1, "v1").size();
  o.page_bytes = 10 * pod_bytes;
  PodInformer informer(client, clock, o);
  Reflector& r = informer.reflector();

  client.lists.push_back(PodList("10", {"p00", "p01"}, "c1"));
  client.lists.push_back(PodList("10", {"p02", "p03", "p04", "p05", "p06"}, "c2"));
  client.lists.push_back(PodList("10", {}, "c3"));  // an empty page measures nothing
  client.lists.push_back(PodList("10", {"p07"}));
  EXPECT_EQ(r.Step({}), ReflectorState::kWatching);
  EXPECT_EQ(informer.size(), 8u);
  ASSERT_EQ(client.list_calls.size(), 4u);
  EXPECT_EQ(client.list_calls[0].limit, 2) << "the first page is small";
  // The next limit: page_bytes over the last page's bytes per item (its envelope included).
  auto limit_after = [&](const std::string& page, std::size_t items) {
    return static_cast<int>(o.page_bytes / (page.size() / items));
  };
  EXPECT_EQ(client.list_calls[1].limit, limit_after(PodList("10", {"p00", "p01"}, "c1"), 2));
  EXPECT_EQ(client.list_calls[2].limit,
            limit_after(PodList("10", {"p02", "p03", "p04", "p05", "p06"}, "c2"), 5));
  EXPECT_GE(client.list_calls[2].limit, 9);
  EXPECT_LE(client.list_calls[2].limit, 10);
  EXPECT_EQ(client.list_calls[3].limit, client.list_calls[2].limit);
}

TEST(Reflector, ListPagesOfSmallObjectsStayAtThePageSizeAndHugeOnesAtOne) {
  FakeClock clock;
  ScriptedClient client;
  ReflectorOptions o = PodReflectorOptions();
  o.stream_lists = false;  // paginated lists
  o.page_size = 3;
  o.first_page_size = 50;  // never above page_size
  o.page_bytes = 1u << 30;
  PodInformer small(client, clock, o);
  client.lists.push_back(PodList("10", {"a"}, "c1"));
  client.lists.push_back(PodList("10", {"b"}));
  EXPECT_EQ(small.reflector().Step({}), ReflectorState::kWatching);
  ASSERT_EQ(client.list_calls.size(), 2u);
  EXPECT_EQ(client.list_calls[0].limit, 3);
  EXPECT_EQ(client.list_calls[1].limit, 3);

  ScriptedClient client2;
  o.page_bytes = 10;  // smaller than any Pod: one a page, never zero (no limit at all)
  PodInformer huge(client2, clock, o);
  client2.lists.push_back(PodList("10", {"a", "b"}, "c1"));
  client2.lists.push_back(PodList("10", {"c"}));
  EXPECT_EQ(huge.reflector().Step({}), ReflectorState::kWatching);
  ASSERT_EQ(client2.list_calls.size(), 2u);
  EXPECT_EQ(client2.list_calls[1].limit, 1);
  EXPECT_EQ(huge.size(), 3u);
}

TEST(Reflector, ExpiredContinueRestartsTheListAndGivesUpAfterALimit) {
  FakeClock clock;
  ScriptedClient client;
  ReflectorOptions o = PodReflectorOptions();
  o.stream_lists = false;  // paginated lists
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

// The default: one unpaginated list (what the API server answers from its watch cache), cut
// into pages of about page_bytes as it arrives, so memory stays bounded without paying for
// continuations.
TEST(Reflector, AWholeListIsCutIntoPagesAsItArrives) {
  FakeClock clock;
  ScriptedClient client;
  ReflectorOptions o = PodReflectorOptions();
  ASSERT_TRUE(o.stream_lists) << "the default";
  o.page_bytes = 3000;
  PodInformer informer(client, clock, o);
  std::vector<std::string> names;
  for (int i = 0; i < 30; ++i) names.push_back("p" + std::to_string(i));
  client.lists.push_back(PodList("77", names));
  EXPECT_EQ(informer.reflector().Step({}), ReflectorState::kWatching);
  EXPECT_EQ(informer.size(), 30u);
  EXPECT_EQ(informer.reflector().resource_version(), "77");
  ASSERT_EQ(client.list_calls.size(), 1u);
  EXPECT_EQ(client.list_calls[0].limit, 0) << "no pagination asked for";
  EXPECT_EQ(client.list_calls[0].continue_token, "");
  const std::size_t pod_bytes = testing::MakePodJson("ns", "p10", 1, "v1").size();
  EXPECT_GE(informer.reflector().stats().list_pages, 30 * pod_bytes / (3000 + pod_bytes));
  EXPECT_EQ(informer.reflector().stats().lists, 1u);
}

// A list cut short, or not JSON, is a failed list: nothing of it reaches the cache, and the
// reflector backs off and lists again.
TEST(Reflector, AWholeListCutShortLeavesTheCacheAsItWas) {
  FakeClock clock;
  ScriptedClient client;
  ReflectorOptions o = PodReflectorOptions();
  o.page_bytes = 1;
  PodInformer informer(client, clock, o);
  client.lists.push_back(PodList("5", {"a"}));
  ASSERT_EQ(informer.reflector().Step({}), ReflectorState::kWatching);
  client.watches.push_back({ApiStatus(410, StatusReason::kGone, "too old"), {}, ApiStatus::Ok()});
  ASSERT_EQ(informer.reflector().Step({}), ReflectorState::kListing);
  const std::string whole = PodList("9", {"b", "c", "d"});
  for (std::size_t cut : {std::size_t{0}, whole.size() / 3, whole.size() - 2}) {
    client.lists.push_back(whole.substr(0, cut));
    EXPECT_EQ(informer.reflector().Step({}), ReflectorState::kBackoff) << "cut at " << cut;
    EXPECT_EQ(informer.size(), 1u);
    EXPECT_NE(informer.Get("ns", "a"), nullptr);
    EXPECT_EQ(informer.reflector().resource_version(), "5");
    ASSERT_EQ(informer.reflector().Step({}), ReflectorState::kListing);
  }
  EXPECT_EQ(informer.reflector().stats().decode_errors, 3u);
  client.lists.push_back(whole);
  EXPECT_EQ(informer.reflector().Step({}), ReflectorState::kWatching);
  EXPECT_EQ(informer.size(), 3u);
  EXPECT_EQ(informer.Get("ns", "a"), nullptr) << "the relist replaced the cache";
}

// Something between capwatch and the API server that pages on its own: capwatch notices the
// continue token and pages from then on rather than lose the rest of the list.
TEST(Reflector, AServerThatPagesAnywayIsPagedThrough) {
  FakeClock clock;
  ScriptedClient client;
  PodInformer informer(client, clock, PodReflectorOptions());
  client.lists.push_back(PodList("10", {"a"}, "more"));
  EXPECT_EQ(informer.reflector().Step({}), ReflectorState::kListing);
  client.lists.push_back(PodList("10", {"a"}, "more"));
  client.lists.push_back(PodList("10", {"b"}));
  EXPECT_EQ(informer.reflector().Step({}), ReflectorState::kWatching);
  EXPECT_EQ(informer.size(), 2u);
  EXPECT_EQ(client.list_calls.back().continue_token, "more");
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

// What an informer's handlers heard: "ADD a", "UPDATE a", "DELETE a".

class Heard {
 public:
  explicit Heard(PodInformer& informer) {
    informer.AddHandlers(
        {[this](const PodView& p) { log.push_back("ADD " + p.name); },
         [this](const PodView&, const PodView& p) { log.push_back("UPDATE " + p.name); },
         [this](const PodView& p) { log.push_back("DELETE " + p.name); }});
  }
  std::vector<std::string> log;
};

TEST(Reflector, AnEventThatCannotBeReadRelistsSoTheCacheKeepsNoGhost) {
  FakeClock clock;
  ScriptedClient client;
  PodInformer informer(client, clock, PodReflectorOptions());
  Heard heard(informer);
  Reflector& r = informer.reflector();
  client.lists.push_back(PodList("10", {"a", "b"}));
  ASSERT_EQ(r.Step({}), ReflectorState::kWatching);

  // "a" is deleted, but its DELETED event cannot be read; the next event would move the
  // resourceVersion past it, and "a" would stay cached until a 410.
  client.watches.push_back(
      {ApiStatus::Ok(),
       {R"({"type":"DELETED","object":{"metadata":{"name":1,"namespace":"ns","resourceVersion":"11"}}})",
        Event("ADDED", "c", 12)},
       ApiStatus::Ok()});
  EXPECT_EQ(r.Step({}), ReflectorState::kListing) << "the watch ends at the bad event";
  EXPECT_EQ(r.resource_version(), "10") << "nothing moved past the lost event";
  EXPECT_EQ(informer.size(), 2u);

  // The relist replaces the cache and tells the handlers of the difference.
  client.lists.push_back(PodList("12", {"b", "c"}));
  EXPECT_EQ(r.Step({}), ReflectorState::kWatching);
  EXPECT_EQ(informer.Get("ns", "a"), nullptr) << "no ghost";
  EXPECT_NE(informer.Get("ns", "c"), nullptr);
  ASSERT_EQ(heard.log.size(), 4u);
  EXPECT_THAT(std::vector<std::string>(heard.log.begin() + 2, heard.log.end()),
              UnorderedElementsAre("ADD c", "DELETE a"));
  EXPECT_TRUE(clock.slept().empty()) << "the first time, the relist is immediate";
  const auto stats = r.stats();
  EXPECT_EQ(stats.decode_errors, 1u);
  EXPECT_EQ(stats.relists_decode, 1u);
  EXPECT_EQ(stats.lists, 2u);
}

TEST(Reflector, AListPageWithABadItemKeepsTheOthersAndCountsIt) {
  FakeClock clock;
  ScriptedClient client;
  PodInformer informer(client, clock, PodReflectorOptions());
  std::string page = PodList("10", {"a", "b"});
  page.insert(page.size() - 2, R"(,{"metadata":{"name":7,"namespace":"ns"}})");
  client.lists.push_back(page);
  EXPECT_EQ(informer.reflector().Step({}), ReflectorState::kWatching);
  EXPECT_EQ(informer.size(), 2u);
  EXPECT_EQ(informer.reflector().stats().skipped_items, 1u);
  EXPECT_EQ(informer.reflector().stats().decode_errors, 0u) << "the page itself was fine";
}

TEST(Reflector, BadEventsInARowBackOffBeforeEachRelistUntilAWatchIsHealthy) {
  FakeClock clock;
  ScriptedClient client;
  client.clock = &clock;
  PodInformer informer(client, clock, PodReflectorOptions());
  Reflector& r = informer.reflector();
  client.lists.push_back(PodList("10", {"a"}));
  ASSERT_EQ(r.Step({}), ReflectorState::kWatching);

  // One object the codec cannot read, changed again and again, and once a line that is not an
  // event at all.
  const std::string bad = R"({"type":"MODIFIED","object":{"metadata":{"name":["x"]}}})";
  for (int i = 0; i < 3; ++i) {
    client.watches.push_back(
        {ApiStatus::Ok(), {Event("MODIFIED", "a", 11 + i), i == 1 ? "garbage" : bad}});
  }
  EXPECT_EQ(r.Step({}), ReflectorState::kListing) << "the first time: relist at once";
  client.lists.push_back(PodList("20", {"a"}));
  EXPECT_EQ(r.Step({}), ReflectorState::kWatching);
  EXPECT_EQ(r.Step({}), ReflectorState::kBackoff) << "again: back off first";
  EXPECT_EQ(r.Step({}), ReflectorState::kListing);
  client.lists.push_back(PodList("30", {"a"}));
  EXPECT_EQ(r.Step({}), ReflectorState::kWatching);
  EXPECT_EQ(r.Step({}), ReflectorState::kBackoff);
  EXPECT_EQ(r.Step({}), ReflectorState::kListing);
  const auto slept = clock.slept();
  ASSERT_EQ(slept.size(), 2u);
  EXPECT_GE(slept[0], Clock::Duration(800ms));
  EXPECT_GT(slept[1], slept[0]) << "the backoff grows";
  EXPECT_EQ(r.stats().decode_errors, 3u);
  EXPECT_EQ(r.stats().relists_decode, 3u);

  // A healthy watch (it ran to the server's timeoutSeconds) ends the run: the next bad event
  // relists at once again.
  client.lists.push_back(PodList("40", {"a"}));
  EXPECT_EQ(r.Step({}), ReflectorState::kWatching);
  client.watches.push_back({ApiStatus::Ok(), {Event("MODIFIED", "a", 41)}, ApiStatus::Ok(), 300s});
  EXPECT_EQ(r.Step({}), ReflectorState::kWatching);
  client.watches.push_back({ApiStatus::Ok(), {bad}});
  EXPECT_EQ(r.Step({}), ReflectorState::kListing);
  EXPECT_EQ(clock.slept().size(), 2u);
}

TEST(Reflector, AWatchThatEndsAtOnceWithoutAnEventBacksOffWithGrowingDelays) {
  FakeClock clock;
  ScriptedClient client;
  client.clock = &clock;
  PodInformer informer(client, clock, PodReflectorOptions());
  Reflector& r = informer.reflector();
  client.lists.push_back(PodList("10", {"a"}));
  ASSERT_EQ(r.Step({}), ReflectorState::kWatching);
  // A server (or a proxy) that answers every watch 200 with an empty body.
  for (int i = 0; i < 6; ++i) client.watches.push_back({});
  for (int i = 0; i < 6; ++i) {
    ASSERT_EQ(r.Step({}), ReflectorState::kBackoff) << i;
    ASSERT_EQ(r.Step({}), ReflectorState::kWatching) << i;
  }
  const auto slept = clock.slept();
  ASSERT_EQ(slept.size(), 6u);
  EXPECT_GE(slept[0], Clock::Duration(800ms));
  for (std::size_t i = 1; i < slept.size(); ++i) EXPECT_GT(slept[i], slept[i - 1]) << i;
  const auto stats = r.stats();
  EXPECT_EQ(stats.short_watches, 6u);
  EXPECT_EQ(stats.lists, 1u) << "no relist: the resourceVersion is still good";
  EXPECT_EQ(client.watch_calls.back().resource_version, "10");
}

TEST(Reflector, AWatchThatLastsOrDeliversAnEventReconnectsAtOnce) {
  FakeClock clock;
  ScriptedClient client;
  client.clock = &clock;
  PodInformer informer(client, clock, PodReflectorOptions());
  Reflector& r = informer.reflector();
  client.lists.push_back(PodList("10", {"a"}));
  ASSERT_EQ(r.Step({}), ReflectorState::kWatching);
  // The server's timeoutSeconds with nothing to tell.
  client.watches.push_back({ApiStatus::Ok(), {}, ApiStatus::Ok(), 300s});
  EXPECT_EQ(r.Step({}), ReflectorState::kWatching);
  // Quick ones, but with a bookmark, or an event.
  client.watches.push_back(
      {ApiStatus::Ok(), {R"({"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"15"}}})"}});
  EXPECT_EQ(r.Step({}), ReflectorState::kWatching);
  client.watches.push_back({ApiStatus::Ok(), {Event("ADDED", "b", 16)}});
  EXPECT_EQ(r.Step({}), ReflectorState::kWatching);
  EXPECT_TRUE(clock.slept().empty());
  EXPECT_EQ(r.stats().short_watches, 0u);
  EXPECT_EQ(r.resource_version(), "16");
}

// A codec that throws, as nlohmann does on a wrongly typed field: the first list page and every
// watch event.
struct Thing {
  std::string namespace_name;
  std::string name;
  std::string resource_version;
};
class ThrowingCodec : public SharedStorage<Thing> {
 public:
  Status DecodeList(std::string_view, const std::function<void(Thing&&)>&, ListPageMeta& meta) {
    if (lists_++ == 0) throw std::runtime_error("list boom");
    meta.resource_version = "10";
    return {};
  }
  capwatch::Result<Thing> Decode(std::string_view) { throw std::out_of_range("event boom"); }

 private:
  int lists_ = 0;
};

TEST(Informer, ACodecThatThrowsIsCaughtAndCountsAsUndecodable) {
  FakeClock clock;
  ScriptedClient client;
  ReflectorOptions o;
  o.resource = ResourceRef::Pods();
  Informer<Thing, ThrowingCodec> informer(client, clock, o);
  Reflector& r = informer.reflector();
  client.lists.push_back(std::string("{}"));
  client.lists.push_back(std::string("{}"));
  ReflectorState s{};
  ASSERT_NO_THROW(s = r.Step({}));
  EXPECT_EQ(s, ReflectorState::kBackoff) << "the page counts as undecodable";
  EXPECT_EQ(r.Step({}), ReflectorState::kListing);
  EXPECT_EQ(r.Step({}), ReflectorState::kWatching);
  client.watches.push_back({ApiStatus::Ok(), {Event("ADDED", "x", 11)}});
  ASSERT_NO_THROW(s = r.Step({}));
  EXPECT_EQ(s, ReflectorState::kListing);
  EXPECT_EQ(r.stats().decode_errors, 2u);
  EXPECT_EQ(r.stats().relists_decode, 1u);

  auto applied = informer.ApplyEvent(WatchEventType::kAdded, "{}");
  EXPECT_FALSE(applied.ok());
  EXPECT_THAT(applied.error().ToString(), HasSubstr("event boom"));
}

TEST(Reflector, BookmarksAndErrorEventsWithWronglyTypedFieldsDoNotThrow) {
  FakeClock clock;
  ScriptedClient client;
  client.clock = &clock;
  PodInformer informer(client, clock, PodReflectorOptions());
  Reflector& r = informer.reflector();
  client.lists.push_back(PodList("10", {}));
  ASSERT_EQ(r.Step({}), ReflectorState::kWatching);
  ReflectorState s{};
  client.watches.push_back({ApiStatus::Ok(),
                            {R"({"type":"BOOKMARK","object":{"metadata":{"resourceVersion":15}}})",
                             R"({"type":"BOOKMARK","object":{"metadata":"x"}})"},
                            ApiStatus::Ok(),
                            300s});
  ASSERT_NO_THROW(s = r.Step({}));
  EXPECT_EQ(s, ReflectorState::kWatching);
  EXPECT_EQ(r.resource_version(), "10") << "a resourceVersion that is not a string is not one";
  client.watches.push_back(
      {ApiStatus::Ok(),
       {R"({"type":"ERROR","object":{"kind":"Status","code":"410","reason":7,"message":{"a":1}}})"}});
  ASSERT_NO_THROW(s = r.Step({}));
  EXPECT_EQ(s, ReflectorState::kBackoff);
  EXPECT_EQ(r.stats().error_events, 1u);
}

TEST(ApiStatus, AStatusWithWronglyTypedFieldsIsReadWithoutThrowing) {
  ApiStatus s;
  ASSERT_NO_THROW(s = ApiStatus::FromResponse(503, R"({"kind":"Status","message":5,
      "reason":["Gone"],"details":{"causes":[{"reason":1,"message":null,"field":{}}, 7],
      "retryAfterSeconds":1e300}})"));
  EXPECT_EQ(s.reason(), StatusReason::kServiceUnavailable);
  EXPECT_FALSE(s.message().empty());
  ASSERT_NO_THROW(s = ApiStatus::FromResponse(429, R"({"kind":7,"message":"slow down"})"));
  EXPECT_EQ(s.reason(), StatusReason::kTooManyRequests);
  ASSERT_NO_THROW(
      s = ApiStatus::FromResponse(429, R"({"kind":"Status","details":{"retryAfterSeconds":-5}})"));
  if (s.retry_after()) {
    EXPECT_GE(s.retry_after().value(), std::chrono::seconds(0));
  }
}

}  // namespace
}  // namespace capwatch::kube

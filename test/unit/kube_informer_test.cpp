#include <gtest/gtest.h>

#include <gmock/gmock.h>

#include <thread>

#include "controller/metadata_informer.h"
#include "controller/pod_informer.h"
#include "kube/rest_client.h"
#include "kube_fake_server.h"
#include "kube_fakes.h"
#include "workload/owner_resolution.h"

namespace capwatch::kube {
namespace {

// The Pod and owner-metadata informers live in lib/controller (capwatch_cluster_views).
using controller::MakeOwnerLookup;
using controller::MetadataInformer;
using controller::MetadataReflectorOptions;
using controller::PodInformer;
using controller::PodReflectorOptions;

using namespace std::chrono_literals;
using testing::Connection;
using ::testing::ElementsAre;
using testing::FakeApiServer;
using testing::FakePodsApi;
using testing::HttpRequest;

template <typename Pred>
bool Eventually(Pred pred, std::chrono::milliseconds timeout = 8s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return pred();
}

// A Pods API server, a client, an informer running on its own thread, and the log of what
// the handlers were told: "ADD ns/name tag", "UPDATE ns/name old->new", "DELETE ns/name".
class Harness {
 public:
  // Paginated lists of `page_size` unless `whole_lists`: then unpaginated lists cut into pages
  // of about `page_bytes`.
  explicit Harness(int page_size = 2, std::chrono::milliseconds watch_grace = 1s,
                   bool whole_lists = false, std::size_t page_bytes = 4u << 20)
      : server_([this](const HttpRequest& r, Connection& c) { api.Handle(r, c); }) {
    TransportOptions t;
    t.request_timeout = 2s;
    t.watch_read_grace = watch_grace;
    t.qps = 0;
    t.max_retries = 0;  // let the reflector's own backoff handle failures
    RestConfig cfg;
    cfg.server = server_.url();
    cfg.allow_insecure_http = true;  // the fake server speaks plain HTTP
    client_ = std::move(RestClient::Make(cfg, t)).value();
    ReflectorOptions o = PodReflectorOptions();
    o.page_size = page_size;
    o.stream_lists = whole_lists;
    o.page_bytes = page_bytes;
    o.min_watch_timeout = 1s;
    o.backoff.initial = 10ms;
    o.backoff.max = 100ms;
    informer_ = std::make_unique<PodInformer>(*client_, SystemClock(), o);
    informer_->AddHandlers({[this](const PodView& p) { Log("ADD " + Key(p) + " " + Tag(p)); },
                            [this](const PodView& a, const PodView& b) {
                              Log("UPDATE " + Key(b) + " " + Tag(a) + "->" + Tag(b));
                            },
                            [this](const PodView& p) { Log("DELETE " + Key(p)); }});
  }
  ~Harness() { Stop(); }

  void Start() {
    runner_ = std::jthread([this](std::stop_token stop) { informer_->Run(stop); });
  }
  void Stop() {
    if (runner_.joinable()) {
      runner_.request_stop();
      runner_.join();
    }
    server_.Stop();
  }
  bool WaitForSync() { return informer_->WaitForSync({}, 8s); }

  // The cache as namespace/name -> image tag, to compare with the server's state.
  std::map<std::string, std::string> Cache() const {
    std::map<std::string, std::string> out;
    for (const auto& p : informer_->List()) out[Key(*p)] = Tag(*p);
    return out;
  }
  bool CacheMatchesServer() const { return Cache() == api.State(); }
  std::vector<std::string> log() const {
    std::lock_guard lock(mu_);
    return log_;
  }
  bool LogHas(std::size_t n) const { return log().size() >= n; }
  PodInformer& informer() { return *informer_; }

  FakePodsApi api;

 private:
  static std::string Key(const PodView& p) { return p.namespace_name + "/" + p.name; }
  static std::string Tag(const PodView& p) {
    const std::string& image = p.containers.at(0).image;
    return image.substr(image.rfind(':') + 1);
  }
  void Log(std::string s) {
    std::lock_guard lock(mu_);
    log_.push_back(std::move(s));
  }

  FakeApiServer server_;
  std::unique_ptr<RestClient> client_;
  std::unique_ptr<PodInformer> informer_;
  mutable std::mutex mu_;
  std::vector<std::string> log_;
  std::jthread runner_;
};

TEST(PodInformer, ListsInPagesThenDeliversEventsOnceAndInOrder) {
  Harness h;
  for (const char* n : {"a", "b", "c", "d", "e"}) h.api.Upsert("prod", n);
  h.Start();
  ASSERT_TRUE(h.WaitForSync());
  EXPECT_TRUE(h.CacheMatchesServer());
  EXPECT_EQ(h.informer().reflector().stats().list_pages, 3u) << "5 pods, 2 a page";
  EXPECT_EQ(h.log().size(), 5u);

  h.api.Upsert("prod", "f");
  h.api.Upsert("prod", "a", "v2");
  h.api.Remove("prod", "b");
  h.api.Upsert("prod", "a", "v3");
  ASSERT_TRUE(Eventually([&] { return h.LogHas(9); }));
  const auto log = h.log();
  EXPECT_THAT(std::vector<std::string>(log.begin() + 5, log.end()),
              ElementsAre("ADD prod/f v1", "UPDATE prod/a v1->v2", "DELETE prod/b",
                          "UPDATE prod/a v2->v3"));
  EXPECT_TRUE(h.CacheMatchesServer());
  auto a = h.informer().Get("prod", "a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->resource_version, std::to_string(h.api.rv()));
  EXPECT_EQ(h.informer().Get("prod", "b"), nullptr);
}

TEST(PodInformer, GoneInTheMiddleOfAWatchRelistsAndReplacesTheCache) {
  Harness h;
  for (const char* n : {"a", "b", "c"}) h.api.Upsert("prod", n);
  h.Start();
  ASSERT_TRUE(h.WaitForSync());
  // While the watch is open: changes the client never sees as events, then etcd compacts and
  // the watch ends with ERROR 410.
  h.api.ChangeUnseenAndExpire([](FakePodsApi& api) {
    api.RemoveLocked("prod", "a");
    api.UpsertLocked("prod", "b", "v2");
    api.UpsertLocked("prod", "d", "v1");
  });
  ASSERT_TRUE(Eventually([&] { return h.CacheMatchesServer(); }));
  ASSERT_TRUE(Eventually([&] { return h.LogHas(6); }));
  const auto log = h.log();
  // The relist's difference, each once: d added, b updated, a deleted.
  EXPECT_THAT(
      std::vector<std::string>(log.begin() + 3, log.end()),
      ::testing::UnorderedElementsAre("ADD prod/d v1", "UPDATE prod/b v1->v2", "DELETE prod/a"));
  EXPECT_GE(h.informer().reflector().stats().relists_gone, 1u);
  EXPECT_GE(h.informer().reflector().stats().lists, 2u);

  // And the watch goes on from the new list.
  h.api.Upsert("prod", "e");
  ASSERT_TRUE(Eventually([&] { return h.CacheMatchesServer(); }));
  EXPECT_EQ(h.log().back(), "ADD prod/e v1");
}

TEST(PodInformer, ConnectionDroppedMidEventResumesFromTheLastResourceVersion) {
  Harness h;
  h.api.Upsert("prod", "a");
  h.Start();
  ASSERT_TRUE(h.WaitForSync());
  const std::string before = std::to_string(h.api.rv());
  h.api.drop_mid_event = 1;
  h.api.Upsert("prod", "b");
  h.api.Upsert("prod", "c");
  ASSERT_TRUE(Eventually([&] { return h.LogHas(3); }));
  ASSERT_TRUE(Eventually([&] { return h.CacheMatchesServer(); }));
  std::this_thread::sleep_for(50ms);
  EXPECT_THAT(h.log(), ElementsAre("ADD prod/a v1", "ADD prod/b v1", "ADD prod/c v1"))
      << "the half event is not delivered, the whole one once";
  const auto rvs = h.api.watch_rvs();
  ASSERT_GE(rvs.size(), 2u);
  EXPECT_EQ(rvs[1], before) << "the second watch resumes where the first one broke";
  EXPECT_EQ(h.informer().reflector().stats().lists, 1u) << "no relist needed";
}

TEST(PodInformer, GoneWhenReopeningTheWatchRelists) {
  Harness h;
  h.api.Upsert("prod", "a");
  h.Start();
  ASSERT_TRUE(h.WaitForSync());
  h.api.watch_gone_http = 1;
  h.api.drop_mid_event = 1;
  h.api.Upsert("prod", "b");
  ASSERT_TRUE(Eventually([&] { return h.CacheMatchesServer(); }));
  EXPECT_GE(h.informer().reflector().stats().relists_gone, 1u);
  std::this_thread::sleep_for(50ms);
  EXPECT_THAT(h.log(), ElementsAre("ADD prod/a v1", "ADD prod/b v1"));
}

// The default list over the wire: asked for whole, cut into pages as it arrives.
TEST(PodInformer, AWholeListArrivesInPagesOfItsBytes) {
  Harness h(2, 1s, /*whole_lists=*/true, /*page_bytes=*/1500);
  for (int i = 0; i < 12; ++i) h.api.Upsert("prod", "p" + std::to_string(i));
  h.Start();
  ASSERT_TRUE(h.WaitForSync());
  EXPECT_TRUE(h.CacheMatchesServer());
  const auto stats = h.informer().reflector().stats();
  EXPECT_EQ(stats.lists, 1u);
  EXPECT_GT(stats.list_pages, 2u) << "12 pods cut into pages of about 1,500 bytes";
  EXPECT_EQ(h.log().size(), 12u);
}

TEST(PodInformer, AnExpiredContinueTokenRestartsTheList) {
  Harness h;
  for (const char* n : {"a", "b", "c", "d", "e"}) h.api.Upsert("prod", n);
  h.api.expire_continue = 1;
  h.Start();
  ASSERT_TRUE(h.WaitForSync());
  EXPECT_TRUE(h.CacheMatchesServer());
  const auto stats = h.informer().reflector().stats();
  EXPECT_EQ(stats.list_restarts, 1u);
  EXPECT_EQ(stats.lists, 1u);
  EXPECT_EQ(h.log().size(), 5u) << "the abandoned first page is not announced";
}

TEST(PodInformer, WatchSplitAtEveryByteOnTheWire) {
  Harness h;
  h.api.Upsert("prod", "a");
  h.api.byte_chunks = true;
  h.Start();
  ASSERT_TRUE(h.WaitForSync());
  h.api.Upsert("prod", "b");
  h.api.Upsert("prod", "a", "v2");
  h.api.Remove("prod", "b");
  ASSERT_TRUE(Eventually([&] { return h.LogHas(4); }));
  EXPECT_THAT(h.log(), ElementsAre("ADD prod/a v1", "ADD prod/b v1", "UPDATE prod/a v1->v2",
                                   "DELETE prod/b"));
}

TEST(PodInformer, BookmarksAdvanceTheResourceVersion) {
  Harness h;
  h.api.Upsert("prod", "a");
  h.api.bookmark_at_end = true;
  h.Start();
  ASSERT_TRUE(h.WaitForSync());
  const long long moved = h.api.BumpRv();
  // The watch ends after timeoutSeconds (1-2 s) with a bookmark; the next one starts there.
  ASSERT_TRUE(Eventually([&] {
    const auto rvs = h.api.watch_rvs();
    return !rvs.empty() && rvs.back() == std::to_string(moved);
  }));
  EXPECT_GE(h.informer().reflector().stats().bookmarks, 1u);
  EXPECT_EQ(h.informer().reflector().stats().lists, 1u);
}

TEST(PodInformer, ErrorEventBacksOffAndWatchesAgainWithoutRelisting) {
  Harness h;
  h.api.Upsert("prod", "a");
  h.api.watch_error_500 = 1;
  h.Start();
  ASSERT_TRUE(h.WaitForSync());
  h.api.Upsert("prod", "b");
  ASSERT_TRUE(Eventually([&] { return h.CacheMatchesServer(); }));
  const auto stats = h.informer().reflector().stats();
  EXPECT_EQ(stats.error_events, 1u);
  EXPECT_GE(stats.backoffs, 1u);
  EXPECT_EQ(stats.lists, 1u);
}

TEST(PodInformer, ListFailuresBackOffUntilTheServerRecovers) {
  Harness h;
  h.api.Upsert("prod", "a");
  h.api.list_500 = 3;
  h.Start();
  ASSERT_TRUE(h.WaitForSync());
  EXPECT_TRUE(h.CacheMatchesServer());
  EXPECT_GE(h.informer().reflector().stats().backoffs, 3u);
  EXPECT_EQ(h.api.lists.load(), 4);
}

TEST(PodInformer, AHungWatchTimesOutAndReconnects) {
  Harness h(2, /*watch_grace=*/300ms);
  h.api.Upsert("prod", "a");
  h.api.hang_watch = 1;
  h.Start();
  ASSERT_TRUE(h.WaitForSync());
  h.api.Upsert("prod", "b");
  // The hung watch ends at timeoutSeconds (1-2 s) + 300 ms; the next one catches up.
  ASSERT_TRUE(Eventually([&] { return h.CacheMatchesServer(); }, 6s));
  EXPECT_GE(h.informer().reflector().stats().backoffs, 1u);
  EXPECT_THAT(h.log(), ElementsAre("ADD prod/a v1", "ADD prod/b v1"));
}

TEST(PodInformer, StopsPromptlyWhileWatching) {
  Harness h;
  h.api.Upsert("prod", "a");
  h.Start();
  ASSERT_TRUE(h.WaitForSync());
  std::this_thread::sleep_for(100ms);
  const auto start = std::chrono::steady_clock::now();
  h.Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
}

TEST(MetadataInformer, ReadsPartialObjectMetadataAndResolvesOwners) {
  std::mutex mu;
  std::vector<std::string> accepts;
  FakeApiServer server([&](const HttpRequest& r, Connection& c) {
    {
      std::lock_guard lock(mu);
      accepts.push_back(r.Header("accept"));
    }
    if (r.Query("watch") == "true") {
      c.StartChunked(200);
      c.Sleep(200ms);
      c.EndChunked();
      return;
    }
    if (r.path == "/apis/apps/v1/replicasets") {
      c.Respond(200, R"({"kind":"PartialObjectMetadataList","apiVersion":"meta.k8s.io/v1",
        "metadata":{"resourceVersion":"50"},"items":[
        {"kind":"PartialObjectMetadata","metadata":{"name":"web-5d4f8c","namespace":"prod",
         "uid":"rs-1","resourceVersion":"40","ownerReferences":[{"apiVersion":"apps/v1",
         "kind":"Deployment","name":"web","uid":"dep-1","controller":true}]}}]})");
    } else {
      c.Respond(200, R"({"kind":"PartialObjectMetadataList","metadata":{"resourceVersion":"50"},
        "items":[{"metadata":{"name":"backup-28000","namespace":"ops","uid":"job-1",
        "ownerReferences":[{"apiVersion":"batch/v1","kind":"CronJob","name":"backup",
        "uid":"cj-1","controller":true}]}}]})");
    }
  });
  TransportOptions t;
  t.qps = 0;
  RestConfig cfg;
  cfg.server = server.url();
  cfg.allow_insecure_http = true;
  auto client = std::move(RestClient::Make(cfg, t)).value();
  auto rs_opts = MetadataReflectorOptions(ResourceRef::ReplicaSets());
  auto job_opts = MetadataReflectorOptions(ResourceRef::Jobs());
  rs_opts.min_watch_timeout = job_opts.min_watch_timeout = 1s;
  MetadataInformer rs(*client, SystemClock(), rs_opts);
  MetadataInformer jobs(*client, SystemClock(), job_opts);
  {
    std::jthread a([&](std::stop_token s) { rs.Run(s); });
    std::jthread b([&](std::stop_token s) { jobs.Run(s); });
    ASSERT_TRUE(rs.WaitForSync({}, 5s));
    ASSERT_TRUE(jobs.WaitForSync({}, 5s));
  }
  server.Stop();
  {
    std::lock_guard lock(mu);
    for (const auto& a : accepts)
      EXPECT_NE(a.find("as=PartialObjectMetadata"), std::string::npos) << a;
  }
  const OwnerLookup lookup = MakeOwnerLookup(rs, jobs);
  PodView pod;
  pod.namespace_name = "prod";
  pod.name = "web-5d4f8c-x";
  pod.owners.push_back({"apps/v1", "ReplicaSet", "web-5d4f8c", "rs-1", true});
  const WorkloadRef web = ResolveWorkload(pod, lookup);
  EXPECT_EQ(web.kind, "Deployment");
  EXPECT_EQ(web.name, "web");
  PodView job_pod;
  job_pod.namespace_name = "ops";
  job_pod.name = "backup-28000-x";
  job_pod.owners.push_back({"batch/v1", "Job", "backup-28000", "job-1", true});
  EXPECT_EQ(ResolveWorkload(job_pod, lookup).kind, "CronJob");
}

}  // namespace
}  // namespace capwatch::kube

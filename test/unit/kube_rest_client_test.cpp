#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

#include "kube/rest_client.h"
#include "kube_fake_server.h"
#include "kube_fakes.h"

namespace capwatch::kube {
namespace {

using namespace std::chrono_literals;
using testing::Connection;
using testing::FakeApiServer;
using testing::HttpRequest;
using testing::StatusJson;
using testing::TempDir;

TransportOptions FastOptions() {
  TransportOptions o;
  o.request_timeout = 2s;
  o.watch_read_grace = 1s;
  o.qps = 0;  // no client-side limit unless a test wants one
  o.max_retries = 3;
  o.retry_backoff.initial = 10ms;
  o.retry_backoff.max = 50ms;
  return o;
}

std::unique_ptr<RestClient> Client(const std::string& url, TransportOptions options = FastOptions(),
                                   RestConfig config = {}) {
  config.server = url;
  config.allow_insecure_http = true;  // the fake server speaks plain HTTP
  auto c = RestClient::Make(std::move(config), std::move(options));
  EXPECT_TRUE(c.ok()) << c.error().ToString();
  return c.ok() ? std::move(c).value() : nullptr;
}

// Records every request and answers 200 with `{}`.
struct Recorder {
  std::mutex mu;
  std::vector<HttpRequest> requests;
  void operator()(const HttpRequest& r, Connection& c) {
    {
      std::lock_guard lock(mu);
      requests.push_back(r);
    }
    c.Respond(r.method == "POST" ? 201 : 200, R"({"kind":"Thing"})");
  }
  HttpRequest last() {
    std::lock_guard lock(mu);
    return requests.back();
  }
};

// A bearer token sent to an http:// server crosses the network in clear text, as does every
// object: refused unless the caller says so (capwatch controller --allow-insecure-api-server).
TEST(RestClient, RefusesAPlainHttpServer) {
  for (const std::string url : {"http://10.0.0.1:8080", "HTTP://10.0.0.1:8080"}) {
    RestConfig cfg;
    cfg.server = url;
    cfg.token = "secret-token";
    cfg.source = "kubeconfig /tmp/k, context dev";
    auto refused = RestClient::Make(cfg, FastOptions());
    ASSERT_FALSE(refused.ok()) << url;
    EXPECT_EQ(refused.error().reason(), StatusReason::kConfig);
    const std::string& m = refused.error().message();
    EXPECT_NE(m.find(url), std::string::npos) << m;
    EXPECT_NE(m.find("--allow-insecure-api-server"), std::string::npos) << m;
    EXPECT_NE(m.find("kubeconfig /tmp/k, context dev"), std::string::npos) << m;

    cfg.allow_insecure_http = true;
    auto allowed = RestClient::Make(cfg, FastOptions());
    EXPECT_TRUE(allowed.ok()) << allowed.error().ToString();
  }
}

TEST(RestClient, VerbsBuildTheRightRequests) {
  Recorder rec;
  FakeApiServer server([&](const HttpRequest& r, Connection& c) { rec(r, c); });
  RestConfig cfg;
  cfg.token = "secret-token";
  auto client = Client(server.url(), FastOptions(), cfg);
  const auto reports = ResourceRef{"capwatch.io", "v1alpha1", "capabilityreports", "prod"};

  ASSERT_TRUE(client->Get(ResourceRef::Pods("prod"), "web-1").ok());
  auto r = rec.last();
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.path, "/api/v1/namespaces/prod/pods/web-1");
  EXPECT_EQ(r.Header("user-agent"), std::string(CapwatchUserAgent()));
  EXPECT_EQ(r.Header("user-agent").substr(0, 9), "capwatch/");
  EXPECT_EQ(r.Header("authorization"), "Bearer secret-token");

  ListOptions lo;
  lo.limit = 50;
  lo.continue_token = "abc=";
  lo.label_selector = "app in (web,db)";
  lo.metadata_only = true;
  ASSERT_TRUE(client->List(ResourceRef::ReplicaSets(), lo).ok());
  r = rec.last();
  EXPECT_EQ(r.path, "/apis/apps/v1/replicasets");
  EXPECT_EQ(r.Query("limit"), "50");
  EXPECT_EQ(r.Query("continue"), "abc=");
  EXPECT_EQ(r.Query("labelSelector"), "app in (web,db)");
  EXPECT_EQ(r.Header("accept"), std::string(kAcceptMetadataList));

  ASSERT_TRUE(client->Create(reports, R"({"a":1})").ok());
  r = rec.last();
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.path, "/apis/capwatch.io/v1alpha1/namespaces/prod/capabilityreports");
  EXPECT_EQ(r.body, R"({"a":1})");
  EXPECT_EQ(r.Query("fieldManager"), "capwatch");

  WriteOptions status;
  status.subresource = "status";
  ASSERT_TRUE(client->Update(reports, "deployment-web", R"({"b":2})", status).ok());
  r = rec.last();
  EXPECT_EQ(r.method, "PUT");
  EXPECT_EQ(r.path,
            "/apis/capwatch.io/v1alpha1/namespaces/prod/capabilityreports/deployment-web/status");

  struct Case {
    PatchType type;
    const char* content_type;
  };
  for (const Case& c : {Case{PatchType::kMerge, "application/merge-patch+json"},
                        Case{PatchType::kJsonPatch, "application/json-patch+json"},
                        Case{PatchType::kStrategicMerge, "application/strategic-merge-patch+json"},
                        Case{PatchType::kApply, "application/apply-patch+yaml"}}) {
    WriteOptions wo;
    wo.force = true;
    ASSERT_TRUE(client->Patch(reports, "deployment-web", c.type, "{}", wo).ok());
    r = rec.last();
    EXPECT_EQ(r.method, "PATCH");
    EXPECT_EQ(r.Header("content-type").substr(0, std::string(c.content_type).size()),
              c.content_type);
    EXPECT_EQ(r.Query("fieldManager"), "capwatch");
    EXPECT_EQ(r.Query("force"), c.type == PatchType::kApply ? "true" : "");
  }

  ASSERT_TRUE(client->Delete(reports, "deployment-web").ok());
  EXPECT_EQ(rec.last().method, "DELETE");
}

TEST(RestClient, ErrorsAreValuesWithTheApiReason) {
  std::atomic<int> posts{0};
  FakeApiServer server([&](const HttpRequest& r, Connection& c) {
    if (r.path.ends_with("/missing")) {
      c.Respond(404, StatusJson(404, "NotFound", "pods \"missing\" not found"));
    } else if (r.path.ends_with("/taken")) {
      c.Respond(409, StatusJson(409, "Conflict", "the object has been modified"));
    } else if (r.method == "POST") {
      ++posts;
      c.Respond(500, StatusJson(500, "InternalError", "etcd timeout"));
    } else {
      c.Respond(422, R"({"kind":"Status","reason":"Invalid","message":"bad","code":422,
        "details":{"causes":[{"field":"spec.x","message":"Required value"}]}})");
    }
  });
  auto client = Client(server.url());
  auto missing = client->Get(ResourceRef::Pods("prod"), "missing");
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(missing.error().IsNotFound());
  EXPECT_EQ(missing.error().http_status(), 404);
  EXPECT_NE(missing.error().message().find("get pods prod/missing"), std::string::npos)
      << "the message names the object: " << missing.error().message();

  auto taken = client->Update(ResourceRef::Pods("prod"), "taken", "{}");
  EXPECT_TRUE(taken.error().IsConflict());

  auto invalid = client->Patch(ResourceRef::Pods("prod"), "x", PatchType::kMerge, "{}");
  EXPECT_EQ(invalid.error().reason(), StatusReason::kInvalid);
  ASSERT_EQ(invalid.error().causes().size(), 1u);
  EXPECT_EQ(invalid.error().causes()[0].field, "spec.x");

  auto created = client->Create(ResourceRef::Pods("prod"), "{}");
  EXPECT_EQ(created.error().reason(), StatusReason::kInternalError);
  EXPECT_EQ(posts.load(), 1) << "a write is not retried on 500: it may have happened";
}

TEST(RestClient, ReadsRetryOn429HonouringRetryAfter) {
  std::atomic<int> calls{0};
  FakeApiServer server([&](const HttpRequest&, Connection& c) {
    if (calls++ == 0) {
      c.Respond(429, StatusJson(429, "TooManyRequests", "slow down"), {{"Retry-After", "1"}});
    } else {
      c.Respond(200, R"({"kind":"Pod"})");
    }
  });
  auto client = Client(server.url());
  const auto start = std::chrono::steady_clock::now();
  auto r = client->Get(ResourceRef::Pods("prod"), "web");
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(calls.load(), 2);
  EXPECT_GE(took, 950ms) << "waited for Retry-After";
  EXPECT_LT(took, 5s);
}

TEST(RestClient, ReadsRetryOn5xxThenGiveUp) {
  std::atomic<int> calls{0};
  FakeApiServer server([&](const HttpRequest&, Connection& c) {
    ++calls;
    c.Respond(503, StatusJson(503, "ServiceUnavailable", "apiserver is starting"));
  });
  auto opts = FastOptions();
  opts.max_retries = 2;
  auto client = Client(server.url(), opts);
  auto r = client->List(ResourceRef::Pods(), {});
  EXPECT_EQ(r.error().reason(), StatusReason::kServiceUnavailable);
  EXPECT_EQ(calls.load(), 3) << "the first attempt and two retries";

  // A 500 that clears up is invisible to the caller.
  std::atomic<int> flaky{0};
  FakeApiServer recovering([&](const HttpRequest&, Connection& c) {
    if (flaky++ < 2) {
      c.Respond(500, StatusJson(500, "InternalError", "boom"));
    } else {
      c.Respond(200, R"({"items":[]})");
    }
  });
  EXPECT_TRUE(Client(recovering.url())->List(ResourceRef::Pods(), {}).ok());
}

TEST(RestClient, HungServerTimesOut) {
  FakeApiServer server([&](const HttpRequest&, Connection& c) { c.Sleep(10s); });
  auto opts = FastOptions();
  opts.request_timeout = 300ms;
  opts.max_retries = 1;
  auto client = Client(server.url(), opts);
  const auto start = std::chrono::steady_clock::now();
  auto r = client->Get(ResourceRef::Pods("prod"), "web");
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r.error().reason(), StatusReason::kTransport) << r.error().ToString();
  EXPECT_LT(took, 3s);
  server.Stop();
}

TEST(RestClient, ConnectionRefusedIsATransportError) {
  int port;
  {
    FakeApiServer gone([](const HttpRequest&, Connection&) {});
    port = gone.port();
  }
  auto opts = FastOptions();
  opts.max_retries = 0;
  auto client = Client("http://127.0.0.1:" + std::to_string(port), opts);
  auto r = client->Get(ResourceRef::Pods("prod"), "web");
  EXPECT_EQ(r.error().reason(), StatusReason::kTransport);
}

TEST(RestClient, RotatedTokenFileIsPickedUp) {
  TempDir dir;
  dir.Write("token", "first-token\n");
  std::mutex mu;
  std::string accepted = "first-token";
  std::vector<std::string> seen;
  FakeApiServer server([&](const HttpRequest& r, Connection& c) {
    std::lock_guard lock(mu);
    seen.push_back(r.Header("authorization"));
    if (r.Header("authorization") == "Bearer " + accepted) {
      c.Respond(200, "{}");
    } else {
      c.Respond(401, StatusJson(401, "Unauthorized", "Unauthorized"));
    }
  });
  RestConfig cfg;
  cfg.token_file = dir.File("token");
  auto client = Client(server.url(), FastOptions(), cfg);
  ASSERT_TRUE(client->Get(ResourceRef::Pods("a"), "b").ok());

  // The kubelet rotates the projected token: the next request carries the new one.
  dir.Write("token", "second-token-longer\n");
  {
    std::lock_guard lock(mu);
    accepted = "second-token-longer";
  }
  ASSERT_TRUE(client->Get(ResourceRef::Pods("a"), "b").ok());
  std::lock_guard lock(mu);
  EXPECT_EQ(seen.back(), "Bearer second-token-longer");
}

TEST(RestClient, ExecPluginTokenIsCachedUntilItExpires) {
  TempDir dir;
  const std::string script = dir.File("get-token.sh");
  auto write_plugin = [&](const std::string& expiry) {
    dir.Write("get-token.sh",
              "#!/bin/sh\n"
              "echo run >> '" +
                  dir.File("runs") +
                  "'\n"
                  "printf '%s' \"$KUBERNETES_EXEC_INFO\" > '" +
                  dir.File("info") +
                  "'\n"
                  "cat <<JSON\n"
                  "{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\","
                  "\"status\":{\"token\":\"exec-token-$1\",\"expirationTimestamp\":\"" +
                  expiry +
                  "\"}}\n"
                  "JSON\n");
    ASSERT_EQ(testing::Shell("chmod +x '" + script + "'"), 0);
  };
  write_plugin("2099-01-01T00:00:00Z");
  std::mutex mu;
  std::vector<std::string> seen;
  FakeApiServer server([&](const HttpRequest& r, Connection& c) {
    std::lock_guard lock(mu);
    seen.push_back(r.Header("authorization"));
    c.Respond(200, "{}");
  });
  RestConfig cfg;
  ExecConfig exec;
  exec.command = script;
  exec.args = {"alpha"};
  exec.provide_cluster_info = true;
  cfg.exec = exec;
  auto client = Client(server.url(), FastOptions(), cfg);
  ASSERT_TRUE(client->Get(ResourceRef::Pods("a"), "b").ok());
  ASSERT_TRUE(client->Get(ResourceRef::Pods("a"), "b").ok());
  auto runs = [&] {
    const std::string text = testing::ReadFile(dir.File("runs"));
    return static_cast<int>(std::count(text.begin(), text.end(), '\n'));
  };
  EXPECT_EQ(runs(), 1) << "cached until expirationTimestamp";
  {
    std::lock_guard lock(mu);
    EXPECT_EQ(seen.back(), "Bearer exec-token-alpha");
  }
  const std::string info_text = testing::ReadFile(dir.File("info"));
  EXPECT_NE(info_text.find("\"kind\":\"ExecCredential\""), std::string::npos) << info_text;
  EXPECT_NE(info_text.find(server.url()), std::string::npos) << "provideClusterInfo";

  // An already expired credential is fetched again for every request.
  write_plugin("2000-01-01T00:00:00Z");
  auto client2 = Client(server.url(), FastOptions(), cfg);
  ASSERT_TRUE(client2->Get(ResourceRef::Pods("a"), "b").ok());
  ASSERT_TRUE(client2->Get(ResourceRef::Pods("a"), "b").ok());
  EXPECT_EQ(runs(), 3);

  // A failing plugin is a Config error naming the plugin, and no request is sent.
  dir.Write("get-token.sh", "#!/bin/sh\nexit 3\n");
  auto client3 = Client(server.url(), FastOptions(), cfg);
  const int before = server.requests();
  auto r = client3->Get(ResourceRef::Pods("a"), "b");
  EXPECT_EQ(r.error().reason(), StatusReason::kConfig);
  EXPECT_NE(r.error().message().find("exited with status 3"), std::string::npos)
      << r.error().message();
  EXPECT_EQ(server.requests(), before);
}

TEST(RestClient, TokenBucketLimitsTheRequestRate) {
  FakeApiServer server([&](const HttpRequest&, Connection& c) { c.Respond(200, "{}"); });
  auto opts = FastOptions();
  opts.qps = 20;
  opts.burst = 2;
  auto client = Client(server.url(), opts);
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(client->Get(ResourceRef::Pods("a"), "b").ok());
  // Two from the burst, four at 20/s.
  EXPECT_GE(std::chrono::steady_clock::now() - start, 180ms);
}

TEST(RestClient, WatchHandsOutEachLineAsItArrives) {
  std::atomic<bool> first_read{false};
  FakeApiServer server([&](const HttpRequest& r, Connection& c) {
    EXPECT_EQ(r.Query("watch"), "true");
    EXPECT_EQ(r.Query("allowWatchBookmarks"), "true");
    EXPECT_EQ(r.Query("timeoutSeconds"), "5");
    EXPECT_EQ(r.Query("resourceVersion"), "7");
    c.StartChunked(200);
    c.Chunk(R"({"type":"ADDED","object":{"metadata":{"name":"a","resourceVersion":"8"}}})"
            "\n");
    // The second event is only sent once the client has seen the first (or after 5 s, so a
    // broken client fails the test instead of hanging it).
    for (int i = 0; i < 500 && !first_read; ++i) c.Sleep(10ms);
    c.Chunk(R"({"type":"DELETED","object":{"metadata":{"name":"a","resourceVersion":"9"}}})"
            "\n");
    c.EndChunked();
  });
  auto client = Client(server.url());
  ListOptions lo;
  lo.resource_version = "7";
  lo.timeout_seconds = 5;
  auto watch = client->Watch(ResourceRef::Pods(), lo, {});
  ASSERT_TRUE(watch.ok()) << watch.error().ToString();
  std::string line;
  ASSERT_TRUE(watch.value()->NextLine(line));
  EXPECT_NE(line.find("ADDED"), std::string::npos);
  first_read = true;
  ASSERT_TRUE(watch.value()->NextLine(line));
  EXPECT_NE(line.find("DELETED"), std::string::npos);
  EXPECT_FALSE(watch.value()->NextLine(line));
  EXPECT_TRUE(watch.value()->status().ok())
      << "a clean end: " << watch.value()->status().ToString();
}

TEST(RestClient, StoppingAWatchEndsItPromptly) {
  FakeApiServer server([&](const HttpRequest&, Connection& c) {
    c.StartChunked(200);
    c.Sleep(30s);
  });
  auto client = Client(server.url());
  std::stop_source stop;
  ListOptions lo;
  lo.timeout_seconds = 30;
  auto watch = client->Watch(ResourceRef::Pods(), lo, stop.get_token());
  ASSERT_TRUE(watch.ok());
  std::jthread stopper([&] {
    std::this_thread::sleep_for(200ms);
    stop.request_stop();
  });
  const auto start = std::chrono::steady_clock::now();
  std::string line;
  EXPECT_FALSE(watch.value()->NextLine(line));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  server.Stop();
}

// Reads (lists, gets, watches) keep their connection for the next request: a new TLS
// session per request is what made a cold start expensive.
TEST(RestClient, ReadsReuseTheirConnection) {
  FakeApiServer server([](const HttpRequest&, Connection& c) { c.Respond(200, "{}"); });
  auto client = Client(server.url());
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(client->Get(ResourceRef::Pods("a"), "b").ok());
  EXPECT_EQ(server.requests(), 5);
  EXPECT_EQ(server.connections(), 1);
}

// The server may close a kept connection at any time; the next read dials again instead of
// failing.
TEST(RestClient, AKeptConnectionTheServerClosedIsReplaced) {
  FakeApiServer server([](const HttpRequest&, Connection& c) {
    c.Respond(200, "{}");
    c.Drop();
  });
  auto opts = FastOptions();
  opts.max_retries = 0;  // no retry hides a failure here
  auto client = Client(server.url(), opts);
  for (int i = 0; i < 3; ++i) {
    auto got = client->Get(ResourceRef::Pods("a"), "b");
    ASSERT_TRUE(got.ok()) << "request " << i << ": " << got.error().ToString();
  }
  EXPECT_EQ(server.connections(), 3);
}

// A server URL with a path (a proxy that routes on it, as Rancher's does) keeps it in front of
// every request; a query or fragment in it is refused.
TEST(RestClient, TheServerURLsPathPrefixesEveryRequest) {
  Recorder rec;
  FakeApiServer server(std::ref(rec));
  auto client = Client(server.url() + "/k8s/clusters/c-1/");
  ASSERT_TRUE(client->Get(ResourceRef::Pods("a"), "b").ok());
  EXPECT_EQ(rec.last().path, "/k8s/clusters/c-1/api/v1/namespaces/a/pods/b");
  ASSERT_TRUE(client->Create(ResourceRef::Pods("a"), "{}").ok());
  EXPECT_EQ(rec.last().path, "/k8s/clusters/c-1/api/v1/namespaces/a/pods");
  for (const char* bad : {"?x=1", "#f"}) {
    RestConfig config;
    config.server = server.url() + bad;
    config.allow_insecure_http = true;
    auto refused = RestClient::Make(config);
    ASSERT_FALSE(refused.ok()) << bad;
    EXPECT_NE(refused.error().message().find("query or fragment"), std::string::npos)
        << refused.error().ToString();
  }
}

// The same for writes: after an API server restart every kept connection is dead, and the
// first write after it must not fail on one (each request is sent to the server once).
TEST(RestClient, AWriteOnAKeptConnectionTheServerClosedIsSentOnANewOne) {
  std::mutex mu;
  std::vector<std::string> seen;
  FakeApiServer server([&](const HttpRequest& r, Connection& c) {
    {
      std::lock_guard lock(mu);
      seen.push_back(r.method + " " + r.body);
    }
    c.Respond(r.method == "POST" ? 201 : 200, R"({"kind":"Thing"})");
    c.Drop();
  });
  auto opts = FastOptions();
  opts.max_retries = 0;  // no retry hides a failure here
  auto client = Client(server.url(), opts);
  ASSERT_TRUE(client->Get(ResourceRef::Pods("a"), "b").ok());
  const auto ref = ResourceRef::Pods("a");
  auto created = client->Create(ref, R"({"n":1})");
  ASSERT_TRUE(created.ok()) << created.error().ToString();
  auto updated = client->Update(ref, "b", R"({"n":2})");
  ASSERT_TRUE(updated.ok()) << updated.error().ToString();
  auto patched = client->Patch(ref, "b", PatchType::kMerge, R"({"n":3})");
  ASSERT_TRUE(patched.ok()) << patched.error().ToString();
  auto deleted = client->Delete(ref, "b");
  ASSERT_TRUE(deleted.ok()) << deleted.error().ToString();
  std::lock_guard lock(mu);
  EXPECT_EQ(seen, (std::vector<std::string>{"GET ", R"(POST {"n":1})", R"(PUT {"n":2})",
                                            R"(PATCH {"n":3})", "DELETE "}));
}

// A write the server took but never answered is not sent again: only the caller knows
// whether repeating it is safe.
TEST(RestClient, AWriteTheServerTookButNeverAnsweredIsNotRepeated) {
  std::atomic<int> posts{0};
  FakeApiServer server([&](const HttpRequest& r, Connection& c) {
    if (r.method == "POST") ++posts;
    c.Drop();
  });
  auto opts = FastOptions();
  opts.max_retries = 3;
  auto client = Client(server.url(), opts);
  auto created = client->Create(ResourceRef::Pods("a"), R"({"n":1})");
  ASSERT_FALSE(created.ok());
  EXPECT_EQ(created.error().reason(), StatusReason::kTransport) << created.error().ToString();
  EXPECT_EQ(posts.load(), 1);
}

// A body cut short is a transport error, never a shorter body taken as the whole.
TEST(RestClient, ABodyCutShortIsATransportError) {
  FakeApiServer server([](const HttpRequest& r, Connection& c) {
    if (r.Query("chunked") == "1") {
      c.StartChunked(200);
      c.Chunk(R"({"kind":"PodList","items":[)");
    } else {
      c.Write(
          "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
          R"({"kind":"PodList")");
    }
    c.Drop();
  });
  auto opts = FastOptions();
  opts.max_retries = 1;
  auto client = Client(server.url(), opts);
  for (const char* chunked : {"0", "1"}) {
    Request r;
    r.path = "/api/v1/pods";
    r.query = {{"chunked", chunked}};
    r.what = "list pods";
    auto got = client->Send(r, {});
    ASSERT_FALSE(got.ok());
    EXPECT_EQ(got.error().reason(), StatusReason::kTransport) << got.error().ToString();
    EXPECT_NE(got.error().message().find("closed"), std::string::npos) << got.error().ToString();
  }
}

// A list of many small chunks (the API server writes one per item) arrives whole.
TEST(RestClient, AManyChunkBodyArrivesWhole) {
  std::string want;
  for (int i = 0; i < 3000; ++i) want += std::string(i % 97 + 1, static_cast<char>('a' + i % 26));
  FakeApiServer server([&want](const HttpRequest&, Connection& c) {
    c.StartChunked(200);
    for (std::size_t at = 0, i = 0; at < want.size(); ++i) {
      const std::size_t n = std::min<std::size_t>(i % 97 + 1, want.size() - at);
      c.Chunk(std::string_view(want).substr(at, n));
      at += n;
    }
    c.EndChunked();
  });
  auto client = Client(server.url());
  Request r;
  r.path = "/api/v1/pods";
  r.what = "list pods";
  auto got = client->Send(r, {});
  ASSERT_TRUE(got.ok()) << got.error().ToString();
  EXPECT_EQ(got.value(), want);
}

}  // namespace
}  // namespace capwatch::kube

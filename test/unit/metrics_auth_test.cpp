// Who may read /metrics: the TokenReview + SubjectAccessReview authorizer on the in-memory
// FakeKubeClient with a FakeClock, and the serving certificate it is served with.
#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include "controller/metrics_auth.h"
#include "controller/serving_cert.h"
#include "fake_clock.h"
#include "fake_kube_client.h"

namespace capwatch::controller {
namespace {

using json = nlohmann::json;
using kube::ApiStatus;
using kube::StatusReason;
using kube::Verb;
using testing::FakeKubeClient;

// The API server's side: tokens it knows, and users bound to the metrics-reader role.
class MetricsAuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    api_.SetAnswer("tokenreviews", [this](const json& review) {
      const std::string token = review["spec"]["token"];
      json status = {{"authenticated", false}};
      if (auto it = tokens_.find(token); it != tokens_.end()) {
        status = {{"authenticated", true},
                  {"user",
                   {{"username", it->second},
                    {"uid", "uid-" + it->second},
                    {"groups", {"system:serviceaccounts", "system:authenticated"}},
                    {"extra", {{"authentication.kubernetes.io/pod-name", {"prometheus-0"}}}}}}};
      } else {
        status["error"] = "invalid bearer token";
      }
      return json{{"apiVersion", "authentication.k8s.io/v1"}, {"kind", "TokenReview"},
                  {"status", status}};
    });
    api_.SetAnswer("subjectaccessreviews", [this](const json& review) {
      last_access_review_ = review;
      const auto& spec = review["spec"];
      const bool allowed = readers_.count(spec["user"].get<std::string>()) > 0 &&
                           spec["nonResourceAttributes"]["path"] == "/metrics" &&
                           spec["nonResourceAttributes"]["verb"] == "get";
      return json{{"apiVersion", "authorization.k8s.io/v1"},
                  {"kind", "SubjectAccessReview"},
                  {"status", {{"allowed", allowed}}}};
    });
    tokens_["prom-token"] = "system:serviceaccount:monitoring:prometheus";
    tokens_["other-token"] = "system:serviceaccount:default:nosy";
    readers_.insert("system:serviceaccount:monitoring:prometheus");
  }

  int Reviews() { return api_.Count(Verb::kPost, "tokenreviews", false) +
                         api_.Count(Verb::kPost, "subjectaccessreviews", false); }

  FakeKubeClient api_;
  kube::testing::FakeClock clock_;
  std::map<std::string, std::string> tokens_;
  std::set<std::string> readers_;
  json last_access_review_;
};

TEST_F(MetricsAuthTest, NoTokenIs401WithoutAskingTheApiServer) {
  MetricsAuthorizer auth(api_, clock_);
  const auto none = auth.Authorize("", "/metrics");
  EXPECT_EQ(none.code, 401);
  EXPECT_NE(none.message.find("no bearer token"), std::string::npos) << none.message;
  const auto basic = auth.Authorize("Basic dXNlcjpwYXNz", "/metrics");
  EXPECT_EQ(basic.code, 401);
  EXPECT_NE(basic.message.find("not a bearer token"), std::string::npos) << basic.message;
  EXPECT_EQ(auth.Authorize("Bearer ", "/metrics").code, 401);
  EXPECT_EQ(Reviews(), 0);
}

TEST_F(MetricsAuthTest, AnUnknownTokenIs401AndSaysWhy) {
  MetricsAuthorizer auth(api_, clock_);
  const auto d = auth.Authorize("Bearer forged", "/metrics");
  EXPECT_EQ(d.code, 401);
  EXPECT_NE(d.message.find("invalid bearer token"), std::string::npos) << d.message;
  EXPECT_EQ(api_.Count(Verb::kPost, "subjectaccessreviews", false), 0);
}

TEST_F(MetricsAuthTest, ATokenWithoutTheRoleIs403NamingUserAndRole) {
  MetricsAuthorizer auth(api_, clock_);
  const auto d = auth.Authorize("Bearer other-token", "/metrics");
  EXPECT_EQ(d.code, 403);
  EXPECT_EQ(d.user, "system:serviceaccount:default:nosy");
  EXPECT_NE(d.message.find("system:serviceaccount:default:nosy"), std::string::npos);
  EXPECT_NE(d.message.find("capwatch-metrics-reader"), std::string::npos) << d.message;
}

TEST_F(MetricsAuthTest, TheReaderIsAllowedAndTheReviewCarriesTheWholeUser) {
  MetricsAuthorizer auth(api_, clock_);
  const auto d = auth.Authorize("Bearer prom-token", "/metrics");
  EXPECT_EQ(d.code, 200) << d.message;
  const auto& spec = last_access_review_["spec"];
  EXPECT_EQ(spec["user"], "system:serviceaccount:monitoring:prometheus");
  EXPECT_EQ(spec["uid"], "uid-system:serviceaccount:monitoring:prometheus");
  EXPECT_EQ(spec["groups"], json({"system:serviceaccounts", "system:authenticated"}));
  EXPECT_EQ(spec["extra"]["authentication.kubernetes.io/pod-name"], json({"prometheus-0"}));
  EXPECT_EQ(spec["nonResourceAttributes"], json({{"path", "/metrics"}, {"verb", "get"}}));
  EXPECT_FALSE(spec.contains("resourceAttributes"));
  // The scheme is case-insensitive and surrounding blanks do not matter (RFC 7235).
  EXPECT_EQ(auth.Authorize("bearer   prom-token  ", "/metrics").code, 200);
}

TEST_F(MetricsAuthTest, AnswersAreCachedForTheirTtlThenAskedAgain) {
  MetricsAuthOptions o;
  o.allowed_ttl = std::chrono::seconds(60);
  o.denied_ttl = std::chrono::seconds(10);
  MetricsAuthorizer auth(api_, clock_, o);
  ASSERT_EQ(auth.Authorize("Bearer prom-token", "/metrics").code, 200);
  ASSERT_EQ(auth.Authorize("Bearer other-token", "/metrics").code, 403);
  const int after_first = Reviews();
  EXPECT_EQ(after_first, 4);  // one TokenReview and one SubjectAccessReview each
  for (int scrape = 0; scrape < 5; ++scrape) {
    clock_.Advance(std::chrono::seconds(1));
    const auto d = auth.Authorize("Bearer prom-token", "/metrics");
    EXPECT_EQ(d.code, 200);
    EXPECT_TRUE(d.cached);
  }
  EXPECT_EQ(Reviews(), after_first);
  // The nosy user is bound to the role: the denial runs out after its short TTL.
  readers_.insert("system:serviceaccount:default:nosy");
  clock_.Advance(std::chrono::seconds(6));  // 11 s since the denial
  EXPECT_EQ(auth.Authorize("Bearer other-token", "/metrics").code, 200);
  // The reader's role is taken away: the allowance runs out after its TTL.
  readers_.erase("system:serviceaccount:monitoring:prometheus");
  EXPECT_EQ(auth.Authorize("Bearer prom-token", "/metrics").code, 200) << "still cached";
  clock_.Advance(std::chrono::seconds(50));
  EXPECT_EQ(auth.Authorize("Bearer prom-token", "/metrics").code, 403);
}

TEST_F(MetricsAuthTest, TheAnswerIsPerPath) {
  MetricsAuthorizer auth(api_, clock_);
  EXPECT_EQ(auth.Authorize("Bearer prom-token", "/metrics").code, 200);
  EXPECT_EQ(auth.Authorize("Bearer prom-token", "/debug").code, 403);
}

TEST_F(MetricsAuthTest, AnApiServerFailureIs503AndNotRemembered) {
  MetricsAuthorizer auth(api_, clock_);
  api_.FailNext(Verb::kPost, "tokenreviews", ApiStatus(500, StatusReason::kInternalError, "etcd"));
  const auto d = auth.Authorize("Bearer prom-token", "/metrics");
  EXPECT_EQ(d.code, 503);
  EXPECT_NE(d.message.find("tokenreviews.authentication.k8s.io"), std::string::npos) << d.message;
  EXPECT_EQ(auth.Authorize("Bearer prom-token", "/metrics").code, 200) << "asked again";
}

TEST_F(MetricsAuthTest, MissingRbacForReviewsSaysWhichRuleIsMissing) {
  MetricsAuthorizer auth(api_, clock_);
  api_.FailNext(Verb::kPost, "subjectaccessreviews",
                ApiStatus(403, StatusReason::kForbidden, "cannot create subjectaccessreviews"));
  const auto d = auth.Authorize("Bearer prom-token", "/metrics");
  EXPECT_EQ(d.code, 503);
  EXPECT_NE(d.message.find("ClusterRole needs create on subjectaccessreviews"),
            std::string::npos)
      << d.message;
}

TEST_F(MetricsAuthTest, AnAnswerWithoutStatusIsNotAnAllowance) {
  api_.SetAnswer("tokenreviews", [](const json&) { return json{{"kind", "TokenReview"}}; });
  MetricsAuthorizer auth(api_, clock_);
  EXPECT_EQ(auth.Authorize("Bearer prom-token", "/metrics").code, 503);
  api_.SetAnswer("tokenreviews", [](const json&) {
    return json{{"status", {{"authenticated", "yes"}, {"user", "root"}}}};  // wrong types
  });
  EXPECT_EQ(auth.Authorize("Bearer prom-token", "/metrics").code, 401);
}

TEST_F(MetricsAuthTest, MadeUpTokensCannotSpendTheControllersRateLimit) {
  MetricsAuthOptions o;
  o.reviews_per_second = 2;
  o.review_burst = 5;
  MetricsAuthorizer auth(api_, clock_, o);
  int throttled = 0;
  for (int i = 0; i < 50; ++i) {
    const auto d = auth.Authorize("Bearer junk-" + std::to_string(i), "/metrics");
    if (d.code == 429) ++throttled;
  }
  EXPECT_EQ(throttled, 45);
  EXPECT_EQ(api_.Count(Verb::kPost, "tokenreviews", false), 5);
  // The real scraper's cached answer is not throttled; a new token waits for the budget.
  clock_.Advance(std::chrono::seconds(1));
  EXPECT_EQ(auth.Authorize("Bearer prom-token", "/metrics").code, 200);
}

TEST_F(MetricsAuthTest, TheCacheStaysBoundedUnderTokenChurn) {
  MetricsAuthOptions o;
  o.max_cached = 8;
  o.reviews_per_second = 0;  // no budget limit, to exercise the cache alone
  MetricsAuthorizer auth(api_, clock_, o);
  for (int i = 0; i < 1000; ++i) (void)auth.Authorize("Bearer junk-" + std::to_string(i), "/m");
  EXPECT_LE(auth.cached_entries(), 8u);
  EXPECT_EQ(auth.Authorize("Bearer prom-token", "/metrics").code, 200);
}

// An allowed scraper keeps its answer while the API server cannot give a new one (429 under
// load, 5xx, unreachable), for a bounded grace past the TTL; a denial is never kept that way,
// and the API server's next real answer replaces the kept one.
TEST_F(MetricsAuthTest, AnAllowanceOutlivesItsTtlWhileTheApiServerCannotAnswer) {
  MetricsAuthOptions o;
  o.allowed_ttl = std::chrono::seconds(60);
  o.denied_ttl = std::chrono::seconds(10);
  o.allowed_stale_grace = std::chrono::seconds(300);
  o.stale_recheck = std::chrono::seconds(10);
  MetricsAuthorizer auth(api_, clock_, o);
  ASSERT_EQ(auth.Authorize("Bearer prom-token", "/metrics").code, 200);
  ASSERT_EQ(auth.Authorize("Bearer other-token", "/metrics").code, 403);

  clock_.Advance(std::chrono::seconds(61));
  ApiStatus throttled(429, StatusReason::kTooManyRequests, "storage is (re)initializing");
  throttled.set_retry_after(std::chrono::seconds(1));
  api_.FailNext(Verb::kPost, "tokenreviews", throttled, 2);
  const int before = Reviews();
  auto d = auth.Authorize("Bearer prom-token", "/metrics");
  EXPECT_EQ(d.code, 200) << d.message;
  EXPECT_TRUE(d.stale);
  EXPECT_EQ(d.user, "system:serviceaccount:monitoring:prometheus");
  EXPECT_EQ(Reviews(), before + 1) << "asked once";
  // Scrapes right after do not wait on an API server that just refused: no review for
  // stale_recheck, then one ask per stale_recheck.
  for (int i = 0; i < 9; ++i) {
    clock_.Advance(std::chrono::seconds(1));
    d = auth.Authorize("Bearer prom-token", "/metrics");
    EXPECT_EQ(d.code, 200);
    EXPECT_TRUE(d.stale);
  }
  EXPECT_EQ(Reviews(), before + 1);
  clock_.Advance(std::chrono::seconds(1));
  EXPECT_EQ(auth.Authorize("Bearer prom-token", "/metrics").code, 200);
  EXPECT_EQ(Reviews(), before + 2);

  // A 5xx and an unreachable server count the same.
  api_.FailNext(Verb::kPost, "tokenreviews", ApiStatus(503, StatusReason::kServiceUnavailable, ""));
  clock_.Advance(std::chrono::seconds(10));
  EXPECT_EQ(auth.Authorize("Bearer prom-token", "/metrics").code, 200);
  api_.FailNext(Verb::kPost, "subjectaccessreviews", ApiStatus::Transport("connection refused"));
  clock_.Advance(std::chrono::seconds(10));
  EXPECT_EQ(auth.Authorize("Bearer prom-token", "/metrics").code, 200);

  // A denial is not kept: the nosy user gets 503, not a remembered 403 or an allowance.
  api_.FailNext(Verb::kPost, "tokenreviews", throttled);
  EXPECT_EQ(auth.Authorize("Bearer other-token", "/metrics").code, 503);

  // A token never allowed before gets nothing from the grace.
  tokens_["new-token"] = "system:serviceaccount:monitoring:prometheus";
  api_.FailNext(Verb::kPost, "tokenreviews", throttled);
  EXPECT_EQ(auth.Authorize("Bearer new-token", "/metrics").code, 503);

  // A missing RBAC rule for the reviews is no outage: it is said at once, not papered over.
  api_.FailNext(Verb::kPost, "tokenreviews",
                ApiStatus(403, StatusReason::kForbidden, "cannot create tokenreviews"));
  clock_.Advance(std::chrono::seconds(10));
  EXPECT_EQ(auth.Authorize("Bearer prom-token", "/metrics").code, 503);

  // The grace is bounded: 300 s past the expiry, the API server must answer.
  api_.FailNext(Verb::kPost, "tokenreviews", throttled, 1000);
  clock_.Advance(std::chrono::seconds(60 + 300 - 101 - 1));  // 101 s have passed
  EXPECT_EQ(auth.Authorize("Bearer prom-token", "/metrics").code, 200);
  clock_.Advance(std::chrono::seconds(2));
  EXPECT_EQ(auth.Authorize("Bearer prom-token", "/metrics").code, 503);
}

TEST_F(MetricsAuthTest, TheApiServersNextAnswerReplacesAKeptAllowance) {
  MetricsAuthOptions o;
  o.allowed_ttl = std::chrono::seconds(60);
  o.stale_recheck = std::chrono::seconds(10);
  MetricsAuthorizer auth(api_, clock_, o);
  ASSERT_EQ(auth.Authorize("Bearer prom-token", "/metrics").code, 200);
  clock_.Advance(std::chrono::seconds(61));
  api_.FailNext(Verb::kPost, "subjectaccessreviews",
                ApiStatus(500, StatusReason::kInternalError, "etcd"));
  EXPECT_TRUE(auth.Authorize("Bearer prom-token", "/metrics").stale);
  // The role is taken away while the API server was down; it answers again.
  readers_.erase("system:serviceaccount:monitoring:prometheus");
  clock_.Advance(std::chrono::seconds(10));
  const auto d = auth.Authorize("Bearer prom-token", "/metrics");
  EXPECT_EQ(d.code, 403);
  EXPECT_FALSE(d.stale);
  api_.FailNext(Verb::kPost, "tokenreviews", ApiStatus(500, StatusReason::kInternalError, ""));
  clock_.Advance(std::chrono::seconds(11));
  EXPECT_EQ(auth.Authorize("Bearer prom-token", "/metrics").code, 503) << "the denial is not kept";
}

// The serving certificate.

using CertPtr = std::unique_ptr<X509, decltype(&X509_free)>;
CertPtr ParseCert(const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  return CertPtr(cert, X509_free);
}

TEST(ServingCert, SelfSignedCoversEachNameAndIpAsItsKind) {
  auto made = MakeSelfSignedCert({"capwatch-metrics.capwatch-system.svc", "10.1.2.3", "::1"});
  ASSERT_TRUE(made.ok()) << made.error().ToString();
  const ServingCert& cert = made.value();
  EXPECT_EQ(cert.source, "self-signed");
  auto x509 = ParseCert(cert.cert_pem);
  ASSERT_TRUE(x509);
  EXPECT_EQ(X509_check_host(x509.get(), "capwatch-metrics.capwatch-system.svc", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_host(x509.get(), "evil.example.com", 0, 0, nullptr), 0);
  EXPECT_EQ(X509_check_ip_asc(x509.get(), "10.1.2.3", 0), 1);
  EXPECT_EQ(X509_check_ip_asc(x509.get(), "::1", 0), 1);
  EXPECT_EQ(X509_check_ip_asc(x509.get(), "10.1.2.4", 0), 0);
  // The IP is not also a DNS name, and the certificate cannot sign others.
  EXPECT_EQ(X509_check_host(x509.get(), "10.1.2.3", 0, 0, nullptr), 0);
  EXPECT_EQ(X509_check_ca(x509.get()), 0);
  // Its key is the one handed out.
  BIO* bio = BIO_new_mem_buf(cert.key_pem.data(), static_cast<int>(cert.key_pem.size()));
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  ASSERT_NE(key, nullptr);
  EXPECT_EQ(X509_check_private_key(x509.get(), key), 1);
  EVP_PKEY_free(key);
  // Two starts make two keys.
  auto again = MakeSelfSignedCert({"x"});
  ASSERT_TRUE(again.ok());
  EXPECT_NE(again->key_pem, cert.key_pem);
}

class ServingCertDir : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("capwatch-cert-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  void Write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name) << text;
  }
  std::filesystem::path dir_;
};

TEST_F(ServingCertDir, LoadsAMountedPair) {
  auto made = MakeSelfSignedCert({"capwatch"});
  ASSERT_TRUE(made.ok());
  Write("tls.crt", made->cert_pem);
  Write("tls.key", made->key_pem);
  auto loaded = LoadServingCert(dir_.string());
  ASSERT_TRUE(loaded.ok()) << loaded.error().ToString();
  EXPECT_EQ(loaded->cert_pem, made->cert_pem);
  EXPECT_EQ(loaded->source, dir_.string());
}

TEST_F(ServingCertDir, NamesWhatIsWrong) {
  auto a = MakeSelfSignedCert({"a"});
  auto b = MakeSelfSignedCert({"b"});
  ASSERT_TRUE(a.ok() && b.ok());
  auto loaded = LoadServingCert(dir_.string());
  EXPECT_FALSE(loaded.ok());
  std::string error = loaded.error().ToString();
  EXPECT_NE(error.find("tls.crt"), std::string::npos) << error;
  Write("tls.crt", "not a certificate");
  Write("tls.key", a->key_pem);
  loaded = LoadServingCert(dir_.string());
  EXPECT_FALSE(loaded.ok());
  error = loaded.error().ToString();
  EXPECT_NE(error.find("tls.crt holds no PEM certificate"), std::string::npos) << error;
  Write("tls.crt", a->cert_pem);
  Write("tls.key", b->key_pem);
  loaded = LoadServingCert(dir_.string());
  EXPECT_FALSE(loaded.ok()) << "nothing half-loaded: an error, no certificate";
  error = loaded.error().ToString();
  EXPECT_NE(error.find("tls.key is not the key of"), std::string::npos) << error;
}

}  // namespace
}  // namespace capwatch::controller

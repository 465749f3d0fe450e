// The metrics and probe listener on the wire: HTTPS with the serving certificate, the
// authorization hook in front of /metrics only, IPv4 and IPv6 loopback, and bind addresses.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <mutex>

#include "controller/http_endpoints.h"
#include "kube/rest_client.h"

namespace capwatch::controller {
namespace {

using namespace std::chrono_literals;

// A port nobody listens on right now, on the given loopback.
int FreePort(bool ipv6) {
  const int fd = socket(ipv6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
  int port = 0;
  if (ipv6) {
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_loopback;
    socklen_t n = sizeof(a);
    if (bind(fd, reinterpret_cast<sockaddr*>(&a), n) == 0 &&
        getsockname(fd, reinterpret_cast<sockaddr*>(&a), &n) == 0) {
      port = ntohs(a.sin6_port);
    }
  } else {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t n = sizeof(a);
    if (bind(fd, reinterpret_cast<sockaddr*>(&a), n) == 0 &&
        getsockname(fd, reinterpret_cast<sockaddr*>(&a), &n) == 0) {
      port = ntohs(a.sin_port);
    }
  }
  close(fd);
  return port;
}

struct Listener {
  HttpEndpoints endpoints;
  std::mutex mu;
  std::vector<std::string> headers_seen;
};

// /metrics behind an authorizer that knows one good token; /healthz open to all.
Status Serve(Listener& l, const std::string& address, std::optional<ServingCert> tls) {
  ServeOptions options;
  options.address = address;
  options.tls = std::move(tls);
  options.authorize = [&l](std::string_view authorization, std::string_view path) {
    std::lock_guard lock(l.mu);
    l.headers_seen.emplace_back(authorization);
    if (path != "/metrics") return AuthDecision{403, "wrong path", {}, false};
    if (authorization == "Bearer good") return AuthDecision{200, "ok", "reader", false};
    if (authorization == "Bearer other") return AuthDecision{403, "may not get /metrics", {}, false};
    return AuthDecision{401, "no bearer token", {}, false};
  };
  return l.endpoints.Start(
      std::move(options),
      {{"/metrics",
        [](std::string& body, std::string&) {
          body = "capwatch_up 1\n";
          return 200;
        },
        true},
       {"/healthz",
        [](std::string& body, std::string&) {
          body = "ok\n";
          return 200;
        },
        false}});
}

kube::Result<std::string> Get(const std::string& server, const std::string& ca,
                              const std::string& token, const std::string& path) {
  kube::RestConfig cfg;
  cfg.server = server;
  cfg.ca_pem = ca;
  cfg.token = token;
  kube::TransportOptions o;
  o.request_timeout = 3s;
  o.max_retries = 0;
  o.qps = 0;
  auto client = kube::RestClient::Make(cfg, o);
  if (!client.ok()) return client.error();
  kube::Request r;
  r.path = path;
  r.accept = "text/plain";
  r.what = "get " + path;
  return client.value()->Send(r, {});
}

void ExpectAuthorizedOnlyWithTheRole(bool ipv6) {
  auto made = MakeSelfSignedCert({"localhost", "127.0.0.1", "::1"});
  ASSERT_TRUE(made.ok()) << made.error().ToString();
  const ServingCert& cert = made.value();
  const int port = FreePort(ipv6);
  ASSERT_GT(port, 0);
  const std::string host = ipv6 ? "[::1]" : "127.0.0.1";
  Listener l;
  const Status served = Serve(l, host + ":" + std::to_string(port), cert);
  ASSERT_TRUE(served.ok()) << served.error().ToString();
  const std::string server = "https://" + host + ":" + std::to_string(port);
  EXPECT_EQ(l.endpoints.url(), server);

  auto good = Get(server, cert.cert_pem, "good", "/metrics");
  ASSERT_TRUE(good.ok()) << good.error().ToString();
  EXPECT_EQ(good.value(), "capwatch_up 1\n");
  auto other = Get(server, cert.cert_pem, "other", "/metrics");
  EXPECT_EQ(other.error().http_status(), 403) << other.error().ToString();
  EXPECT_NE(other.error().message().find("may not get /metrics"), std::string::npos);
  auto none = Get(server, cert.cert_pem, "", "/metrics");
  EXPECT_EQ(none.error().http_status(), 401) << none.error().ToString();
  // The kubelet's probes carry no token and need none.
  auto health = Get(server, cert.cert_pem, "", "/healthz");
  ASSERT_TRUE(health.ok()) << health.error().ToString();
  EXPECT_EQ(Get(server, cert.cert_pem, "good", "/nope").error().http_status(), 404);
  std::lock_guard lock(l.mu);
  EXPECT_EQ(l.headers_seen, (std::vector<std::string>{"Bearer good", "Bearer other", ""}))
      << "the authorizer saw exactly the /metrics requests";
}

TEST(HttpEndpoints, HttpsOnIpv4LoopbackAuthorizesMetricsOnly) { ExpectAuthorizedOnlyWithTheRole(false); }

TEST(HttpEndpoints, HttpsOnIpv6LoopbackAuthorizesMetricsOnly) { ExpectAuthorizedOnlyWithTheRole(true); }

TEST(HttpEndpoints, AClientChecksTheCertificateAgainstTheAddress) {
  auto cert = MakeSelfSignedCert({"metrics.example"});
  ASSERT_TRUE(cert.ok()) << cert.error().ToString();
  const int port = FreePort(false);
  Listener l;
  const Status served = Serve(l, "127.0.0.1:" + std::to_string(port), cert.value());
  ASSERT_TRUE(served.ok()) << served.error().ToString();
  auto r = Get("https://127.0.0.1:" + std::to_string(port), cert->cert_pem, "good", "/metrics");
  EXPECT_EQ(r.error().reason(), kube::StatusReason::kTransport)
      << "a certificate without IP SAN 127.0.0.1 must not verify: " << r.error().ToString();
}

TEST(HttpEndpoints, APortInUseIsAClearError) {
  auto cert = MakeSelfSignedCert({"localhost"});
  ASSERT_TRUE(cert.ok());
  const std::string address = "127.0.0.1:" + std::to_string(FreePort(false));
  Listener first, second;
  const Status served = Serve(first, address, cert.value());
  ASSERT_TRUE(served.ok()) << served.error().ToString();
  const Status again = Serve(second, address, cert.value());
  EXPECT_FALSE(again.ok());
  const std::string error = again.error().ToString();
  EXPECT_NE(error.find("cannot serve on " + address), std::string::npos) << error;
}

TEST(HttpEndpoints, ListenUrlTakesControllerRuntimeAddresses) {
  struct Case {
    std::string address;
    bool https;
    std::string url;  // "" when the address is refused
  };
  const Case cases[] = {
      {":8443", true, "https://0.0.0.0:8443"},
      {"127.0.0.1:8080", false, "http://127.0.0.1:8080"},
      {"[::]:8443", true, "https://[::]:8443"},
      {"[::1]:9000", true, "https://[::1]:9000"},
      {"[fd00::10]:8443", true, "https://[fd00::10]:8443"},
      {"localhost:8443", true, "https://localhost:8443"},
      {"::1:8443", true, ""},  // an IPv6 literal needs brackets
      {"[]:8443", true, ""},
      {"8443", true, ""},
      {"host:", true, ""},
      {"host:0", true, ""},
      {"host:65536", true, ""},
      {"host:80a", true, ""},
      {"host:-1", true, ""},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.address);
    const auto url = ListenUrl(c.address, c.https);
    EXPECT_EQ(url.ok() ? url.value() : "", c.url);
    const std::string error = url.error().ToString();
    EXPECT_EQ(error.empty(), !c.url.empty()) << error;
  }
}

}  // namespace
}  // namespace capwatch::controller

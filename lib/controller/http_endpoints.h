#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "controller/metrics_auth.h"
#include "controller/serving_cert.h"

namespace capwatch::controller {

// A small HTTP(S) server for /metrics, /healthz and /readyz (cpprestsdk's listener).
struct HttpRoute {
  std::string path;
  // Returns the status code and fills the body.
  std::function<int(std::string& body, std::string& content_type)> handler;
  // Asks ServeOptions::authorize before the handler runs (/metrics; not the kubelet's probes).
  bool needs_authorization = false;
};

struct ServeOptions {
  // As controller-runtime takes it: ":8443" (all IPv4 interfaces), "127.0.0.1:8443",
  // "[::]:8443" (IPv6 and, where the node allows, IPv4 too), "[::1]:8443", or "0" for off.
  std::string address;
  // HTTPS with this certificate when set; plain HTTP otherwise.
  std::optional<ServingCert> tls;
  // Decides the requests to routes that need authorization, from the Authorization header.
  std::function<AuthDecision(std::string_view authorization, std::string_view path)> authorize;
};

class HttpEndpoints {
 public:
  HttpEndpoints();
  ~HttpEndpoints();
  // An error when the address is bad, the certificate unusable or the port cannot be bound.
  Status Start(ServeOptions options, std::vector<HttpRoute> routes);
  void Stop();

  // The listener's URL ("https://127.0.0.1:8443"), empty when off.
  const std::string& url() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// "https://[::1]:8443" from ("[::1]:8443", true); an error when the address is not host:port
// or :port. Exposed for tests.
Result<std::string> ListenUrl(const std::string& address, bool https);

}  // namespace capwatch::controller

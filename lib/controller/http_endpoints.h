#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace capwatch::controller {

// A small HTTP server for /metrics, /healthz and /readyz (cpprestsdk's listener).
struct HttpRoute {
  std::string path;
  // Returns the status code and fills the body.
  std::function<int(std::string& body, std::string& content_type)> handler;
};

class HttpEndpoints {
 public:
  HttpEndpoints();
  ~HttpEndpoints();
  // `address` as controller-runtime takes it: ":8080", "127.0.0.1:8080", or "0" for off.
  // Returns false with `error` set when the address is bad or cannot be bound.
  [[nodiscard]] bool Start(const std::string& address, std::vector<HttpRoute> routes,
                           std::string& error);
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace capwatch::controller

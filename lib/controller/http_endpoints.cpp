#include "controller/http_endpoints.h"

#include <cpprest/http_listener.h>

namespace capwatch::controller {

namespace http = web::http;
using http::experimental::listener::http_listener;

struct HttpEndpoints::Impl {
  std::unique_ptr<http_listener> listener;
  std::vector<HttpRoute> routes;
};

HttpEndpoints::HttpEndpoints() : impl_(std::make_unique<Impl>()) {}
HttpEndpoints::~HttpEndpoints() { Stop(); }

bool HttpEndpoints::Start(const std::string& address, std::vector<HttpRoute> routes,
                          std::string& error) {
  if (address == "0" || address.empty()) return true;
  const auto colon = address.rfind(':');
  if (colon == std::string::npos || colon + 1 >= address.size()) {
    error = "bind address \"" + address + "\" must be host:port or :port";
    return false;
  }
  const std::string host = colon == 0 ? "0.0.0.0" : address.substr(0, colon);
  const std::string url = "http://" + host + ":" + address.substr(colon + 1);
  impl_->routes = std::move(routes);
  try {
    impl_->listener = std::make_unique<http_listener>(url);
    impl_->listener->support(http::methods::GET, [this](http::http_request request) {
      const std::string path = request.relative_uri().path();
      for (const auto& route : impl_->routes) {
        if (route.path != path) continue;
        std::string body, content_type = "text/plain; charset=utf-8";
        const int code = route.handler(body, content_type);
        request.reply(static_cast<http::status_code>(code), body, content_type);
        return;
      }
      request.reply(http::status_codes::NotFound, "not found\n");
    });
    impl_->listener->open().wait();
  } catch (const std::exception& e) {
    error = "cannot serve on " + address + ": " + e.what();
    impl_->listener.reset();
    return false;
  }
  return true;
}

void HttpEndpoints::Stop() {
  if (!impl_->listener) return;
  try {
    impl_->listener->close().wait();
  } catch (const std::exception&) {
    // Closing on shutdown: nothing left to tell anyone.
  }
  impl_->listener.reset();
}

}  // namespace capwatch::controller

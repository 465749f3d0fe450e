#include "kube/rest_client.h"

#include <cpprest/uri.h>

#include <charconv>
#include <deque>
#include <mutex>

#include <spdlog/spdlog.h>

#include "kube/streaming_http_client.h"
#include "kube/tls_settings.h"
#include "kube/watch_decoder.h"

#ifndef CAPWATCH_VERSION
#define CAPWATCH_VERSION "0.0.0-dev"
#endif

namespace capwatch::kube {

std::string_view CapwatchUserAgent() {
  static const std::string agent = std::string("capwatch/") + CAPWATCH_VERSION;
  return agent;
}

namespace {

std::string_view MethodOf(Verb verb) {
  switch (verb) {
    case Verb::kGet:
      return "GET";
    case Verb::kPost:
      return "POST";
    case Verb::kPut:
      return "PUT";
    case Verb::kPatch:
      return "PATCH";
    case Verb::kDelete:
      return "DELETE";
  }
  return "GET";
}

std::optional<std::chrono::seconds> ParseRetryAfter(std::string_view value) {
  long long s = 0;
  const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), s);
  // An HTTP date is rare from the API server: our own backoff then.
  if (ec != std::errc() || end != value.data() + value.size() || s < 0) return std::nullopt;
  return std::chrono::seconds(s);
}

std::optional<std::chrono::seconds> RetryAfterHeader(const ResponseHead& head) {
  if (auto v = head.Find("retry-after")) return ParseRetryAfter(*v);
  return std::nullopt;
}

std::uint64_t NextSeed() {
  static std::atomic<std::uint64_t> seed{std::random_device{}()};
  return seed.fetch_add(0x9E3779B97F4A7C15ULL);
}

// A watch's response, read on the reflector's thread and split into lines.
class RestWatchStream final : public WatchStream {
 public:
  // `framed`: a protobuf watch, whose events are length-prefixed frames, not lines.
  RestWatchStream(std::unique_ptr<HttpResponseStream> response, std::stop_token stop,
                  bool framed)
      : response_(std::move(response)), stop_(std::move(stop)), framed_(framed) {}

  // Dropping the response early closes its connection rather than wait for the server.
  ~RestWatchStream() override = default;

  bool NextLine(std::string& line) override {
    while (lines_.empty()) {
      if (done_) return false;
      if (!ReadMore()) {
        done_ = true;
        if (lines_.empty()) return false;
      }
    }
    line = std::move(lines_.front());
    lines_.pop_front();
    return true;
  }
  const ApiStatus& status() const override { return status_; }

 private:
  // Reads what has arrived (waiting for at least one byte) and splits it into lines.
  bool ReadMore() {
    bool frames_ok = true;
    const bool more = response_->Read([this, &frames_ok](std::string_view bytes) {
      auto take = [this](std::string_view l) { lines_.emplace_back(l); };
      if (framed_) {
        frames_ok = frames_.Feed(bytes, take) && frames_ok;
      } else {
        splitter_.Feed(bytes, take);
      }
    });
    if (!frames_ok) {
      status_ = ApiStatus::Transport("watch stream: " + frames_.error());
      return false;
    }
    if (more) return true;
    const std::size_t pending = framed_ ? frames_.pending_bytes() : splitter_.pending_bytes();
    if (response_->done()) {
      if (pending > 0) {
        status_ = ApiStatus::Transport("watch stream ended in the middle of an event (" +
                                       std::to_string(pending) + " bytes)");
      }
    } else if (response_->cancelled() || stop_.stop_requested()) {
      status_ = ApiStatus(0, StatusReason::kCancelled, "watch stopped");
    } else {
      status_ = ApiStatus::Transport("watch stream: " + response_->error());
    }
    return false;
  }

  std::unique_ptr<HttpResponseStream> response_;
  std::stop_token stop_;
  bool framed_ = false;
  LineSplitter splitter_;
  FrameSplitter frames_;
  std::deque<std::string> lines_;
  ApiStatus status_;
  bool done_ = false;
};

}  // namespace

struct RestClient::Impl {
  std::shared_ptr<TlsSettings> tls = std::make_shared<TlsSettings>();
  // Every request goes over one client of our own: one TLS context, kept connections, and
  // the response read on the caller's thread in 64 KiB reads.
  std::shared_ptr<StreamingHttpClient> streams;
  std::string host_field;   // the Host field
  std::string path_prefix;  // the server URL's path ("/k8s/clusters/c-1"), without a final '/'
  std::unique_ptr<CredentialSource> credentials;
  std::unique_ptr<TokenBucket> limiter;

  std::string Target(const Request& r) const {
    web::uri_builder uri(r.path);
    for (const auto& [k, v] : r.query) uri.append_query(k, v, /*do_encoding=*/true);
    return path_prefix + uri.to_string();
  }

  // The current bearer token (empty for none), and the exec plugin's client certificate for
  // the next TLS connections.
  ApiStatus Credentials(std::string& token) {
    if (!credentials) return ApiStatus::Ok();
    auto creds = credentials->Get();
    if (!creds.ok()) return creds.error();
    token = creds->token;
    tls->SetExecCert(creds->client_cert_pem, creds->client_key_pem);
    return ApiStatus::Ok();
  }

  // The whole request: line, fields and body. The Host field is tls-server-name when one is
  // configured (the API server does not route on Host) and "[fd00::1]:6443" for an IPv6
  // address (RFC 7230).
  std::string Prepare(const Request& r, const std::string& user_agent,
                      const std::string& token) const {
    std::string out(MethodOf(r.verb));
    out += ' ';
    out += Target(r);
    out += " HTTP/1.1\r\nHost: ";
    out += host_field;
    out += "\r\nUser-Agent: ";
    out += user_agent;
    out += "\r\nAccept: ";
    out += r.accept;
    out += "\r\n";
    if (!token.empty()) {
      out += "Authorization: Bearer ";
      out += token;
      out += "\r\n";
    }
    if (!r.body.empty() || r.verb == Verb::kPost || r.verb == Verb::kPut ||
        r.verb == Verb::kPatch) {
      out += "Content-Type: ";
      out += r.content_type.empty() ? std::string_view("application/json")
                                    : std::string_view(r.content_type);
      out += "\r\nContent-Length: ";
      out += std::to_string(r.body.size());
      out += "\r\n";
    }
    out += "\r\n";
    out += r.body;
    return out;
  }
};

RestClient::RestClient(RestConfig config, TransportOptions options, Clock& clock)
    : config_(std::move(config)),
      options_(std::move(options)),
      clock_(clock),
      impl_(std::make_unique<Impl>()) {}

RestClient::~RestClient() = default;

Result<std::unique_ptr<RestClient>> RestClient::Make(RestConfig config, TransportOptions options,
                                                     Clock& clock) {
  const std::string source = config.source;
  auto bad = [&source](const std::string& m) {
    return ApiStatus(0, StatusReason::kConfig, source.empty() ? m : source + ": " + m);
  };
  web::uri uri;
  try {
    uri = web::uri(config.server);
  } catch (const std::exception& e) {
    return bad("server \"" + config.server + "\" is not a URL: " + e.what());
  }
  const std::string scheme = uri.scheme();  // lower case: web::uri canonicalises it
  if (scheme != "https" && scheme != "http") {
    return bad("server \"" + config.server + "\" must be an https:// URL");
  }
  // getaddrinfo takes an IPv6 address without its brackets.
  std::string host = uri.host();
  const bool ipv6_literal = host.size() > 2 && host.front() == '[' && host.back() == ']';
  if (ipv6_literal) host = host.substr(1, host.size() - 2);
  if (host.empty()) return bad("server \"" + config.server + "\" names no host");
  if (!uri.query().empty() || !uri.fragment().empty()) {
    return bad("server \"" + config.server + "\" has a query or fragment; it takes neither");
  }
  if (scheme == "http") {
    if (!config.allow_insecure_http) {
      return bad("server \"" + config.server +
                 "\" is plain HTTP: the bearer token and every object would cross the network "
                 "unencrypted. Use an https:// server, or pass --allow-insecure-api-server if "
                 "the connection is trusted (a local proxy such as kubectl proxy)");
    }
    spdlog::warn(
        "INSECURE: talking plain HTTP to {} ({}): credentials and objects travel "
        "unencrypted (--allow-insecure-api-server)",
        config.server, config.source);
  }
  std::unique_ptr<RestClient> c(new RestClient(std::move(config), std::move(options), clock));
  auto& impl = *c->impl_;
  const RestConfig& cfg = c->config_;
  impl.tls->ca_pem = cfg.ca_pem;
  impl.tls->verify = !cfg.insecure_skip_tls_verify;
  impl.tls->verify_host = cfg.tls_server_name.empty() ? host : cfg.tls_server_name;
  if (!cfg.tls_server_name.empty()) {
    impl.tls->host_header = cfg.tls_server_name;
  } else if (ipv6_literal) {
    impl.tls->host_header =
        "[" + host + "]" + (uri.port() > 0 ? ":" + std::to_string(uri.port()) : std::string());
    impl.tls->send_sni = false;
  }
  impl.tls->static_cert_pem = cfg.client_cert_pem;
  impl.tls->static_key_pem = cfg.client_key_pem;
  // The streaming client builds its TLS context now: bad TLS material is a configuration
  // error here, not a failure of every request.
  StreamingHttpClient::Target target;
  target.host = host;
  target.port = std::to_string(uri.port() > 0 ? uri.port() : (scheme == "https" ? 443 : 80));
  target.tls = scheme == "https";
  impl.host_field = !impl.tls->host_header.empty()
                        ? impl.tls->host_header
                        : uri.host() + (uri.port() > 0 ? ":" + std::to_string(uri.port()) : "");
  if (impl.tls->send_sni) target.sni = impl.tls->verify_host;
  // A server behind a proxy that routes on a path ("https://rancher/k8s/clusters/c-1").
  impl.path_prefix = uri.path();
  while (!impl.path_prefix.empty() && impl.path_prefix.back() == '/') impl.path_prefix.pop_back();
  auto streams = StreamingHttpClient::Make(std::move(target), impl.tls);
  if (!streams.ok()) return bad(streams.error().ToString());
  impl.streams = std::move(streams).value();
  if (cfg.insecure_skip_tls_verify) {
    spdlog::warn("INSECURE: not verifying the API server's certificate for {} ({})", cfg.server,
                 cfg.source);
  }
  impl.credentials = MakeCredentialSource(cfg, clock, c->options_.exec_plugin);
  impl.limiter = std::make_unique<TokenBucket>(clock, c->options_.qps, c->options_.burst);
  return c;
}

Result<std::string> RestClient::Send(const Request& request, const std::stop_token& stop) {
  Backoff backoff(clock_, options_.retry_backoff, NextSeed());
  bool reauthenticated = false;
  for (int attempt = 0;; ++attempt) {
    if (!impl_->limiter->Wait(stop)) {
      return ApiStatus(0, StatusReason::kCancelled, request.what + ": cancelled");
    }
    int code = 0;
    std::string body;
    std::optional<std::chrono::seconds> retry_after;
    std::string token;
    ApiStatus status = impl_->Credentials(token);
    if (!status.ok()) return status.WithContext(request.what);
    ++exchanges_;
    bool no_retry = false;
    status = Exchange(request, token, stop, code, body, retry_after, no_retry);
    if (!status.ok() && no_retry) {
      if (options_.on_response) options_.on_response(request.verb, code);
      return status.WithContext(request.what);
    }
    if (stop.stop_requested()) {
      return ApiStatus(0, StatusReason::kCancelled, request.what + ": cancelled");
    }
    if (options_.on_response) options_.on_response(request.verb, code);
    if (code >= 200 && code < 300) return body;
    if (code != 0) {
      status = ApiStatus::FromResponse(code, body);
      if (retry_after && !status.retry_after()) status.set_retry_after(*retry_after);
    }
    if (code == 401 && impl_->credentials && !reauthenticated) {
      // The token may have rotated under us: drop the cached one and try once more.
      impl_->credentials->Invalidate();
      reauthenticated = true;
      continue;
    }
    const bool retryable = code == 429 || (request.IsRead() && (code == 0 || code >= 500));
    if (!retryable || attempt >= options_.max_retries) return status.WithContext(request.what);
    Clock::Duration delay = backoff.Next();
    if (status.retry_after()) {
      delay = std::min<Clock::Duration>(status.retry_after().value(), options_.max_retry_after);
    }
    spdlog::debug("{}: {}; retry {} in {} ms", request.what, status.ToString(), attempt + 1,
                  std::chrono::duration_cast<std::chrono::milliseconds>(delay).count());
    if (!clock_.SleepFor(delay, stop)) {
      return ApiStatus(0, StatusReason::kCancelled, request.what + ": cancelled");
    }
  }
}

ApiStatus RestClient::Exchange(const Request& request, const std::string& token,
                               const std::stop_token& stop, int& code, std::string& body,
                               std::optional<std::chrono::seconds>& retry_after, bool& no_retry) {
  auto opened = impl_->streams->Open(impl_->Prepare(request, options_.user_agent, token),
                                     options_.request_timeout, stop);
  if (!opened.ok()) return ApiStatus::Transport(opened.error().ToString());
  HttpResponseStream& response = *opened.value();
  const int status = response.head().status;
  const bool to_reader = request.on_body && status >= 200 && status < 300;
  if (auto length = response.content_length(); length && !to_reader) {
    body.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(*length, 256u << 20)));
  }
  std::uint64_t received = 0;
  bool abandoned = false;
  auto take = [&](std::string_view b) {
    received += b.size();
    if (!to_reader) {
      body.append(b);
    } else if (!abandoned && !request.on_body(b)) {
      abandoned = true;
    }
  };
  while (!abandoned && response.Read(take)) {
  }
  // What the reader has seen cannot be taken back: no retry from here.
  no_retry = to_reader && received > 0;
  if (abandoned) {
    return ApiStatus(0, StatusReason::kCancelled, "the response was abandoned by its reader");
  }
  if (!response.done()) {
    return ApiStatus::Transport("reading the response (HTTP " + std::to_string(status) +
                                ", after " + std::to_string(received) +
                                " bytes): " + response.error());
  }
  code = status;
  retry_after = RetryAfterHeader(response.head());
  return ApiStatus::Ok();
}

Result<std::unique_ptr<WatchStream>> RestClient::Watch(const ResourceRef& resource,
                                                       const ListOptions& options,
                                                       const std::stop_token& stop) {
  Request request;
  request.path = resource.Path();
  request.query = ListQuery(options, /*watch=*/true);
  request.what = "watch " + resource.Describe();
  if (options.metadata_only) {
    request.accept = std::string(kAcceptMetadata);
  } else if (options.protobuf) {
    request.accept = std::string(kAcceptProtobuf);
  }
  if (!impl_->limiter->Wait(stop)) {
    return ApiStatus(0, StatusReason::kCancelled, request.what + ": cancelled");
  }
  std::string token;
  if (ApiStatus s = impl_->Credentials(token); !s.ok()) return s.WithContext(request.what);
  const std::string bytes = impl_->Prepare(request, options_.user_agent, token);
  // Each read may wait as long as the server-side timeoutSeconds, and a little more.
  const auto server_timeout =
      std::chrono::seconds(options.timeout_seconds > 0 ? options.timeout_seconds : 1800);
  ++exchanges_;
  auto opened = impl_->streams->Open(bytes,
                                     std::chrono::duration_cast<std::chrono::milliseconds>(
                                         server_timeout + options_.watch_read_grace),
                                     stop);
  if (!opened.ok()) {
    if (options_.on_response) options_.on_response(Verb::kGet, 0);
    if (stop.stop_requested()) {
      return ApiStatus(0, StatusReason::kCancelled, request.what + ": cancelled");
    }
    return ApiStatus::Transport(opened.error().ToString()).WithContext(request.what);
  }
  std::unique_ptr<HttpResponseStream> response = std::move(opened).value();
  const int code = response->head().status;
  if (options_.on_response) options_.on_response(Verb::kGet, code);
  if (code < 200 || code >= 300) {
    // The body of an error is a small Status; read it within the plain request timeout.
    std::string body;
    while (body.size() < (1u << 20) &&
           response->Read([&body](std::string_view b) { body.append(b); })) {
    }
    ApiStatus status = ApiStatus::FromResponse(code, body);
    if (auto ra = RetryAfterHeader(response->head()); ra && !status.retry_after()) {
      status.set_retry_after(*ra);
    }
    if (code == 401 && impl_->credentials) impl_->credentials->Invalidate();
    return status.WithContext(request.what);
  }
  // The API server answers a protobuf watch with application/vnd.kubernetes.protobuf;
  // stream=watch, and a kind it has no protobuf for with JSON lines.
  const auto type = response->head().Find("content-type");
  const bool framed =
      type && type->substr(0, kProtobufMediaType.size()) == kProtobufMediaType;
  spdlog::debug("{}: {} events", request.what, framed ? "protobuf" : "JSON");
  return std::unique_ptr<WatchStream>(new RestWatchStream(std::move(response), stop, framed));
}

}  // namespace capwatch::kube

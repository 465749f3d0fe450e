#include "kube/rest_client.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cpprest/http_client.h>

#include <deque>
#include <mutex>

#include <spdlog/spdlog.h>

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

namespace http = web::http;
namespace client = web::http::client;

// What every TLS connection is set up with. Shared with the per-connection callbacks, which
// cpprestsdk calls whenever it opens a connection.
struct TlsState {
  std::string ca_pem;
  std::string verify_host;  // tls-server-name, or the server's host (an IPv6 one unbracketed)
  // The Host header when cpprestsdk's own would be wrong: tls-server-name, or "[v6addr]:port".
  std::string host_header;
  bool send_sni = true;  // not for an IP address (RFC 6066 section 3)
  bool verify = true;
  std::string static_cert_pem, static_key_pem;
  std::mutex mu;  // guards the exec plugin's certificate, which may rotate
  std::string exec_cert_pem, exec_key_pem;
};

// OpenSSL's own verdict for each certificate, without cpprestsdk's host check on top.
int KeepVerdict(int preverified, X509_STORE_CTX*) { return preverified; }

// Replaces OpenSSL's chain check so that the host is checked against `verify_host` (which
// may be the kubeconfig's tls-server-name rather than the URL's host).
int VerifyChainAndHost(X509_STORE_CTX* ctx, void* arg) {
  const auto* host = static_cast<const std::string*>(arg);
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx);
  if (X509_VERIFY_PARAM_set1_ip_asc(param, host->c_str()) != 1) {
    X509_VERIFY_PARAM_set1_host(param, host->c_str(), host->size());
  }
  X509_STORE_CTX_set_verify_cb(ctx, KeepVerdict);
  return X509_verify_cert(ctx);
}

// A store that trusts exactly the PEM certificates given.
Status TrustOnly(SSL_CTX* ctx, const std::string& pem) {
  X509_STORE* store = X509_STORE_new();
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  int added = 0;
  while (X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
    X509_STORE_add_cert(store, cert);
    X509_free(cert);
    ++added;
  }
  ERR_clear_error();  // the loop ends on a "no start line" error
  BIO_free(bio);
  if (added == 0) {
    X509_STORE_free(store);
    return Error("certificate-authority holds no PEM certificate");
  }
  SSL_CTX_set_cert_store(ctx, store);
  return {};
}

Status UseClientCert(boost::asio::ssl::context& ctx, const std::string& cert,
                     const std::string& key) {
  boost::system::error_code ec;
  ctx.use_certificate_chain(boost::asio::buffer(cert.data(), cert.size()), ec);
  if (ec) return Error("client certificate: " + ec.message());
  ctx.use_private_key(boost::asio::buffer(key.data(), key.size()), boost::asio::ssl::context::pem,
                      ec);
  if (ec) return Error("client key: " + ec.message());
  return {};
}

Status ConfigureTls(boost::asio::ssl::context& ctx, TlsState& tls) {
  SSL_CTX* native = ctx.native_handle();
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  if (tls.verify) {
    if (!tls.ca_pem.empty()) {
      if (Status trusted = TrustOnly(native, tls.ca_pem); !trusted.ok()) return trusted;
    }
    SSL_CTX_set_cert_verify_callback(native, VerifyChainAndHost, &tls.verify_host);
  }
  std::string cert = tls.static_cert_pem, key = tls.static_key_pem;
  {
    std::lock_guard lock(tls.mu);
    if (!tls.exec_cert_pem.empty()) {
      cert = tls.exec_cert_pem;
      key = tls.exec_key_pem;
    }
  }
  if (!cert.empty()) return UseClientCert(ctx, cert, key);
  return {};
}

client::http_client_config ClientConfig(const std::shared_ptr<TlsState>& tls,
                                        std::chrono::milliseconds timeout) {
  client::http_client_config cfg;
  cfg.set_timeout(std::chrono::duration_cast<std::chrono::microseconds>(timeout));
  cfg.set_validate_certificates(tls->verify);
  cfg.set_tlsext_sni_enabled(tls->send_sni);
  cfg.set_ssl_context_callback([tls](boost::asio::ssl::context& ctx) {
    if (Status configured = ConfigureTls(ctx, *tls); !configured.ok()) {
      // Checked in RestClient::Create; only a rotated exec certificate can get here.
      const std::string error = configured.error().ToString();
      spdlog::error("TLS setup failed: {}", error);
      throw std::runtime_error(error);
    }
  });
  return cfg;
}

http::method MethodOf(Verb verb) {
  switch (verb) {
    case Verb::kGet:
      return http::methods::GET;
    case Verb::kPost:
      return http::methods::POST;
    case Verb::kPut:
      return http::methods::PUT;
    case Verb::kPatch:
      return http::methods::PATCH;
    case Verb::kDelete:
      return http::methods::DEL;
  }
  return http::methods::GET;
}

std::optional<std::chrono::seconds> RetryAfterHeader(const http::http_response& response) {
  const auto& headers = response.headers();
  auto it = headers.find("Retry-After");
  if (it == headers.end()) return std::nullopt;
  try {
    const long long s = std::stoll(it->second);
    if (s >= 0) return std::chrono::seconds(s);
  } catch (const std::exception&) {
    // An HTTP date: rare from the API server; fall back to our own backoff.
  }
  return std::nullopt;
}

std::uint64_t NextSeed() {
  static std::atomic<std::uint64_t> seed{std::random_device{}()};
  return seed.fetch_add(0x9E3779B97F4A7C15ULL);
}

// Bridges a std::stop_token to a pplx cancellation token for the life of one request.
class CancelBridge {
 public:
  explicit CancelBridge(const std::stop_token& stop)
      : callback_(stop, [this] { source_.cancel(); }) {}
  pplx::cancellation_token token() const { return source_.get_token(); }
  void Cancel() { source_.cancel(); }

 private:
  pplx::cancellation_token_source source_;
  std::stop_callback<std::function<void()>> callback_;
};

class RestWatchStream final : public WatchStream {
 public:
  RestWatchStream(std::unique_ptr<client::http_client> http, http::http_response response,
                  std::unique_ptr<CancelBridge> cancel, std::stop_token stop)
      : http_(std::move(http)),
        response_(std::move(response)),
        body_(response_.body()),
        cancel_(std::move(cancel)),
        stop_(std::move(stop)) {}

  ~RestWatchStream() override {
    // Close the connection rather than wait for the server to end the response.
    if (!done_) cancel_->Cancel();
  }

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
    auto buf = body_.streambuf();
    try {
      const auto first = buf.bumpc().get();
      if (first == std::char_traits<char>::eof()) {
        if (splitter_.pending_bytes() > 0) {
          status_ = ApiStatus::Transport("watch stream ended in the middle of an event (" +
                                         std::to_string(splitter_.pending_bytes()) + " bytes)");
        }
        return false;
      }
      chunk_.assign(1, static_cast<char>(first));
      const std::size_t avail = buf.in_avail();
      if (avail > 0) {
        chunk_.resize(1 + avail);
        // Already buffered, so this completes at once.
        const std::size_t got =
            buf.getn(reinterpret_cast<std::uint8_t*>(chunk_.data() + 1), avail).get();
        chunk_.resize(1 + got);
      }
    } catch (const std::exception& e) {
      status_ = stop_.stop_requested()
                    ? ApiStatus(0, StatusReason::kCancelled, "watch stopped")
                    : ApiStatus::Transport(std::string("watch stream: ") + e.what());
      return false;
    }
    splitter_.Feed(chunk_, [this](std::string_view l) { lines_.emplace_back(l); });
    return true;
  }

  std::unique_ptr<client::http_client> http_;
  http::http_response response_;
  concurrency::streams::istream body_;
  std::unique_ptr<CancelBridge> cancel_;
  std::stop_token stop_;
  LineSplitter splitter_;
  std::deque<std::string> lines_;
  std::string chunk_;
  ApiStatus status_;
  bool done_ = false;
};

}  // namespace

struct RestClient::Impl {
  std::shared_ptr<TlsState> tls = std::make_shared<TlsState>();
  std::unique_ptr<client::http_client> http;
  std::unique_ptr<CredentialSource> credentials;
  std::unique_ptr<TokenBucket> limiter;

  // Builds the HTTP request with the current credentials; false and a status if there are none.
  ApiStatus Prepare(const Request& r, const std::string& user_agent, http::http_request& out) {
    out = http::http_request(MethodOf(r.verb));
    web::uri_builder uri(r.path);
    for (const auto& [k, v] : r.query) uri.append_query(k, v, /*do_encoding=*/true);
    out.set_request_uri(uri.to_uri());
    out.headers().add("User-Agent", user_agent);
    // cpprestsdk takes the TLS server name (SNI) from the Host header when one is set: with
    // tls-server-name that is how the API server (--tls-sni-cert-key) sees the name we
    // verify its certificate against. The API server does not route on Host. For an IPv6
    // address it is "[fd00::1]:6443", and no SNI is sent (RFC 6066 names no addresses).
    if (!tls->host_header.empty()) out.headers().add("Host", tls->host_header);
    out.headers().add("Accept", r.accept);
    if (credentials) {
      auto creds = credentials->Get();
      if (!creds.ok()) return creds.error();
      if (!creds->token.empty()) out.headers().add("Authorization", "Bearer " + creds->token);
      std::lock_guard lock(tls->mu);
      tls->exec_cert_pem = creds->client_cert_pem;
      tls->exec_key_pem = creds->client_key_pem;
    }
    if (!r.body.empty() || r.verb == Verb::kPost || r.verb == Verb::kPut ||
        r.verb == Verb::kPatch) {
      out.set_body(r.body, r.content_type.empty() ? "application/json" : r.content_type);
    }
    return ApiStatus::Ok();
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
  // cpprestsdk hands the URL's host to getaddrinfo as written, which takes no "[fd00::1]":
  // connect to a URI with the bare address, and write the Host header ("[fd00::1]:6443",
  // RFC 7230) ourselves.
  std::string host = uri.host();
  const bool ipv6_literal = host.size() > 2 && host.front() == '[' && host.back() == ']';
  if (ipv6_literal) host = host.substr(1, host.size() - 2);
  web::uri connect_uri;
  try {
    web::uri_builder b(uri);
    if (ipv6_literal) b.set_host(host);
    connect_uri = b.to_uri();
  } catch (const std::exception& e) {
    return bad("server \"" + config.server + "\" cannot be used: " + e.what());
  }
  if (scheme == "http") {
    if (!config.allow_insecure_http) {
      return bad("server \"" + config.server +
                 "\" is plain HTTP: the bearer token and every object would cross the network "
                 "unencrypted. Use an https:// server, or pass --allow-insecure-api-server if "
                 "the connection is trusted (a local proxy such as kubectl proxy)");
    }
    spdlog::warn("INSECURE: talking plain HTTP to {} ({}): credentials and objects travel "
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
  if (scheme == "https") {
    boost::asio::ssl::context probe(boost::asio::ssl::context::sslv23);
    if (Status configured = ConfigureTls(probe, *impl.tls); !configured.ok()) {
      return bad(configured.error().ToString());
    }
  }
  if (cfg.insecure_skip_tls_verify) {
    spdlog::warn("INSECURE: not verifying the API server's certificate for {} ({})", cfg.server,
                 cfg.source);
  }
  impl.credentials = MakeCredentialSource(cfg, clock, c->options_.exec_plugin);
  impl.limiter = std::make_unique<TokenBucket>(clock, c->options_.qps, c->options_.burst);
  impl.http = std::make_unique<client::http_client>(
      connect_uri, ClientConfig(impl.tls, c->options_.request_timeout));
  return c;
}

Result<std::string> RestClient::Send(const Request& request, const std::stop_token& stop) {
  Backoff backoff(clock_, options_.retry_backoff, NextSeed());
  bool reauthenticated = false;
  for (int attempt = 0;; ++attempt) {
    if (!impl_->limiter->Wait(stop)) {
      return ApiStatus(0, StatusReason::kCancelled, request.what + ": cancelled");
    }
    http::http_request req;
    ApiStatus status = impl_->Prepare(request, options_.user_agent, req);
    if (!status.ok()) return status.WithContext(request.what);
    ++exchanges_;
    int code = 0;
    std::string body;
    std::optional<std::chrono::seconds> retry_after;
    try {
      CancelBridge cancel(stop);
      http::http_response response = impl_->http->request(req, cancel.token()).get();
      code = response.status_code();
      body = response.extract_utf8string(true).get();
      retry_after = RetryAfterHeader(response);
    } catch (const std::exception& e) {
      if (stop.stop_requested()) {
        return ApiStatus(0, StatusReason::kCancelled, request.what + ": cancelled");
      }
      status = ApiStatus::Transport(e.what());
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

Result<std::unique_ptr<WatchStream>> RestClient::Watch(const ResourceRef& resource,
                                                       const ListOptions& options,
                                                       const std::stop_token& stop) {
  Request request;
  request.path = resource.Path();
  request.query = ListQuery(options, /*watch=*/true);
  request.what = "watch " + resource.Describe();
  if (options.metadata_only) request.accept = std::string(kAcceptMetadata);
  if (!impl_->limiter->Wait(stop)) {
    return ApiStatus(0, StatusReason::kCancelled, request.what + ": cancelled");
  }
  http::http_request req;
  ApiStatus status = impl_->Prepare(request, options_.user_agent, req);
  if (!status.ok()) return status.WithContext(request.what);

  // Its own client: the read timeout must outlast the server-side timeoutSeconds.
  const auto server_timeout =
      std::chrono::seconds(options.timeout_seconds > 0 ? options.timeout_seconds : 1800);
  auto http = std::make_unique<client::http_client>(
      impl_->http->base_uri(),
      ClientConfig(impl_->tls, std::chrono::duration_cast<std::chrono::milliseconds>(
                                   server_timeout + options_.watch_read_grace)));
  auto cancel = std::make_unique<CancelBridge>(stop);
  ++exchanges_;
  http::http_response response;
  try {
    response = http->request(req, cancel->token()).get();
  } catch (const std::exception& e) {
    if (options_.on_response) options_.on_response(Verb::kGet, 0);
    if (stop.stop_requested()) {
      return ApiStatus(0, StatusReason::kCancelled, request.what + ": cancelled");
    }
    return ApiStatus::Transport(e.what()).WithContext(request.what);
  }
  const int code = response.status_code();
  if (options_.on_response) options_.on_response(Verb::kGet, code);
  if (code < 200 || code >= 300) {
    std::string body;
    try {
      body = response.extract_utf8string(true).get();
    } catch (const std::exception&) {
    }
    status = ApiStatus::FromResponse(code, body);
    if (auto ra = RetryAfterHeader(response); ra && !status.retry_after())
      status.set_retry_after(*ra);
    if (code == 401 && impl_->credentials) impl_->credentials->Invalidate();
    return status.WithContext(request.what);
  }
  return std::unique_ptr<WatchStream>(
      new RestWatchStream(std::move(http), std::move(response), std::move(cancel), stop));
}

}  // namespace capwatch::kube

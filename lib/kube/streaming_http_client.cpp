#include "kube/streaming_http_client.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstring>

namespace capwatch::kube {

struct HttpConnection {
  int fd = -1;
  SSL* ssl = nullptr;
  HttpConnection() = default;
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;
  ~HttpConnection() {
    if (ssl != nullptr) SSL_free(ssl);
    if (fd >= 0) ::close(fd);
  }
};

namespace {

using Clock = std::chrono::steady_clock;
constexpr std::size_t kReadSize = 64 * 1024;
constexpr std::size_t kMaxIdle = 8;

std::string Errno(int e) { return std::strerror(e); }

std::string OpenSslError(const char* fallback) {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return fallback;
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

enum class Ready { kYes, kTimeout, kError };

// Waits until `fd` is ready for `events` or `deadline` passes.
Ready WaitFor(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return Ready::kTimeout;
    pollfd p{fd, events, 0};
    const int r = ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 1'000'000)));
    if (r > 0) return Ready::kYes;  // readable, writable, hung up or failed: the I/O says which
    if (r == 0) continue;           // the loop checks the deadline
    if (errno != EINTR) return Ready::kError;
  }
}

std::string Seconds(std::chrono::milliseconds d) {
  const auto ms = d.count();
  return ms % 1000 == 0 ? std::to_string(ms / 1000) + " s" : std::to_string(ms) + " ms";
}

// One read: > 0 bytes, 0 at the end of the stream, -1 with `error` set.
long ReadSome(HttpConnection& c, char* buf, std::size_t n, std::chrono::milliseconds timeout,
              std::string& error) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    short want = POLLIN;
    if (c.ssl != nullptr) {
      ERR_clear_error();
      const int r = SSL_read(c.ssl, buf, static_cast<int>(n));
      if (r > 0) return r;
      const int e = SSL_get_error(c.ssl, r);
      if (e == SSL_ERROR_ZERO_RETURN) return 0;
      if (e == SSL_ERROR_WANT_WRITE) {
        want = POLLOUT;
      } else if (e == SSL_ERROR_SYSCALL) {
        if (errno == 0 || errno == EPIPE) return 0;
        if (errno != EAGAIN && errno != EINTR) {
          error = "read: " + Errno(errno);
          return -1;
        }
      } else if (e != SSL_ERROR_WANT_READ) {
        error = "read: " + OpenSslError("TLS error");
        return -1;
      }
    } else {
      const ssize_t r = ::recv(c.fd, buf, n, 0);
      if (r >= 0) return static_cast<long>(r);
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        error = "read: " + Errno(errno);
        return -1;
      }
    }
    const Ready ready = WaitFor(c.fd, want, deadline);
    if (ready == Ready::kTimeout) {
      error = "no data from the server for " + Seconds(timeout);
      return -1;
    }
    if (ready == Ready::kError) {
      error = "poll: " + Errno(errno);
      return -1;
    }
  }
}

// Writes all of `data`; false with `error` set.
bool WriteAll(HttpConnection& c, std::string_view data, std::chrono::milliseconds timeout,
              std::string& error) {
  const auto deadline = Clock::now() + timeout;
  while (!data.empty()) {
    short want = POLLOUT;
    if (c.ssl != nullptr) {
      ERR_clear_error();
      const int r = SSL_write(c.ssl, data.data(), static_cast<int>(data.size()));
      if (r > 0) {
        data.remove_prefix(static_cast<std::size_t>(r));
        continue;
      }
      const int e = SSL_get_error(c.ssl, r);
      if (e == SSL_ERROR_WANT_READ) {
        want = POLLIN;
      } else if (e != SSL_ERROR_WANT_WRITE) {
        error = "write: " + (e == SSL_ERROR_SYSCALL ? Errno(errno) : OpenSslError("TLS error"));
        return false;
      }
    } else {
      const ssize_t r = ::send(c.fd, data.data(), data.size(), MSG_NOSIGNAL);
      if (r > 0) {
        data.remove_prefix(static_cast<std::size_t>(r));
        continue;
      }
      if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        error = "write: " + Errno(errno);
        return false;
      }
    }
    if (WaitFor(c.fd, want, deadline) != Ready::kYes) {
      error = "write: the server took no data for " + Seconds(timeout);
      return false;
    }
  }
  return true;
}

// Ends a blocked read or connect at once: shutdown wakes poll on the socket.
struct ShutdownOnStop {
  explicit ShutdownOnStop(const std::stop_token& stop, int fd)
      : callback(stop, [fd] { ::shutdown(fd, SHUT_RDWR); }) {}
  std::stop_callback<std::function<void()>> callback;
};

}  // namespace

// ---- HttpResponseStream ----

HttpResponseStream::HttpResponseStream(std::shared_ptr<StreamingHttpClient> client,
                                       std::unique_ptr<HttpConnection> conn,
                                       std::chrono::milliseconds read_timeout,
                                       const std::stop_token& stop)
    : client_(std::move(client)),
      conn_(std::move(conn)),
      read_timeout_(read_timeout),
      stop_(stop),
      buf_(kReadSize) {
  const int fd = conn_->fd;
  on_stop_ = std::make_unique<std::stop_callback<std::function<void()>>>(
      stop_, [fd] { ::shutdown(fd, SHUT_RDWR); });
}

HttpResponseStream::~HttpResponseStream() {
  on_stop_.reset();  // before the socket may close or move
  if (conn_ && parser_.reusable() && error_.empty() && !trailing_bytes_ &&
      !stop_.stop_requested()) {
    client_->GiveBack(std::move(conn_));
  }
}

bool HttpResponseStream::ReadOnce(const ResponseParser::BodySink& on_body) {
  std::string read_error;
  const long n = ReadSome(*conn_, buf_.data(), buf_.size(), read_timeout_, read_error);
  if (stop_.stop_requested()) {
    cancelled_ = true;
    error_ = "cancelled";
    return false;
  }
  if (n < 0) {
    error_ = read_error;
    return false;
  }
  if (n == 0) {
    parser_.FeedEof();
    if (parser_.failed()) {
      error_ = parser_.error();
      return false;
    }
    return true;
  }
  const std::string_view got(buf_.data(), static_cast<std::size_t>(n));
  const std::size_t used = parser_.Feed(got, on_body);
  if (parser_.failed()) {
    error_ = "malformed response: " + parser_.error();
    return false;
  }
  if (used < got.size()) trailing_bytes_ = true;
  return true;
}

bool HttpResponseStream::Read(const ResponseParser::BodySink& on_body) {
  if (!early_body_.empty()) {
    on_body(early_body_);
    early_body_.clear();
    return true;
  }
  if (parser_.done() || !error_.empty()) return false;
  return ReadOnce(on_body);
}

// ---- StreamingHttpClient ----

StreamingHttpClient::StreamingHttpClient(Target target, std::shared_ptr<TlsSettings> tls)
    : target_(std::move(target)), tls_(std::move(tls)) {}

StreamingHttpClient::~StreamingHttpClient() {
  idle_.clear();
  if (ctx_ != nullptr) SSL_CTX_free(ctx_);
}

capwatch::Result<std::shared_ptr<StreamingHttpClient>> StreamingHttpClient::Make(
    Target target, std::shared_ptr<TlsSettings> tls) {
  std::shared_ptr<StreamingHttpClient> c(
      new StreamingHttpClient(std::move(target), std::move(tls)));
  if (c->target_.tls) {
    std::lock_guard lock(c->mu_);
    if (Status made = c->EnsureContext(); !made.ok()) return made.error();
  }
  return c;
}

std::uint64_t StreamingHttpClient::connections() const {
  std::lock_guard lock(mu_);
  return connections_;
}

Status StreamingHttpClient::EnsureContext() {
  std::string cert, key;
  tls_->ClientCert(cert, key);
  if (ctx_ != nullptr && cert == ctx_cert_pem_) return {};
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == nullptr) return Error("TLS context: " + OpenSslError("out of memory"));
  // A truncated response is caught by HTTP's own framing and reported as such.
  SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
  if (Status configured = ConfigureTls(ctx, *tls_); !configured.ok()) {
    SSL_CTX_free(ctx);
    return configured;
  }
  if (ctx_ != nullptr) SSL_CTX_free(ctx_);
  ctx_ = ctx;
  ctx_cert_pem_ = cert;
  return {};
}

std::unique_ptr<HttpConnection> StreamingHttpClient::TakeIdle() {
  std::lock_guard lock(mu_);
  while (!idle_.empty()) {
    std::unique_ptr<HttpConnection> c = std::move(idle_.back());
    idle_.pop_back();
    // A kept connection that is readable has been closed by the server (or carries bytes
    // nobody asked for): not usable.
    pollfd p{c->fd, POLLIN, 0};
    if (::poll(&p, 1, 0) == 0 && (c->ssl == nullptr || SSL_pending(c->ssl) == 0)) return c;
  }
  return nullptr;
}

void StreamingHttpClient::GiveBack(std::unique_ptr<HttpConnection> conn) {
  std::lock_guard lock(mu_);
  if (idle_.size() < kMaxIdle) idle_.push_back(std::move(conn));
}

capwatch::Result<std::unique_ptr<HttpConnection>> StreamingHttpClient::Dial(
    std::chrono::milliseconds timeout, const std::stop_token& stop) {
  const std::string where = target_.host + ":" + target_.port;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (const int r = ::getaddrinfo(target_.host.c_str(), target_.port.c_str(), &hints, &found);
      r != 0) {
    return Error("resolving " + target_.host + ": " + ::gai_strerror(r));
  }
  const auto deadline = Clock::now() + timeout;
  std::string last_error = "no address";
  auto conn = std::make_unique<HttpConnection>();
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    const int fd =
        ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      last_error = Errno(errno);
      continue;
    }
    ShutdownOnStop on_stop(stop, fd);
    int rc = ::connect(fd, a->ai_addr, a->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      if (WaitFor(fd, POLLOUT, deadline) == Ready::kYes) {
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        rc = err == 0 ? 0 : -1;
        errno = err;
      } else {
        errno = ETIMEDOUT;
      }
    }
    if (rc == 0 && !stop.stop_requested()) {
      conn->fd = fd;
      break;
    }
    last_error = stop.stop_requested() ? "cancelled" : Errno(errno);
    ::close(fd);
  }
  ::freeaddrinfo(found);
  if (conn->fd < 0) return Error("connect to " + where + ": " + last_error);
  const int one = 1;
  ::setsockopt(conn->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  ::setsockopt(conn->fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
  {
    std::lock_guard lock(mu_);
    ++connections_;
  }
  if (!target_.tls) return conn;

  {
    std::lock_guard lock(mu_);
    if (Status made = EnsureContext(); !made.ok()) return made.error();
    conn->ssl = SSL_new(ctx_);
  }
  if (conn->ssl == nullptr) return Error("TLS session: " + OpenSslError("out of memory"));
  SSL_set_fd(conn->ssl, conn->fd);
  if (!target_.sni.empty()) {
    // SSL_set_tlsext_host_name, without its C cast.
    SSL_ctrl(conn->ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
             const_cast<char*>(target_.sni.c_str()));
  }
  ShutdownOnStop on_stop(stop, conn->fd);
  for (;;) {
    ERR_clear_error();
    const int r = SSL_connect(conn->ssl);
    if (r == 1) break;
    const int e = SSL_get_error(conn->ssl, r);
    short want = 0;
    if (e == SSL_ERROR_WANT_READ) want = POLLIN;
    if (e == SSL_ERROR_WANT_WRITE) want = POLLOUT;
    if (want == 0 || stop.stop_requested()) {
      if (stop.stop_requested()) return Error("TLS handshake with " + where + ": cancelled");
      std::string why;
      if (const long v = SSL_get_verify_result(conn->ssl); v != X509_V_OK) {
        why = std::string("certificate verify failed: ") + X509_verify_cert_error_string(v);
        ERR_clear_error();
      } else if (e == SSL_ERROR_SYSCALL) {
        why = errno == 0 ? "the server closed the connection" : Errno(errno);
      } else {
        why = OpenSslError("TLS error");
      }
      return Error("TLS handshake with " + where + ": " + why);
    }
    if (WaitFor(conn->fd, want, deadline) != Ready::kYes) {
      return Error("TLS handshake with " + where + ": no answer for " + Seconds(timeout));
    }
  }
  return conn;
}

capwatch::Result<std::unique_ptr<HttpResponseStream>> StreamingHttpClient::Open(
    std::string_view request, std::chrono::milliseconds read_timeout, const std::stop_token& stop) {
  for (int attempt = 0;; ++attempt) {
    std::unique_ptr<HttpConnection> conn = attempt == 0 ? TakeIdle() : nullptr;
    const bool kept = conn != nullptr;
    if (!kept) {
      auto dialed = Dial(read_timeout, stop);
      if (!dialed.ok()) return dialed.error();
      conn = std::move(dialed).value();
    }
    std::unique_ptr<HttpResponseStream> stream(
        new HttpResponseStream(shared_from_this(), std::move(conn), read_timeout, stop));
    std::string error;
    bool sent = WriteAll(*stream->conn_, request, read_timeout, error);
    bool any_byte = false;
    if (sent) {
      auto keep_early = [&stream](std::string_view b) { stream->early_body_.append(b); };
      while (!stream->parser_.head_done()) {
        if (!stream->ReadOnce(keep_early)) break;
        any_byte = true;
        if (stream->parser_.done()) break;
      }
      if (stream->parser_.head_done()) return stream;
      error = stream->error_;
    }
    if (stop.stop_requested()) return Error("cancelled");
    // The server may close a kept connection just as we send on it: once more on a new one,
    // when it answered nothing (see Open's comment for why writes are included).
    const bool closed_early =
        !sent || !any_byte || error.find("before a response") != std::string::npos;
    if (kept && closed_early && attempt == 0) continue;
    return Error(error);
  }
}

}  // namespace capwatch::kube

#include "controller/http_endpoints.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <set>
#include <thread>

namespace capwatch::controller {
namespace {

// Limits that keep a hostile or broken client from holding the listener: the request head is
// small, must arrive within the deadline, and only so many connections are served at once.
constexpr std::size_t kMaxRequestHead = 16 * 1024;
constexpr auto kRequestDeadline = std::chrono::seconds(10);
constexpr int kSocketTimeoutSeconds = 10;
constexpr int kMaxConnections = 32;

std::string Errno(std::string_view what) {
  return std::string(what) + ": " + std::strerror(errno);
}

std::string_view ReasonPhrase(int code) {
  switch (code) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Status";
  }
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

// One accepted connection: plain or TLS reads and writes over the socket.
class Connection {
 public:
  Connection(int fd, SSL_CTX* tls) : fd_(fd) {
    if (tls != nullptr) ssl_ = SSL_new(tls);
  }
  ~Connection() {
    if (ssl_ != nullptr) SSL_free(ssl_);
  }
  bool Handshake() {
    if (ssl_ == nullptr) return true;
    SSL_set_fd(ssl_, fd_);
    const bool ok = SSL_accept(ssl_) == 1;
    ERR_clear_error();
    return ok;
  }
  long Read(char* buffer, std::size_t size) {
    if (ssl_ == nullptr) return ::recv(fd_, buffer, size, 0);
    const int n = SSL_read(ssl_, buffer, static_cast<int>(size));
    ERR_clear_error();
    return n;
  }
  bool WriteAll(std::string_view data) {
    while (!data.empty()) {
      long n;
      if (ssl_ == nullptr) {
        n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      } else {
        n = SSL_write(ssl_, data.data(), static_cast<int>(data.size()));
        ERR_clear_error();
      }
      if (n <= 0) return false;
      data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }
  void Close() {
    if (ssl_ != nullptr) {
      SSL_shutdown(ssl_);
      ERR_clear_error();
    }
  }

 private:
  int fd_;
  SSL* ssl_ = nullptr;
};

}  // namespace

struct HttpEndpoints::Impl {
  std::vector<HttpRoute> routes;
  ServeOptions options;
  std::string url;
  SSL_CTX* tls = nullptr;
  int listen_fd = -1;
  int wake[2] = {-1, -1};
  std::thread acceptor;

  std::mutex mu;
  std::condition_variable idle;
  std::set<int> open_fds;  // connections being served, shut down on Stop

  Status Listen(const std::string& host, const std::string& port);
  Status LoadCertificate(const ServingCert& cert);
  void AcceptLoop();
  void Serve(int fd);
  void Respond(Connection& c, int code, std::string_view body, std::string_view content_type,
               bool challenge);
};

Result<std::string> ListenUrl(const std::string& address, bool https) {
  const auto colon = address.rfind(':');
  const std::string port = colon == std::string::npos ? "" : address.substr(colon + 1);
  const bool numeric = !port.empty() && port.size() <= 5 &&
                       port.find_first_not_of("0123456789") == std::string::npos &&
                       std::stoi(port) > 0 && std::stoi(port) <= 65535;
  std::string host = colon == std::string::npos ? "" : address.substr(0, colon);
  const bool bracketed = host.size() >= 2 && host.front() == '[' && host.back() == ']';
  // An IPv6 literal needs its brackets: "::1:8443" cannot say where the port starts.
  const bool bare_ipv6 = !bracketed && host.find(':') != std::string::npos;
  if (!numeric || bare_ipv6 || host == "[]") {
    return Error("bind address \"" + address +
                 "\" must be host:port, :port or [ipv6]:port with a port from 1 to 65535");
  }
  if (host.empty()) host = "0.0.0.0";
  return std::string(https ? "https://" : "http://") + host + ":" + port;
}

Status HttpEndpoints::Impl::Listen(const std::string& host, const std::string& port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (const int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    return Error("resolve " + host + ": " + gai_strerror(rc));
  }
  std::string last = "no address";
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    const int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      last = Errno("socket");
      continue;
    }
    const int one = 1, zero = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    // "[::]" serves IPv4 too where the node allows it, as Go's listeners do.
    if (a->ai_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, 64) == 0) {
      listen_fd = fd;
      break;
    }
    last = Errno("bind");
    close(fd);
  }
  freeaddrinfo(found);
  if (listen_fd < 0) return Error(last);
  return {};
}

Status HttpEndpoints::Impl::LoadCertificate(const ServingCert& cert) {
  tls = SSL_CTX_new(TLS_server_method());
  if (tls == nullptr) return Error(OpenSslError("TLS context"));
  SSL_CTX_set_min_proto_version(tls, TLS1_2_VERSION);
  BIO* chain = BIO_new_mem_buf(cert.cert_pem.data(), static_cast<int>(cert.cert_pem.size()));
  X509* leaf = PEM_read_bio_X509(chain, nullptr, nullptr, nullptr);
  bool ok = leaf != nullptr && SSL_CTX_use_certificate(tls, leaf) == 1;
  X509_free(leaf);
  // The rest of the file is the chain to the issuer, if any.
  while (ok) {
    X509* extra = PEM_read_bio_X509(chain, nullptr, nullptr, nullptr);
    if (extra == nullptr) break;
    if (SSL_CTX_add_extra_chain_cert(tls, extra) != 1) {
      X509_free(extra);
      ok = false;
    }
  }
  ERR_clear_error();  // the end of the chain reads as an error
  BIO_free(chain);
  BIO* key_bio = BIO_new_mem_buf(cert.key_pem.data(), static_cast<int>(cert.key_pem.size()));
  EVP_PKEY* key = PEM_read_bio_PrivateKey(key_bio, nullptr, nullptr, nullptr);
  BIO_free(key_bio);
  ok = ok && key != nullptr && SSL_CTX_use_PrivateKey(tls, key) == 1 &&
       SSL_CTX_check_private_key(tls) == 1;
  EVP_PKEY_free(key);
  if (!ok) return Error(OpenSslError("the serving certificate or key is unusable"));
  return {};
}

void HttpEndpoints::Impl::AcceptLoop() {
  while (true) {
    pollfd fds[2] = {{listen_fd, POLLIN, 0}, {wake[0], POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents != 0) return;  // Stop()
    const int fd = accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    {
      std::lock_guard lock(mu);
      if (open_fds.size() >= static_cast<std::size_t>(kMaxConnections)) {
        close(fd);  // at the limit: refuse rather than queue without bound
        continue;
      }
      open_fds.insert(fd);
    }
    std::thread([this, fd] { Serve(fd); }).detach();
  }
}

void HttpEndpoints::Impl::Respond(Connection& c, int code, std::string_view body,
                                  std::string_view content_type, bool challenge) {
  std::string head = "HTTP/1.1 " + std::to_string(code) + " " + std::string(ReasonPhrase(code)) +
                     "\r\nContent-Type: " + std::string(content_type) +
                     "\r\nContent-Length: " + std::to_string(body.size()) +
                     "\r\nConnection: close\r\nX-Content-Type-Options: nosniff\r\n";
  if (challenge) head += "WWW-Authenticate: Bearer\r\n";
  head += "\r\n";
  if (c.WriteAll(head)) (void)c.WriteAll(body);
}

void HttpEndpoints::Impl::Serve(int fd) {
  timeval timeout{kSocketTimeoutSeconds, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  {
    Connection c(fd, tls);
    const auto deadline = std::chrono::steady_clock::now() + kRequestDeadline;
    std::string head;
    bool complete = false;
    if (c.Handshake()) {
      char buffer[4096];
      while (head.size() <= kMaxRequestHead && std::chrono::steady_clock::now() < deadline) {
        const long n = c.Read(buffer, sizeof(buffer));
        if (n <= 0) break;
        head.append(buffer, static_cast<std::size_t>(n));
        if (head.find("\r\n\r\n") != std::string::npos) {
          complete = true;
          break;
        }
      }
    }
    const std::string_view text_plain = "text/plain; charset=utf-8";
    if (!complete) {
      if (head.size() > kMaxRequestHead) Respond(c, 431, "request head too large\n", text_plain, false);
    } else {
      // "GET /metrics?x HTTP/1.1", then headers.
      const auto line_end = head.find("\r\n");
      const std::string_view line(head.data(), line_end);
      const auto sp1 = line.find(' ');
      const auto sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
      if (sp2 == std::string_view::npos || line.substr(sp2 + 1, 5) != "HTTP/") {
        Respond(c, 400, "bad request line\n", text_plain, false);
      } else if (line.substr(0, sp1) != "GET") {
        Respond(c, 405, "only GET\n", text_plain, false);
      } else {
        std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
        const std::string path(target.substr(0, target.find('?')));
        std::string authorization;
        std::size_t pos = line_end + 2;
        while (pos < head.size()) {
          const auto end = head.find("\r\n", pos);
          if (end == std::string::npos || end == pos) break;
          const std::string_view header(head.data() + pos, end - pos);
          const auto colon = header.find(':');
          if (colon != std::string_view::npos &&
              EqualsIgnoreCase(header.substr(0, colon), "authorization")) {
            std::string_view value = header.substr(colon + 1);
            while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
            authorization = std::string(value);
          }
          pos = end + 2;
        }
        const HttpRoute* route = nullptr;
        for (const auto& r : routes) {
          if (r.path == path) route = &r;
        }
        if (route == nullptr) {
          Respond(c, 404, "not found\n", text_plain, false);
        } else {
          AuthDecision decision{200, "", {}, false};
          if (route->needs_authorization) {
            decision = options.authorize ? options.authorize(authorization, path)
                                         : AuthDecision{500, "no authorizer configured", {}, false};
          }
          if (decision.code != 200) {
            Respond(c, decision.code, decision.message + "\n", text_plain, decision.code == 401);
          } else {
            std::string body, content_type(text_plain);
            const int code = route->handler(body, content_type);
            Respond(c, code, body, content_type, false);
          }
        }
      }
    }
    c.Close();
  }
  close(fd);
  std::lock_guard lock(mu);
  open_fds.erase(fd);
  if (open_fds.empty()) idle.notify_all();
}

HttpEndpoints::HttpEndpoints() : impl_(std::make_unique<Impl>()) {}
HttpEndpoints::~HttpEndpoints() { Stop(); }

const std::string& HttpEndpoints::url() const { return impl_->url; }

Status HttpEndpoints::Start(ServeOptions options, std::vector<HttpRoute> routes) {
  if (options.address == "0" || options.address.empty()) return {};
  auto url = ListenUrl(options.address, options.tls.has_value());
  if (!url.ok()) return url.error();
  const auto colon = options.address.rfind(':');
  std::string host = options.address.substr(0, colon);
  if (host.empty()) host = "0.0.0.0";
  if (host.front() == '[') host = host.substr(1, host.size() - 2);
  const std::string port = options.address.substr(colon + 1);
  Status started = options.tls ? impl_->LoadCertificate(*options.tls) : Status();
  if (started.ok()) started = impl_->Listen(host, port);
  if (started.ok() && pipe2(impl_->wake, O_CLOEXEC) != 0) started = Error(Errno("pipe"));
  if (!started.ok()) {
    Error error = started.error();
    error.WithContext("cannot serve on " + options.address);
    Stop();
    return error;
  }
  impl_->routes = std::move(routes);
  impl_->options = std::move(options);
  impl_->url = std::move(url).value();
  impl_->acceptor = std::thread([impl = impl_.get()] { impl->AcceptLoop(); });
  return {};
}

void HttpEndpoints::Stop() {
  if (impl_->acceptor.joinable()) {
    const char byte = 0;
    (void)!write(impl_->wake[1], &byte, 1);
    impl_->acceptor.join();
  }
  {
    // Connections still being served end at their next read or write.
    std::unique_lock lock(impl_->mu);
    for (const int fd : impl_->open_fds) shutdown(fd, SHUT_RDWR);
    impl_->idle.wait(lock, [&] { return impl_->open_fds.empty(); });
  }
  for (int& fd : {std::ref(impl_->listen_fd), std::ref(impl_->wake[0]), std::ref(impl_->wake[1])}) {
    if (fd >= 0) close(fd);
    fd = -1;
  }
  if (impl_->tls != nullptr) SSL_CTX_free(impl_->tls);
  impl_->tls = nullptr;
  impl_->url.clear();
}

}  // namespace capwatch::controller

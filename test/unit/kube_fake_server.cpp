#include "kube_fake_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace capwatch::kube::testing {
namespace {

SSL* AsSsl(void* p) { return static_cast<SSL*>(p); }

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string UrlDecode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      out.push_back(static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16)));
      i += 2;
    } else if (s[i] == '+') {
      out.push_back(' ');
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

const char* StatusText(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 409:
      return "Conflict";
    case 410:
      return "Gone";
    case 422:
      return "Unprocessable Entity";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Status";
  }
}

// A listening socket on the loopback address, port chosen by the kernel; -1 and `error` if not.
int ListenOnLoopback(Loopback loopback, int& port, std::string& error) {
  const bool v6 = loopback == Loopback::kIpv6;
  const int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    error = std::string("socket: ") + std::strerror(errno);
    return -1;
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_storage storage{};
  socklen_t len;
  if (v6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&storage);
    a->sin6_family = AF_INET6;
    a->sin6_addr = in6addr_loopback;
    len = sizeof *a;
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&storage);
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    len = sizeof *a;
  }
  auto* addr = reinterpret_cast<sockaddr*>(&storage);
  if (bind(fd, addr, len) != 0 || listen(fd, 64) != 0) {
    error = std::string("cannot listen on ") + (v6 ? "[::1]" : "127.0.0.1") + ": " +
            std::strerror(errno);
    close(fd);
    return -1;
  }
  getsockname(fd, addr, &len);
  port = ntohs(v6 ? reinterpret_cast<sockaddr_in6*>(&storage)->sin6_port
                  : reinterpret_cast<sockaddr_in*>(&storage)->sin_port);
  return fd;
}

}  // namespace

bool Connection::Write(std::string_view bytes) {
  if (dropped_) return false;
  while (!bytes.empty()) {
    ssize_t n;
    if (ssl_ != nullptr) {
      n = SSL_write(AsSsl(ssl_), bytes.data(), static_cast<int>(bytes.size()));
    } else {
      n = send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    }
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

bool Connection::Respond(int status, std::string_view body, const Headers& headers) {
  std::string head = "HTTP/1.1 " + std::to_string(status) + " " + StatusText(status) + "\r\n";
  bool has_type = false;
  for (const auto& [k, v] : headers) {
    head += k + ": " + v + "\r\n";
    if (Lower(k) == "content-type") has_type = true;
  }
  if (!has_type) head += "Content-Type: application/json\r\n";
  head += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n";
  return Write(head) && Write(body);
}

bool Connection::StartChunked(int status, const Headers& headers) {
  std::string head = "HTTP/1.1 " + std::to_string(status) + " " + StatusText(status) + "\r\n";
  for (const auto& [k, v] : headers) head += k + ": " + v + "\r\n";
  head += "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
  return Write(head);
}

bool Connection::Chunk(std::string_view data) {
  if (data.empty()) return true;
  char size[32];
  std::snprintf(size, sizeof size, "%zx\r\n", data.size());
  return Write(size) && Write(data) && Write("\r\n");
}

bool Connection::EndChunked() { return Write("0\r\n\r\n"); }

void Connection::Drop() {
  dropped_ = true;
  shutdown(fd_, SHUT_RDWR);
}

bool Connection::Sleep(std::chrono::milliseconds d) {
  std::unique_lock lock(server_.mu_);
  return !server_.cv_.wait_for(lock, d, [this] { return server_.stopping_.load(); });
}

bool Connection::stopped() const { return server_.stopping_.load(); }

FakeApiServer::FakeApiServer(Handler handler, std::optional<TlsFiles> tls, Loopback loopback)
    : handler_(std::move(handler)), tls_(std::move(tls)), loopback_(loopback) {
  std::signal(SIGPIPE, SIG_IGN);
  if (tls_) {
    SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
    if (SSL_CTX_use_certificate_chain_file(ctx, tls_->cert_file.c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, tls_->key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
      SSL_CTX_free(ctx);
      throw std::runtime_error("fake server: cannot load " + tls_->cert_file);
    }
    if (!tls_->client_ca_file.empty()) {
      SSL_CTX_load_verify_locations(ctx, tls_->client_ca_file.c_str(), nullptr);
      SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    }
    ssl_ctx_ = ctx;
  }
  std::string error;
  listen_fd_ = ListenOnLoopback(loopback_, port_, error);
  if (listen_fd_ < 0) throw std::runtime_error("fake server: " + error);
  acceptor_ = std::thread([this] { AcceptLoop(); });
}

FakeApiServer::~FakeApiServer() {
  Stop();
  if (ssl_ctx_ != nullptr) SSL_CTX_free(static_cast<SSL_CTX*>(ssl_ctx_));
}

std::string FakeApiServer::url() const {
  return std::string(tls_ ? "https" : "http") + "://" +
         (loopback_ == Loopback::kIpv6 ? "[::1]" : "127.0.0.1") + ":" + std::to_string(port_);
}

bool FakeApiServer::Ipv6LoopbackAvailable(std::string* why) {
  int port = 0;
  std::string error;
  const int fd = ListenOnLoopback(Loopback::kIpv6, port, error);
  if (fd < 0) {
    if (why != nullptr) *why = error;
    return false;
  }
  close(fd);
  return true;
}

void FakeApiServer::Stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_.exchange(true)) return;
    for (int fd : open_fds_) shutdown(fd, SHUT_RDWR);
  }
  cv_.notify_all();
  if (acceptor_.joinable()) acceptor_.join();
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(mu_);
    threads.swap(threads_);
  }
  for (auto& t : threads) t.join();
  close(listen_fd_);
}

void FakeApiServer::AcceptLoop() {
  while (!stopping_.load()) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (poll(&p, 1, 20) <= 0) continue;
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    ++connections_;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    std::lock_guard lock(mu_);
    if (stopping_.load()) {
      close(fd);
      break;
    }
    open_fds_.push_back(fd);
    threads_.emplace_back([this, fd] { Serve(fd); });
  }
}

void FakeApiServer::Serve(int fd) {
  SSL* ssl = nullptr;
  std::string client_cn;
  std::string sni;
  if (ssl_ctx_ != nullptr) {
    ssl = SSL_new(static_cast<SSL_CTX*>(ssl_ctx_));
    SSL_set_fd(ssl, fd);
    if (SSL_accept(ssl) != 1) {
      ++handshake_failures_;
      ERR_clear_error();
      SSL_free(ssl);
      ssl = nullptr;
      shutdown(fd, SHUT_RDWR);
      close(fd);
      std::lock_guard lock(mu_);
      std::erase(open_fds_, fd);
      return;
    }
    if (const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name)) sni = name;
    if (X509* peer = SSL_get1_peer_certificate(ssl)) {
      char cn[256] = {0};
      X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, cn, sizeof cn);
      client_cn = cn;
      X509_free(peer);
    }
  }
  Connection conn(*this, fd, ssl);
  std::string in;
  char buf[16384];
  auto read_more = [&]() -> bool {
    for (;;) {
      if (stopping_.load() || conn.dropped()) return false;
      if (ssl == nullptr || SSL_pending(ssl) == 0) {
        pollfd p{fd, POLLIN, 0};
        const int r = poll(&p, 1, 20);
        if (r == 0) continue;
        if (r < 0) return false;
      }
      const ssize_t n =
          ssl != nullptr ? SSL_read(ssl, buf, sizeof buf) : recv(fd, buf, sizeof buf, 0);
      if (n <= 0) return false;
      in.append(buf, static_cast<std::size_t>(n));
      return true;
    }
  };
  while (!stopping_.load() && !conn.dropped()) {
    std::size_t end;
    while ((end = in.find("\r\n\r\n")) == std::string::npos) {
      if (!read_more()) goto done;
    }
    HttpRequest req;
    req.client_cert_cn = client_cn;
    req.sni = sni;
    {
      const std::string head = in.substr(0, end);
      in.erase(0, end + 4);
      std::size_t line_end = head.find("\r\n");
      const std::string request_line = head.substr(0, line_end);
      const std::size_t sp1 = request_line.find(' ');
      const std::size_t sp2 = request_line.find(' ', sp1 + 1);
      req.method = request_line.substr(0, sp1);
      req.target = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
      const std::size_t q = req.target.find('?');
      req.path = req.target.substr(0, q);
      if (q != std::string::npos) {
        std::string_view qs(req.target);
        qs.remove_prefix(q + 1);
        while (!qs.empty()) {
          const std::size_t amp = qs.find('&');
          std::string_view kv = qs.substr(0, amp);
          const std::size_t eq = kv.find('=');
          req.query[UrlDecode(kv.substr(0, eq))] =
              eq == std::string_view::npos ? "" : UrlDecode(kv.substr(eq + 1));
          if (amp == std::string_view::npos) break;
          qs.remove_prefix(amp + 1);
        }
      }
      std::size_t pos = line_end + 2;
      while (pos < head.size()) {
        std::size_t next = head.find("\r\n", pos);
        if (next == std::string::npos) next = head.size();
        const std::string line = head.substr(pos, next - pos);
        const std::size_t colon = line.find(':');
        if (colon != std::string::npos) {
          std::string value = line.substr(colon + 1);
          while (!value.empty() && value.front() == ' ') value.erase(0, 1);
          req.headers[Lower(line.substr(0, colon))] = value;
        }
        pos = next + 2;
      }
    }
    const std::size_t length = std::strtoul(req.Header("content-length").c_str(), nullptr, 10);
    while (in.size() < length) {
      if (!read_more()) goto done;
    }
    req.body = in.substr(0, length);
    in.erase(0, length);
    ++requests_;
    handler_(req, conn);
  }
done:
  if (ssl != nullptr) {
    SSL_shutdown(ssl);
    SSL_free(ssl);
  }
  {
    std::lock_guard lock(mu_);
    std::erase(open_fds_, fd);
  }
  shutdown(fd, SHUT_RDWR);
  close(fd);
}

TempDir::TempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "capwatch-kube-XXXXXX").string();
  if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

void TempDir::Write(const std::string& name, const std::string& content) const {
  std::ofstream out(File(name), std::ios::binary | std::ios::trunc);
  out << content;
}

std::string ReadFile(const std::string& path) {
  std::string out;
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return out;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  std::fclose(f);
  return out;
}

int Shell(const std::string& command) {
  const int rc = std::system(command.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

}  // namespace capwatch::kube::testing

// LeakSanitizer, in the ASan build: OpenSSL keeps an error queue and random generators per
// thread, freed when the thread exits. cpprestsdk's I/O threads outlive OpenSSL's cleanup at
// exit, so their per-thread state shows up as leaked. And when a request fails, cpprestsdk
// closes the request body with a continuation task that, if the process exits right after,
// is never run or freed (http_msg_base::_complete). Nothing else is suppressed. The
// suppressions match frames inside libcrypto, which has no frame pointers: stacks of
// allocations are taken with the slow unwinder so those frames are there to match.
extern "C" const char* __asan_default_options();
extern "C" const char* __asan_default_options() { return "fast_unwind_on_malloc=0"; }
extern "C" const char* __lsan_default_suppressions();
extern "C" const char* __lsan_default_suppressions() {
  return "leak:ERR_clear_error\n"
         "leak:RAND_get0_public\n"
         "leak:RAND_get0_private\n"
         "leak:web::http::details::http_msg_base::_complete\n";
}

#pragma once

// An in-process HTTP(S) server on 127.0.0.1 (or [::1]), port 0, for the kube client's
// fault-injection tests: handlers answer, stream chunks byte by byte, hang, or drop the connection.
// Plain sockets and OpenSSL; one thread per connection.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace capwatch::kube::testing {

struct HttpRequest {
  std::string method;
  std::string target;  // path and query as sent
  std::string path;
  std::map<std::string, std::string> query;    // decoded
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  std::string client_cert_cn;  // the TLS client certificate's CN, if one was presented
  std::string sni;             // the TLS server name the client asked for

  std::string Query(const std::string& key) const {
    auto it = query.find(key);
    return it == query.end() ? std::string() : it->second;
  }
  std::string Header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

using Headers = std::vector<std::pair<std::string, std::string>>;

class FakeApiServer;

// One client connection, as a handler writes to it.
class Connection {
 public:
  Connection(FakeApiServer& server, int fd, void* ssl) : server_(server), fd_(fd), ssl_(ssl) {}
  bool Write(std::string_view bytes);
  bool Respond(int status, std::string_view body, const Headers& headers = {});
  bool StartChunked(int status, const Headers& headers = {});
  bool Chunk(std::string_view data);
  bool EndChunked();
  // Closes the connection without finishing the response.
  void Drop();
  // Waits `d`, or less if the server stops; false when it stopped.
  bool Sleep(std::chrono::milliseconds d);
  bool stopped() const;
  bool dropped() const { return dropped_; }

 private:
  friend class FakeApiServer;
  FakeApiServer& server_;
  int fd_;
  void* ssl_;
  bool dropped_ = false;
};

using Handler = std::function<void(const HttpRequest&, Connection&)>;

struct TlsFiles {
  std::string cert_file;
  std::string key_file;
  std::string client_ca_file;  // non-empty: require a client certificate signed by this CA
};

// The loopback address the server listens on.
enum class Loopback { kIpv4, kIpv6 };

class FakeApiServer {
 public:
  explicit FakeApiServer(Handler handler, std::optional<TlsFiles> tls = std::nullopt,
                         Loopback loopback = Loopback::kIpv4);
  ~FakeApiServer();
  FakeApiServer(const FakeApiServer&) = delete;
  FakeApiServer& operator=(const FakeApiServer&) = delete;

  int port() const { return port_; }
  // https://127.0.0.1:port or https://[::1]:port (http:// without TLS).
  std::string url() const;
  // Whether this machine can listen on [::1]; if not, `why` says what failed.
  static bool Ipv6LoopbackAvailable(std::string* why);
  void Stop();
  int requests() const { return requests_.load(); }
  int handshake_failures() const { return handshake_failures_.load(); }
  // TCP connections accepted so far.
  int connections() const { return connections_.load(); }

 private:
  friend class Connection;
  void AcceptLoop();
  void Serve(int fd);

  Handler handler_;
  std::optional<TlsFiles> tls_;
  Loopback loopback_;
  void* ssl_ctx_ = nullptr;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> requests_{0};
  std::atomic<int> handshake_failures_{0};
  std::atomic<int> connections_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<int> open_fds_;
  std::vector<std::thread> threads_;
  std::thread acceptor_;
};

// A temporary directory removed with its contents.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }
  void Write(const std::string& name, const std::string& content) const;

 private:
  std::string path_;
};

// The whole file, or "" when it cannot be read.
std::string ReadFile(const std::string& path);

// Runs a shell command; returns its exit status.
int Shell(const std::string& command);

}  // namespace capwatch::kube::testing

#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include <openssl/ssl.h>

#include "base/result.h"
#include "kube/http_response_parser.h"
#include "kube/tls_settings.h"

namespace capwatch::kube {

struct HttpConnection;  // a socket, and its TLS session when there is one
class StreamingHttpClient;

// One response as it arrives. Reading blocks the caller's thread (no callbacks, no copies
// between threads); each read waits at most the read timeout; the stop token given to Open
// ends a read at once. A response read to its end gives its connection back for the next
// request; one abandoned early closes it.
class HttpResponseStream {
 public:
  ~HttpResponseStream();
  HttpResponseStream(const HttpResponseStream&) = delete;
  HttpResponseStream& operator=(const HttpResponseStream&) = delete;

  const ResponseHead& head() const { return parser_.head(); }
  std::optional<std::uint64_t> content_length() const { return parser_.content_length(); }
  // Waits for the next bytes and hands the body's to `on_body`. False at the end of the
  // response, or when it broke: see done() and error().
  bool Read(const ResponseParser::BodySink& on_body);
  bool done() const { return parser_.done(); }
  // Why the response broke off (empty while it has not): a timeout, a reset, a malformed
  // response, or "cancelled".
  const std::string& error() const { return error_; }
  bool cancelled() const { return cancelled_; }

 private:
  friend class StreamingHttpClient;
  HttpResponseStream(std::shared_ptr<StreamingHttpClient> client,
                     std::unique_ptr<HttpConnection> conn, std::chrono::milliseconds read_timeout,
                     const std::stop_token& stop);
  // One read from the socket into the parser; false with error_ set when it failed.
  bool ReadOnce(const ResponseParser::BodySink& on_body);

  std::shared_ptr<StreamingHttpClient> client_;  // outlived by none of its responses
  std::unique_ptr<HttpConnection> conn_;
  std::chrono::milliseconds read_timeout_;
  std::stop_token stop_;
  std::unique_ptr<std::stop_callback<std::function<void()>>> on_stop_;
  ResponseParser parser_;
  std::vector<char> buf_;
  std::string early_body_;  // body bytes that came with the head, before the first Read
  std::string error_;
  bool cancelled_ = false;
  bool trailing_bytes_ = false;  // the server sent more than the response: do not reuse
};

// A blocking HTTP/1.1 client for one API server, on plain sockets and OpenSSL, for every
// request capwatch makes: whole lists of hundreds of megabytes, watches that stream for
// minutes, and writes. It builds its TLS context once (so the CA is parsed once, not per
// connection), keeps finished connections for reuse, and reads the response on the calling thread
// in 64 KiB reads whatever the server's chunk sizes.
class StreamingHttpClient : public std::enable_shared_from_this<StreamingHttpClient> {
 public:
  struct Target {
    std::string host;  // as getaddrinfo takes it (an IPv6 address unbracketed)
    std::string port;
    bool tls = true;
    std::string host_header;  // the Host field
    std::string sni;          // empty: none
  };

  static capwatch::Result<std::shared_ptr<StreamingHttpClient>> Make(
      Target target, std::shared_ptr<TlsSettings> tls);
  ~StreamingHttpClient();

  // Sends `request` (the whole request: line, fields and body) and waits for the response's
  // head. A request sent on a kept connection that the server closed without answering is
  // sent once more on a new connection (a server closes idle connections, and every one
  // after it restarts); as in Go's net/http this holds for writes too. The API server's
  // writes are guarded against a repeat anyway: a create meets AlreadyExists, an update
  // carrying resourceVersion meets Conflict. A request on a new connection is never repeated.
  // Errors name what failed: connect, TLS handshake (with the verification error), write, or read.
  capwatch::Result<std::unique_ptr<HttpResponseStream>> Open(std::string_view request,
                                                             std::chrono::milliseconds read_timeout,
                                                             const std::stop_token& stop);

  // Connections made so far (the rest of the requests went over kept ones).
  std::uint64_t connections() const;

 private:
  friend class HttpResponseStream;
  StreamingHttpClient(Target target, std::shared_ptr<TlsSettings> tls);
  capwatch::Result<std::unique_ptr<HttpConnection>> Dial(std::chrono::milliseconds timeout,
                                                         const std::stop_token& stop);
  Status EnsureContext();
  void GiveBack(std::unique_ptr<HttpConnection> conn);
  std::unique_ptr<HttpConnection> TakeIdle();

  Target target_;
  std::shared_ptr<TlsSettings> tls_;
  mutable std::mutex mu_;
  SSL_CTX* ctx_ = nullptr;    // guarded by mu_; rebuilt when the client certificate rotates
  std::string ctx_cert_pem_;  // the client certificate ctx_ presents
  std::vector<std::unique_ptr<HttpConnection>> idle_;
  std::uint64_t connections_ = 0;
};

}  // namespace capwatch::kube

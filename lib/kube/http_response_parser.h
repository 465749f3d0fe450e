#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace capwatch::kube {

// The status line and header fields of an HTTP/1.1 response; names lower-cased.
struct ResponseHead {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  // The first field of that (lower-case) name, if any.
  std::optional<std::string_view> Find(std::string_view name) const;
};

// An HTTP/1.1 response (RFC 9112) read incrementally: the head, then a body framed by
// Content-Length, by the chunked transfer coding, or by the end of the connection. Bytes may
// arrive split anywhere; body bytes are handed out as they are decoded, without buffering
// them. Interim (1xx) responses are skipped. Limits: 64 KiB of head, 1 KiB per chunk-size
// line or trailer line.
class ResponseParser {
 public:
  using BodySink = std::function<void(std::string_view)>;

  // Consumes `bytes` up to the end of the response and returns how many it used; once the
  // response is complete (done()) or broken (failed()), it consumes nothing more.
  std::size_t Feed(std::string_view bytes, const BodySink& on_body);
  // The connection ended. A body read to the end of the connection is then complete;
  // anything else that is not done is a truncated response.
  void FeedEof();

  bool head_done() const { return head_done_; }
  bool done() const { return stage_ == Stage::kDone; }
  bool failed() const { return stage_ == Stage::kFailed; }
  const std::string& error() const { return error_; }
  const ResponseHead& head() const { return head_; }
  // The server's Content-Length, when the body has one.
  std::optional<std::uint64_t> content_length() const { return content_length_; }
  // The connection can carry another request once this response is done.
  bool reusable() const { return done() && keep_alive_; }

 private:
  enum class Stage {
    kHead,
    kLengthBody,
    kChunkSize,
    kChunkData,
    kChunkDataEnd,
    kTrailers,
    kUntilClose,
    kDone,
    kFailed
  };
  std::size_t FeedHead(std::string_view bytes);
  bool ParseHead(std::string_view head);
  void StartBody();
  // Appends to line_ up to a line feed; true with the line (CR stripped) when one is complete.
  bool TakeLine(std::string_view bytes, std::size_t& used, std::size_t limit, std::string& line);
  void Fail(std::string message);

  Stage stage_ = Stage::kHead;
  bool head_done_ = false;
  bool keep_alive_ = true;
  ResponseHead head_;
  std::string buf_;  // a partial head, or a partial chunk-size/trailer line
  std::uint64_t remaining_ = 0;
  std::optional<std::uint64_t> content_length_;
  std::string error_;
};

}  // namespace capwatch::kube

#include "kube/http_response_parser.h"

#include <algorithm>
#include <charconv>

namespace capwatch::kube {

namespace {

constexpr std::size_t kMaxHead = 64 * 1024;
constexpr std::size_t kMaxLine = 1024;

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool ContainsToken(std::string_view list, std::string_view token) {
  const std::string lower = Lower(list);
  std::string_view rest = lower;
  while (!rest.empty()) {
    const std::size_t comma = rest.find(',');
    if (Trim(rest.substr(0, comma)) == token) return true;
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  return false;
}

// The last coding of a Transfer-Encoding list ("gzip, chunked" -> "chunked").
std::string LastCoding(std::string_view list) {
  const std::size_t comma = list.rfind(',');
  return Lower(Trim(comma == std::string_view::npos ? list : list.substr(comma + 1)));
}

}  // namespace

std::optional<std::string_view> ResponseHead::Find(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) return std::string_view(v);
  }
  return std::nullopt;
}

void ResponseParser::Fail(std::string message) {
  stage_ = Stage::kFailed;
  error_ = std::move(message);
  keep_alive_ = false;
}

std::size_t ResponseParser::Feed(std::string_view bytes, const BodySink& on_body) {
  std::size_t used = 0;
  while (used < bytes.size()) {
    std::string_view rest = bytes.substr(used);
    switch (stage_) {
      case Stage::kHead:
        used += FeedHead(rest);
        break;
      case Stage::kLengthBody:
      case Stage::kChunkData: {
        const std::size_t n = static_cast<std::size_t>(
            std::min<std::uint64_t>(remaining_, static_cast<std::uint64_t>(rest.size())));
        if (n > 0) on_body(rest.substr(0, n));
        used += n;
        remaining_ -= n;
        if (remaining_ == 0) {
          stage_ = stage_ == Stage::kLengthBody ? Stage::kDone : Stage::kChunkDataEnd;
        }
        break;
      }
      case Stage::kChunkDataEnd: {
        std::string line;
        if (!TakeLine(rest, used, 2, line)) break;
        if (!line.empty()) {
          Fail("chunk data is not followed by CRLF");
          return used;
        }
        stage_ = Stage::kChunkSize;
        break;
      }
      case Stage::kChunkSize: {
        std::string line;
        if (!TakeLine(rest, used, kMaxLine, line)) break;
        std::string_view size = Trim(std::string_view(line).substr(0, line.find(';')));
        std::uint64_t n = 0;
        const auto [end, ec] = std::from_chars(size.data(), size.data() + size.size(), n, 16);
        if (size.empty() || ec != std::errc() || end != size.data() + size.size()) {
          Fail("bad chunk size line \"" + line.substr(0, 40) + "\"");
          return used;
        }
        remaining_ = n;
        stage_ = n == 0 ? Stage::kTrailers : Stage::kChunkData;
        break;
      }
      case Stage::kTrailers: {
        std::string line;
        if (!TakeLine(rest, used, kMaxLine, line)) break;
        if (line.empty()) stage_ = Stage::kDone;
        break;
      }
      case Stage::kUntilClose:
        on_body(rest);
        used = bytes.size();
        break;
      case Stage::kDone:
      case Stage::kFailed:
        return used;
    }
    if (stage_ == Stage::kFailed || stage_ == Stage::kDone) break;
  }
  return used;
}

void ResponseParser::FeedEof() {
  if (stage_ == Stage::kUntilClose) {
    stage_ = Stage::kDone;
    keep_alive_ = false;
    return;
  }
  keep_alive_ = false;
  if (stage_ == Stage::kDone || stage_ == Stage::kFailed) return;
  if (stage_ == Stage::kHead) {
    Fail(buf_.empty() ? "the connection closed before a response"
                      : "the connection closed in the middle of the response head (" +
                            std::to_string(buf_.size()) + " bytes)");
  } else if (stage_ == Stage::kLengthBody) {
    Fail("the connection closed with " + std::to_string(remaining_) +
         " bytes of the body still to come");
  } else {
    Fail("the connection closed in the middle of a chunked body");
  }
}

bool ResponseParser::TakeLine(std::string_view bytes, std::size_t& used, std::size_t limit,
                              std::string& line) {
  const std::size_t lf = bytes.find('\n');
  const std::size_t take = lf == std::string_view::npos ? bytes.size() : lf + 1;
  if (buf_.size() + take > limit + 2) {
    Fail("a chunk-size or trailer line longer than " + std::to_string(limit) + " bytes");
    used += take;
    return false;
  }
  buf_.append(bytes.substr(0, take));
  used += take;
  if (lf == std::string_view::npos) return false;
  buf_.pop_back();  // '\n'
  if (!buf_.empty() && buf_.back() == '\r') buf_.pop_back();
  line = std::move(buf_);
  buf_.clear();
  return true;
}

std::size_t ResponseParser::FeedHead(std::string_view bytes) {
  // Search for the blank line from a little before the new bytes, in case it is split.
  const std::size_t from = buf_.size() >= 3 ? buf_.size() - 3 : 0;
  const std::size_t keep = std::min(bytes.size(), kMaxHead + 4 - std::min(buf_.size(), kMaxHead));
  buf_.append(bytes.substr(0, keep));
  std::size_t end = buf_.find("\r\n\r\n", from);
  std::size_t sep = 4;
  if (const std::size_t lf = buf_.find("\n\n", from); lf != std::string::npos && lf < end) {
    end = lf;
    sep = 2;
  }
  if (end == std::string::npos) {
    if (buf_.size() > kMaxHead) Fail("response head longer than 64 KiB");
    return keep;
  }
  const std::size_t head_bytes = end + sep;
  const std::size_t used = keep - (buf_.size() - head_bytes);
  std::string head = buf_.substr(0, end);
  buf_.clear();
  if (!ParseHead(head)) return used;
  if (head_.status >= 100 && head_.status < 200) {
    head_ = ResponseHead{};  // an interim response: the real one follows
    return used;
  }
  head_done_ = true;
  StartBody();
  return used;
}

bool ResponseParser::ParseHead(std::string_view head) {
  std::size_t pos = head.find('\n');
  std::string_view status_line = head.substr(0, pos);
  if (!status_line.empty() && status_line.back() == '\r') status_line.remove_suffix(1);
  // "HTTP/1.1 200 OK"
  if (status_line.size() < 12 || status_line.substr(0, 5) != "HTTP/" || status_line[8] != ' ') {
    Fail("not an HTTP response: \"" + std::string(status_line.substr(0, 40)) + "\"");
    return false;
  }
  keep_alive_ = status_line.substr(5, 3) == "1.1";
  int code = 0;
  const auto [end, ec] = std::from_chars(status_line.data() + 9, status_line.data() + 12, code);
  if (ec != std::errc() || end != status_line.data() + 12 || code < 100 || code > 999) {
    Fail("bad status line \"" + std::string(status_line.substr(0, 40)) + "\"");
    return false;
  }
  head_.status = code;
  while (pos != std::string_view::npos) {
    const std::size_t next = head.find('\n', pos + 1);
    std::string_view line = head.substr(
        pos + 1, next == std::string_view::npos ? std::string_view::npos : next - pos - 1);
    pos = next;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      Fail("bad header line \"" + std::string(line.substr(0, 40)) + "\"");
      return false;
    }
    head_.headers.emplace_back(Lower(Trim(line.substr(0, colon))),
                               std::string(Trim(line.substr(colon + 1))));
  }
  return true;
}

void ResponseParser::StartBody() {
  if (auto connection = head_.Find("connection")) {
    if (ContainsToken(*connection, "close")) keep_alive_ = false;
    if (ContainsToken(*connection, "keep-alive")) keep_alive_ = true;
  }
  const int code = head_.status;
  if (code == 204 || code == 304) {
    stage_ = Stage::kDone;
    return;
  }
  if (auto te = head_.Find("transfer-encoding")) {
    // RFC 9112 6.3: Transfer-Encoding overrides Content-Length.
    if (LastCoding(*te) == "chunked") {
      stage_ = Stage::kChunkSize;
    } else {
      stage_ = Stage::kUntilClose;
      keep_alive_ = false;
    }
    return;
  }
  if (auto cl = head_.Find("content-length")) {
    std::uint64_t n = 0;
    const auto [end, ec] = std::from_chars(cl->data(), cl->data() + cl->size(), n);
    if (cl->empty() || ec != std::errc() || end != cl->data() + cl->size()) {
      Fail("bad Content-Length \"" + std::string(cl->substr(0, 40)) + "\"");
      return;
    }
    content_length_ = n;
    remaining_ = n;
    stage_ = n == 0 ? Stage::kDone : Stage::kLengthBody;
    return;
  }
  stage_ = Stage::kUntilClose;
  keep_alive_ = false;
}

}  // namespace capwatch::kube

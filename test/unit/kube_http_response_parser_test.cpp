#include <gtest/gtest.h>

#include <string>

#include "kube/http_response_parser.h"

namespace capwatch::kube {
namespace {

struct Parsed {
  std::string body;
  bool done = false, failed = false, reusable = false;
  int status = 0;
  std::string error;
};

// Feeds `wire` in pieces of at most `step` bytes, then the end of the connection if `eof`.
Parsed Parse(std::string_view wire, std::size_t step, bool eof = false) {
  ResponseParser p;
  Parsed out;
  auto sink = [&out](std::string_view b) { out.body.append(b); };
  for (std::size_t at = 0; at < wire.size() && !p.done() && !p.failed(); at += step) {
    std::string_view piece = wire.substr(at, step);
    const std::size_t used = p.Feed(piece, sink);
    if (used < piece.size() && !p.done() && !p.failed()) {
      ADD_FAILURE() << "the parser left bytes of an unfinished response";
    }
  }
  if (eof) p.FeedEof();
  out.done = p.done();
  out.failed = p.failed();
  out.reusable = p.reusable();
  out.status = p.head().status;
  out.error = p.error();
  return out;
}

const std::string kChunked =
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    "5\r\n{\"a\":\r\n"
    "C;ext=1\r\n[1,2,3,4]}\r\n\r\n"
    "0\r\nX-Trailer: yes\r\n\r\n";
const std::string kChunkedBody = "{\"a\":[1,2,3,4]}\r\n";

TEST(ResponseParser, ChunkedBodyInAnySplit) {
  for (std::size_t step = 1; step <= kChunked.size(); ++step) {
    Parsed p = Parse(kChunked, step);
    ASSERT_TRUE(p.done) << "step " << step << ": " << p.error;
    EXPECT_EQ(p.status, 200);
    EXPECT_EQ(p.body, kChunkedBody) << "step " << step;
    EXPECT_TRUE(p.reusable);
  }
}

TEST(ResponseParser, ContentLengthBodyInAnySplit) {
  const std::string wire = "HTTP/1.1 404 Not Found\r\ncontent-length: 11\r\n\r\nhello world";
  for (std::size_t step = 1; step <= wire.size(); ++step) {
    Parsed p = Parse(wire, step);
    ASSERT_TRUE(p.done) << p.error;
    EXPECT_EQ(p.status, 404);
    EXPECT_EQ(p.body, "hello world");
    EXPECT_TRUE(p.reusable);
  }
}

// A stream cut at every byte is an error naming the cut, never a shorter body taken as whole.
TEST(ResponseParser, AResponseCutAtEveryByteIsAnError) {
  const std::string length =
      "HTTP/1.1 200 OK\r\nContent-Length: 15\r\n\r\n" + kChunkedBody.substr(0, 15);
  for (const std::string& wire : {kChunked, length}) {
    for (std::size_t cut = 0; cut < wire.size(); ++cut) {
      Parsed p = Parse(wire.substr(0, cut), 7, /*eof=*/true);
      EXPECT_TRUE(p.failed) << "cut at " << cut << " of " << wire.size();
      EXPECT_FALSE(p.done);
      EXPECT_FALSE(p.error.empty());
    }
  }
  EXPECT_EQ(Parse("", 1, true).error, "the connection closed before a response");
  EXPECT_NE(Parse(length.substr(0, length.size() - 4), 3, true).error.find("4 bytes"),
            std::string::npos);
}

TEST(ResponseParser, ABodyToTheEndOfTheConnection) {
  const std::string wire = "HTTP/1.1 200 OK\r\n\r\nall of it";
  Parsed open = Parse(wire, 4);
  EXPECT_FALSE(open.done);
  EXPECT_FALSE(open.failed);
  Parsed closed = Parse(wire, 4, /*eof=*/true);
  EXPECT_TRUE(closed.done);
  EXPECT_EQ(closed.body, "all of it");
  EXPECT_FALSE(closed.reusable);
}

TEST(ResponseParser, WhatEndsAConnection) {
  EXPECT_FALSE(
      Parse("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", 5).reusable);
  EXPECT_FALSE(Parse("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", 5).reusable);
  EXPECT_TRUE(
      Parse("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n", 5).reusable);
  Parsed no_content = Parse("HTTP/1.1 204 No Content\r\n\r\n", 100);
  EXPECT_TRUE(no_content.done);
  EXPECT_TRUE(no_content.reusable);
}

TEST(ResponseParser, InterimResponsesAreSkipped) {
  Parsed p =
      Parse("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}", 3);
  EXPECT_TRUE(p.done);
  EXPECT_EQ(p.status, 201);
  EXPECT_EQ(p.body, "{}");
}

TEST(ResponseParser, HeadersAreLowerCasedAndTrimmed) {
  ResponseParser p;
  (void)p.Feed("HTTP/1.1 429 Too Many Requests\r\nRetry-After:  7 \r\nContent-Length: 0\r\n\r\n",
               [](std::string_view) {});
  ASSERT_TRUE(p.done());
  EXPECT_EQ(p.head().Find("retry-after").value_or(""), "7");
  EXPECT_FALSE(p.head().Find("Retry-After").has_value());
}

TEST(ResponseParser, MalformedResponsesNameWhatIsWrong) {
  struct Case {
    std::string wire, error;
  };
  const Case cases[] = {
      {"SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP response"},
      {"HTTP/1.1 2x0 OK\r\n\r\n", "bad status line"},
      {"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "bad header line"},
      {"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "bad Content-Length"},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunk size line"},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcd\r\n",
       "not followed by CRLF"},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + std::string(2000, '1'),
       "longer than 1024 bytes"},
      {"HTTP/1.1 200 OK\r\nX: " + std::string(70'000, 'x'), "longer than 64 KiB"},
  };
  for (const Case& c : cases) {
    Parsed p = Parse(c.wire, 4096);
    EXPECT_TRUE(p.failed) << c.error;
    EXPECT_NE(p.error.find(c.error), std::string::npos) << p.error;
    EXPECT_FALSE(p.reusable);
  }
}

}  // namespace
}  // namespace capwatch::kube

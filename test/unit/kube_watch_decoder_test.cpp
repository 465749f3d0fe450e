#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "kube/api_status.h"
#include "kube/watch_decoder.h"
#include "kube_fakes.h"

namespace capwatch::kube {
namespace {

std::string Stream() {
  std::string s;
  s += R"({"type":"ADDED","object":)" + testing::MakePodJson("prod", "web-1", 11, "v1") + "}\n";
  s +=
      R"({"type":"MODIFIED","object":)" + testing::MakePodJson("prod", "web-1", 12, "v2") + "}\r\n";
  s += R"({"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"13"}}})"
       "\n";
  s += R"({"type":"DELETED","object":)" + testing::MakePodJson("prod", "web-1", 14, "v2") + "}\n";
  return s;
}

std::vector<std::string> SplitAt(const std::string& stream, std::vector<std::size_t> cuts) {
  LineSplitter splitter;
  std::vector<std::string> lines;
  std::size_t prev = 0;
  cuts.push_back(stream.size());
  for (std::size_t cut : cuts) {
    splitter.Feed(std::string_view(stream).substr(prev, cut - prev),
                  [&](std::string_view l) { lines.emplace_back(l); });
    prev = cut;
  }
  EXPECT_EQ(splitter.pending_bytes(), 0u);
  return lines;
}

TEST(LineSplitter, SameLinesWhereverTheStreamIsCut) {
  const std::string stream = Stream();
  const auto whole = SplitAt(stream, {});
  ASSERT_EQ(whole.size(), 4u);
  EXPECT_EQ(whole[1].back(), '}') << "the \\r of \\r\\n is dropped";
  for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
    ASSERT_EQ(SplitAt(stream, {cut}), whole) << "cut at byte " << cut;
  }
  // And fed one byte at a time.
  std::vector<std::size_t> every;
  for (std::size_t i = 1; i < stream.size(); ++i) every.push_back(i);
  EXPECT_EQ(SplitAt(stream, every), whole);
}

TEST(LineSplitter, KeepsAnUnfinishedLineUntilItsNewline) {
  LineSplitter splitter;
  int lines = 0;
  splitter.Feed(R"({"type":"ADDED")", [&](std::string_view) { ++lines; });
  EXPECT_EQ(lines, 0);
  EXPECT_EQ(splitter.pending_bytes(), 15u);
  splitter.Feed("\n\n", [&](std::string_view l) {
    ++lines;
    EXPECT_EQ(l, R"({"type":"ADDED")");
  });
  EXPECT_EQ(lines, 1) << "empty lines are skipped";
}

TEST(WatchEventDecoder, SplitsTypeAndObjectWithoutParsingTheObject) {
  WatchEventDecoder decoder;
  const std::string pod = testing::MakePodJson("prod", "web-1", 11, "v1");
  const std::string line = R"({"type":"MODIFIED","object":)" + pod + "}";
  auto event = decoder.Decode(line);
  ASSERT_TRUE(event.ok());
  EXPECT_EQ(event->type, WatchEventType::kModified);
  EXPECT_EQ(event->object, pod);
  EXPECT_EQ(decoder.slow_path_count(), 0u);
}

TEST(WatchEventDecoder, AcceptsOtherKeyOrdersThroughTheFullParse) {
  WatchEventDecoder decoder;
  auto event =
      decoder.Decode(R"( {"object": {"metadata":{"resourceVersion":"9"}}, "type": "BOOKMARK"})");
  ASSERT_TRUE(event.ok()) << event.error().ToString();
  EXPECT_EQ(event->type, WatchEventType::kBookmark);
  EXPECT_EQ(ResourceVersionOf(event->object), "9");
  EXPECT_EQ(decoder.slow_path_count(), 1u);
}

TEST(WatchEventDecoder, RejectsWhatIsNoEvent) {
  WatchEventDecoder decoder;
  EXPECT_FALSE(decoder.Decode(R"({"type":"ADDED","object":{"a":1})").ok());
  auto exploded = decoder.Decode(R"({"type":"EXPLODED","object":{}})");
  EXPECT_FALSE(exploded.ok());
  const std::string error = exploded.error().ToString();
  EXPECT_NE(error.find("type"), std::string::npos) << error;
  EXPECT_FALSE(decoder.Decode(R"({"type":"ADDED"})").ok());
  EXPECT_FALSE(decoder.Decode("not json").ok());
}

TEST(WatchEventDecoder, ErrorEventCarriesAStatus) {
  WatchEventDecoder decoder;
  const std::string line =
      R"({"type":"ERROR","object":)" + testing::StatusJson(410, "Expired", "too old") + "}";
  auto event = decoder.Decode(line);
  ASSERT_TRUE(event.ok());
  EXPECT_EQ(event->type, WatchEventType::kError);
  const ApiStatus status = ApiStatus::FromResponse(0, event->object);
  EXPECT_TRUE(status.IsGone());
  EXPECT_EQ(status.message(), "too old");
}

TEST(ApiStatus, KeepsReasonMessageAndCauses) {
  const ApiStatus invalid = ApiStatus::FromResponse(422, R"({"kind":"Status","status":"Failure",
    "message":"CapabilityReport.capwatch.io \"x\" is invalid","reason":"Invalid",
    "details":{"causes":[{"reason":"FieldValueRequired","message":"Required value",
    "field":"workload.kind"}]},"code":422})");
  EXPECT_EQ(invalid.reason(), StatusReason::kInvalid);
  EXPECT_EQ(invalid.http_status(), 422);
  ASSERT_EQ(invalid.causes().size(), 1u);
  EXPECT_EQ(invalid.causes()[0].field, "workload.kind");
  EXPECT_NE(invalid.ToString().find("workload.kind: Required value"), std::string::npos)
      << invalid.ToString();

  const ApiStatus throttled = ApiStatus::FromResponse(429, R"({"kind":"Status",
    "reason":"TooManyRequests","message":"slow down","details":{"retryAfterSeconds":3},"code":429})");
  EXPECT_TRUE(throttled.IsTooManyRequests());
  EXPECT_EQ(throttled.retry_after(), std::chrono::seconds(3));

  EXPECT_TRUE(ApiStatus::FromResponse(404, testing::StatusJson(404, "NotFound", "x")).IsNotFound());
  EXPECT_TRUE(ApiStatus::FromResponse(409, testing::StatusJson(409, "AlreadyExists", "x"))
                  .IsAlreadyExists());
  EXPECT_TRUE(ApiStatus::FromResponse(409, testing::StatusJson(409, "Conflict", "x")).IsConflict());
  EXPECT_EQ(ApiStatus::FromResponse(403, testing::StatusJson(403, "Forbidden", "x")).reason(),
            StatusReason::kForbidden);
  EXPECT_EQ(ApiStatus::FromResponse(401, "Unauthorized").reason(), StatusReason::kUnauthorized);
  // A proxy's HTML page: the code decides, the body is kept for the message.
  const ApiStatus proxy = ApiStatus::FromResponse(502, "<html>bad gateway</html>");
  EXPECT_EQ(proxy.reason(), StatusReason::kUnknown);
  EXPECT_TRUE(proxy.IsServerError());
  EXPECT_NE(proxy.message().find("bad gateway"), std::string::npos);
}

}  // namespace
}  // namespace capwatch::kube

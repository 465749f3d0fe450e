// lib/base: UTF-8-safe truncation and the JSON log line, which must take any bytes.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "base/json_log_line.h"
#include "base/utf8.h"

namespace capwatch {
namespace {

TEST(Utf8, SequenceLengthFollowsRfc3629) {
  EXPECT_EQ(Utf8SequenceLength("a"), 1u);
  EXPECT_EQ(Utf8SequenceLength("\xC3\xA9"), 2u);          // é
  EXPECT_EQ(Utf8SequenceLength("\xE2\x82\xAC"), 3u);      // €
  EXPECT_EQ(Utf8SequenceLength("\xF0\x9F\x94\x92"), 4u);  // 🔒
  EXPECT_EQ(Utf8SequenceLength("\x80"), 0u);              // stray continuation byte
  EXPECT_EQ(Utf8SequenceLength("\xC0\xAF"), 0u);          // overlong '/'
  EXPECT_EQ(Utf8SequenceLength("\xE0\x80\xAF"), 0u);      // overlong
  EXPECT_EQ(Utf8SequenceLength("\xED\xA0\x80"), 0u);      // surrogate U+D800
  EXPECT_EQ(Utf8SequenceLength("\xF4\x90\x80\x80"), 0u);  // past U+10FFFF
  EXPECT_EQ(Utf8SequenceLength("\xE2\x82"), 0u);          // cut
  EXPECT_EQ(Utf8SequenceLength("\xFF"), 0u);
}

TEST(Utf8, TruncateNeverSplitsASequence) {
  const std::string text = "ab\xE2\x82\xAC" "cd";  // "ab€cd": € is bytes 2..4
  EXPECT_EQ(TruncateUtf8(text, 2), "ab");
  EXPECT_EQ(TruncateUtf8(text, 3), "ab");
  EXPECT_EQ(TruncateUtf8(text, 4), "ab");
  EXPECT_EQ(TruncateUtf8(text, 5), "ab\xE2\x82\xAC");
  EXPECT_EQ(TruncateUtf8(text, 100), text);
  EXPECT_EQ(TruncateUtf8(text, 0), "");
}

TEST(Utf8, TruncateCountsBytesThatAreNotUtf8AsOneEach) {
  EXPECT_EQ(TruncateUtf8("\xFF\xFE\xFD", 2), "\xFF\xFE");
  // A lead byte whose sequence is cut by the input's end is one stray byte, not a sequence.
  EXPECT_EQ(TruncateUtf8("a\xE2\x82", 2), "a\xE2");
}

TEST(Utf8, EveryPrefixOfEveryCutIsWhole) {
  // Every cut of a mixed string is a prefix that a strict UTF-8 decoder accepts.
  const std::string text = "x\xC3\xA9\xE2\x82\xAC\xF0\x9F\x94\x92y";
  for (std::size_t max = 0; max <= text.size(); ++max) {
    SCOPED_TRACE(max);
    const auto cut = TruncateUtf8(text, max);
    EXPECT_LE(cut.size(), max);
    EXPECT_NO_THROW((void)nlohmann::json(std::string(cut)).dump());
    EXPECT_GE(cut.size() + 3, max) << "gave up more than one sequence";
  }
}

TEST(Utf8, ExcerptMarksWhatWasCut) {
  EXPECT_EQ(Excerpt("short", 10), "short");
  EXPECT_EQ(Excerpt("ab\xE2\x82\xAC" "cd", 4), "ab…");
}

nlohmann::json ParseLine(const std::string& line) {
  EXPECT_FALSE(line.empty());
  EXPECT_EQ(line.back(), '\n');
  return nlohmann::json::parse(line);  // strict: throws on anything that is not JSON + UTF-8
}

TEST(JsonLogLine, WritesTimeLevelAndMessage) {
  const auto when = std::chrono::system_clock::time_point(std::chrono::milliseconds(1'800'000'000'123));
  const auto doc = ParseLine(FormatJsonLogLine(when, "info", "caches synced"));
  EXPECT_EQ(doc["time"], "2027-01-15T08:00:00.123Z");
  EXPECT_EQ(doc["level"], "info");
  EXPECT_EQ(doc["msg"], "caches synced");
}

TEST(JsonLogLine, KeepsEveryRecordWhateverItsBytes) {
  // A Pod name, a response body or a watch line quoted in a message can hold anything.
  const std::string hostile[] = {
      std::string("quote \" backslash \\ newline \n tab \t nul ") + '\0' + " end",
      "invalid \xFF\xFE utf-8 \xC0\xAF overlong \xED\xA0\x80 surrogate",
      "cut sequence at the end \xE2\x82",
      "\x1b[31mterminal escape\x1b[0m and DEL \x7F",
      "valid é € 🔒",
      "",
  };
  for (std::size_t i = 0; i < std::size(hostile); ++i) {
    const std::string& message = hostile[i];
    SCOPED_TRACE(message);
    const std::string line = FormatJsonLogLine({}, "warning", message);
    EXPECT_EQ(line.find('\n'), line.size() - 1) << "one record, one line";
    nlohmann::json doc;
    ASSERT_NO_THROW(doc = ParseLine(line));
    const bool valid_utf8 = i != 1 && i != 2;
    if (valid_utf8) {
      EXPECT_EQ(doc["msg"], message) << "valid UTF-8 comes back byte for byte";
    }
  }
  const auto doc = ParseLine(FormatJsonLogLine({}, "error", "a\xFF" "b"));
  EXPECT_EQ(doc["msg"], "a\xEF\xBF\xBD" "b");  // the bad byte becomes U+FFFD, the rest stays
}

TEST(JsonLogLine, EscapesControlCharactersSoOneRecordIsOneLine) {
  const std::string line = FormatJsonLogLine({}, "info", "one\ntwo\rthree\x01");
  EXPECT_EQ(line.find('\n'), line.size() - 1);
  EXPECT_NE(line.find("one\\ntwo\\rthree\\u0001"), std::string::npos);
}

}  // namespace
}  // namespace capwatch

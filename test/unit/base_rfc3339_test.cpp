#include <gtest/gtest.h>

#include <gmock/gmock.h>

#include "base/rfc3339.h"

namespace capwatch {
namespace {

using namespace std::chrono;
using ::testing::HasSubstr;

struct Rfc3339Case {
  const char* text;
  // Seconds and nanoseconds since 1970 when it parses; `why` holds a piece of the reason when
  // it does not.
  std::int64_t unix_seconds = 0;
  std::int64_t nanos = 0;
  const char* why = nullptr;
};

void PrintTo(const Rfc3339Case& c, std::ostream* os) { *os << '"' << c.text << '"'; }

class Rfc3339 : public ::testing::TestWithParam<Rfc3339Case> {};

TEST_P(Rfc3339, Parses) {
  const Rfc3339Case& c = GetParam();
  std::string why;
  const auto t = ParseRfc3339(c.text, &why);
  if (c.why != nullptr) {
    EXPECT_FALSE(t.has_value());
    EXPECT_THAT(why, HasSubstr(c.why));
    EXPECT_FALSE(ParseRfc3339(c.text).has_value()) << "the same without asking why";
    return;
  }
  ASSERT_TRUE(t.has_value()) << why;
  const auto since = t->time_since_epoch();
  EXPECT_EQ(floor<seconds>(since).count(), c.unix_seconds);
  EXPECT_EQ((since - floor<seconds>(since)).count(), c.nanos);
}

// 2026-11-29T13:51:30Z is 1795960290; 2028 is a leap year, 2027, 2100 and 1900 are not, 2000 is.
INSTANTIATE_TEST_SUITE_P(
    Valid, Rfc3339,
    ::testing::Values(Rfc3339Case{"1970-01-01T00:00:00Z", 0},
                      Rfc3339Case{"2026-11-29T13:51:30Z", 1795960290},
                      Rfc3339Case{"2026-11-29t13:51:30z", 1795960290},
                      Rfc3339Case{"2026-11-29T13:51:30.123456Z", 1795960290, 123456000},
                      Rfc3339Case{"2026-11-29T13:51:30.1Z", 1795960290, 100000000},
                      Rfc3339Case{"2026-11-29T13:51:30.123456789Z", 1795960290, 123456789},
                      // Past nanoseconds: truncated, not rounded.
                      Rfc3339Case{"2026-11-29T13:51:30.1234567899Z", 1795960290, 123456789},
                      Rfc3339Case{"2026-11-29T14:51:30+01:00", 1795960290},
                      Rfc3339Case{"2026-11-29T08:21:30-05:30", 1795960290},
                      Rfc3339Case{"2026-11-29T13:51:30-00:00", 1795960290},
                      Rfc3339Case{"2026-11-30T13:50:30+23:59", 1795960290},
                      Rfc3339Case{"2026-11-29T14:51:30.5+01:00", 1795960290, 500000000},
                      Rfc3339Case{"2028-02-29T00:00:00Z", 1835395200},
                      Rfc3339Case{"2000-02-29T00:00:00Z", 951782400},
                      Rfc3339Case{"2026-12-31T23:59:59Z", 1798761599},
                      Rfc3339Case{"1969-12-31T23:59:59Z", -1}),
    [](const auto& p) { return "v" + std::to_string(p.index); });

INSTANTIATE_TEST_SUITE_P(
    Invalid, Rfc3339,
    ::testing::Values(Rfc3339Case{"2027-02-29T00:00:00Z", 0, 0, "February 2027 has 28 days"},
                      Rfc3339Case{"2100-02-29T00:00:00Z", 0, 0, "February 2100 has 28 days"},
                      Rfc3339Case{"1900-02-29T00:00:00Z", 0, 0, "February 1900 has 28 days"},
                      Rfc3339Case{"2028-02-30T00:00:00Z", 0, 0, "February 2028 has 29 days"},
                      Rfc3339Case{"2026-04-31T00:00:00Z", 0, 0, "April 2026 has 30 days"},
                      Rfc3339Case{"2026-01-00T00:00:00Z", 0, 0, "January 2026 has 31 days"},
                      Rfc3339Case{"2026-13-01T00:00:00Z", 0, 0, "month 13"},
                      Rfc3339Case{"2026-00-01T00:00:00Z", 0, 0, "month 00"},
                      Rfc3339Case{"2026-01-31T24:00:00Z", 0, 0, "hour 24"},
                      Rfc3339Case{"2026-01-31T25:00:00Z", 0, 0, "hour 25"},
                      Rfc3339Case{"2026-01-31T23:60:00Z", 0, 0, "minute 60"},
                      // A leap second: RFC 3339 allows it, the API server (Go) does not.
                      Rfc3339Case{"2016-12-31T23:59:60Z", 0, 0, "leap second"},
                      Rfc3339Case{"2026-01-31T23:59:61Z", 0, 0, "second 61"},
                      Rfc3339Case{"2026-01-31T00:00:00+24:00", 0, 0, "offset +24:00"},
                      Rfc3339Case{"2026-01-31T00:00:00+01:60", 0, 0, "offset +01:60"},
                      Rfc3339Case{"2026-01-31T00:00:00+0100", 0, 0, "offset such as +01:00"},
                      Rfc3339Case{"2026-01-31T00:00:00+01", 0, 0, "offset such as +01:00"},
                      Rfc3339Case{"2026-01-31T00:00:00", 0, 0, "Z or an offset"},
                      Rfc3339Case{"2026-01-31T00:00:00.Z", 0, 0, "followed by digits"},
                      Rfc3339Case{"2026-01-31T00:00:00ZZ", 0, 0, "unexpected \"Z\""},
                      Rfc3339Case{"2026-01-31T00:00:00Z ", 0, 0, "unexpected \" \""},
                      Rfc3339Case{"2026-01-31T00:00:00+01:00junk", 0, 0, "unexpected \"junk\""},
                      Rfc3339Case{"2026-01-31 00:00:00Z", 0, 0, "YYYY-MM-DDThh:mm:ss"},
                      Rfc3339Case{" 2026-01-31T00:00:00Z", 0, 0, "YYYY-MM-DDThh:mm:ss"},
                      Rfc3339Case{"2026-1-31T00:00:00Z", 0, 0, "YYYY-MM-DDThh:mm:ss"},
                      Rfc3339Case{"2026-01-31T0:00:00Z", 0, 0, "YYYY-MM-DDThh:mm:ss"},
                      Rfc3339Case{"+2026-01-31T00:00:00Z", 0, 0, "YYYY-MM-DDThh:mm:ss"},
                      Rfc3339Case{"2026-01-31", 0, 0, "YYYY-MM-DDThh:mm:ss"},
                      Rfc3339Case{"tomorrow", 0, 0, "YYYY-MM-DDThh:mm:ss"},
                      Rfc3339Case{"", 0, 0, "YYYY-MM-DDThh:mm:ss"}),
    [](const auto& p) { return "i" + std::to_string(p.index); });

// Far years do not overflow the nanosecond clock: they saturate.
TEST(Rfc3339Range, YearsTheClockCannotHoldSaturate) {
  EXPECT_EQ(ParseRfc3339("9999-12-31T23:59:59Z"), system_clock::time_point::max());
  EXPECT_EQ(ParseRfc3339("0001-01-01T00:00:00Z"), system_clock::time_point::min());
  EXPECT_GT(ParseRfc3339("2262-01-01T00:00:00Z"), ParseRfc3339("2261-12-31T23:59:59Z"));
}

}  // namespace
}  // namespace capwatch

namespace capwatch {
namespace {

TEST(FormatRfc3339, WritesTheCanonicalFormThatReadsBack) {
  for (const char* text :
       {"2026-11-29T13:51:30Z", "2024-02-29T00:00:00.5Z", "1999-12-31T23:59:59.123456789Z"}) {
    const auto t = ParseRfc3339(text);
    ASSERT_TRUE(t) << text;
    EXPECT_EQ(FormatRfc3339(*t), text);
  }
  EXPECT_EQ(FormatRfc3339(*ParseRfc3339("2026-11-29t15:51:30.250+02:00")),
            "2026-11-29T13:51:30.25Z");
}

}  // namespace
}  // namespace capwatch

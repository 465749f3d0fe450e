#include "base/rfc3339.h"

#include <cstdint>
#include <cstdio>
#include <limits>

namespace capwatch {
namespace {

using namespace std::chrono;

constexpr const char* kMonthNames[] = {"January",   "February", "March",    "April",
                                       "May",       "June",     "July",     "August",
                                       "September", "October",  "November", "December"};

// `n` decimal digits at `pos`, or -1 when they are not all there.
int Digits(std::string_view s, std::size_t pos, std::size_t n) {
  if (pos + n > s.size()) return -1;
  int value = 0;
  for (std::size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return -1;
    value = value * 10 + (s[i] - '0');
  }
  return value;
}

std::string TwoDigits(int v) {
  return std::string{static_cast<char>('0' + v / 10 % 10), static_cast<char>('0' + v % 10)};
}

std::optional<system_clock::time_point> Fail(std::string* why, std::string reason) {
  if (why != nullptr) *why = std::move(reason);
  return std::nullopt;
}

}  // namespace

std::optional<system_clock::time_point> ParseRfc3339(std::string_view s, std::string* why) {
  // 0123456789012345678
  // YYYY-MM-DDThh:mm:ss
  const int y = Digits(s, 0, 4), mo = Digits(s, 5, 2), d = Digits(s, 8, 2), h = Digits(s, 11, 2),
            mi = Digits(s, 14, 2), sec = Digits(s, 17, 2);
  if (y < 0 || mo < 0 || d < 0 || h < 0 || mi < 0 || sec < 0 || s[4] != '-' || s[7] != '-' ||
      (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':') {
    return Fail(why, "expected YYYY-MM-DDThh:mm:ss followed by Z or an offset such as +01:00");
  }
  if (mo < 1 || mo > 12) return Fail(why, "month " + TwoDigits(mo) + " does not exist");
  const year_month_day_last last{year(y), month_day_last{month(static_cast<unsigned>(mo))}};
  const int days_in_month = static_cast<int>(static_cast<unsigned>(last.day()));
  if (d < 1 || d > days_in_month) {
    return Fail(why, std::string(kMonthNames[mo - 1]) + " " + std::to_string(y) + " has " +
                         std::to_string(days_in_month) + " days");
  }
  if (h > 23) return Fail(why, "hour " + TwoDigits(h) + " is out of range (00-23)");
  if (mi > 59) return Fail(why, "minute " + TwoDigits(mi) + " is out of range (00-59)");
  if (sec == 60) return Fail(why, "second 60 (a leap second) is not accepted");
  if (sec > 59) return Fail(why, "second " + TwoDigits(sec) + " is out of range (00-59)");

  std::size_t pos = 19;
  std::int64_t nanos = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    int digits = 0;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      if (digits < 9) nanos = nanos * 10 + (s[pos] - '0');
      ++digits;
      ++pos;
    }
    if (digits == 0) return Fail(why, "a '.' after the seconds must be followed by digits");
    for (int i = digits; i < 9; ++i) nanos *= 10;
  }

  int offset_minutes = 0;
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    ++pos;
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    const int oh = Digits(s, pos + 1, 2), om = Digits(s, pos + 4, 2);
    if (oh < 0 || om < 0 || s[pos + 3] != ':') {
      return Fail(why, "expected an offset such as +01:00 after the seconds");
    }
    if (oh > 23 || om > 59) {
      return Fail(why, "offset " + std::string(s.substr(pos, 6)) + " is out of range (±23:59)");
    }
    offset_minutes = (s[pos] == '-' ? -1 : 1) * (oh * 60 + om);
    pos += 6;
  } else {
    return Fail(why, "expected Z or an offset such as +01:00 after the seconds");
  }
  if (pos != s.size()) {
    return Fail(why, "unexpected \"" + std::string(s.substr(pos)) + "\" after the time");
  }

  // Seconds since 1970 fit 64 bits for every 4-digit year; nanoseconds do not.
  const std::int64_t day_number = sys_days(year_month_day{year(y), month(static_cast<unsigned>(mo)),
                                                          day(static_cast<unsigned>(d))})
                                      .time_since_epoch()
                                      .count();
  const std::int64_t unix_seconds =
      day_number * 86400 + h * 3600 + mi * 60 + sec - std::int64_t{offset_minutes} * 60;
  using Duration = system_clock::duration;
  constexpr std::int64_t kMaxSeconds =
      duration_cast<seconds>(Duration::max()).count() - 1;  // room for the fraction
  constexpr std::int64_t kMinSeconds = duration_cast<seconds>(Duration::min()).count() + 1;
  if (unix_seconds > kMaxSeconds) return system_clock::time_point::max();
  if (unix_seconds < kMinSeconds) return system_clock::time_point::min();
  return system_clock::time_point(duration_cast<Duration>(seconds(unix_seconds)) +
                                  duration_cast<Duration>(nanoseconds(nanos)));
}

std::string FormatRfc3339(system_clock::time_point t) {
  const auto day = floor<days>(t);
  const year_month_day ymd{day};
  const hh_mm_ss hms{floor<nanoseconds>(t - day)};
  char buf[48];
  int n = std::snprintf(
      buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d", int(ymd.year()), unsigned(ymd.month()),
      unsigned(ymd.day()), static_cast<int>(hms.hours().count()),
      static_cast<int>(hms.minutes().count()), static_cast<int>(hms.seconds().count()));
  std::string out(buf, static_cast<std::size_t>(n));
  if (auto nanos = hms.subseconds().count(); nanos != 0) {
    char frac[16];
    std::snprintf(frac, sizeof frac, ".%09lld", static_cast<long long>(nanos));
    std::string f = frac;
    while (f.back() == '0') f.pop_back();
    out += f;
  }
  return out + "Z";
}

}  // namespace capwatch

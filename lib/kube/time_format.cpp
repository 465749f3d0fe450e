#include "kube/time_format.h"

#include <cstdio>

namespace capwatch::kube {
using namespace std::chrono;

namespace {

std::string Format(system_clock::time_point t, bool micro) {
  const auto day = floor<days>(t);
  const year_month_day ymd{day};
  const hh_mm_ss hms{floor<microseconds>(t - day)};
  char buf[40];
  int n = std::snprintf(
      buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d", int(ymd.year()), unsigned(ymd.month()),
      unsigned(ymd.day()), static_cast<int>(hms.hours().count()),
      static_cast<int>(hms.minutes().count()), static_cast<int>(hms.seconds().count()));
  if (micro) {
    n += std::snprintf(buf + n, sizeof buf - static_cast<std::size_t>(n), ".%06lld",
                       static_cast<long long>(hms.subseconds().count()));
  }
  std::snprintf(buf + n, sizeof buf - static_cast<std::size_t>(n), "Z");
  return buf;
}

}  // namespace

std::string FormatMicroTime(system_clock::time_point t) { return Format(t, true); }

std::string FormatTime(system_clock::time_point t) { return Format(t, false); }

}  // namespace capwatch::kube

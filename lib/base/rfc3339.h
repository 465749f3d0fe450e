#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace capwatch {

// RFC 3339 section 5.6 date-time, the form Kubernetes writes (metav1.Time and MicroTime) and
// CapabilityPolicy `expires` takes: YYYY-MM-DD "T" hh:mm:ss [.fraction] ("Z" | ±hh:mm), with
// `t` and `z` accepted in lower case. Strict, like Go's time.Parse that the API server uses:
//  - the day must exist in that month (leap years by the Gregorian rule), hours run 00-23,
//    minutes and seconds 00-59, offsets up to ±23:59;
//  - second 60 (a leap second) is refused: RFC 3339 allows it, but Go and so the API server
//    refuse it, and a time the API server cannot hold is no time a cluster ever shows;
//  - a fraction has at least one digit; digits past nanoseconds are dropped (truncated);
//  - nothing may precede or follow it (no spaces, no "T" replaced by a space).
// Years the clock cannot hold (system_clock counts nanoseconds in 64 bits: about 1678 to 2262)
// saturate to time_point::min()/max(), so "9999-12-31T23:59:59Z" reads as "never".
// On failure returns nullopt and, when `why` is given, says what is wrong in a few words.
std::optional<std::chrono::system_clock::time_point> ParseRfc3339(std::string_view text,
                                                                  std::string* why = nullptr);

// The canonical form in UTC: 2026-11-29T13:51:30Z, with the fraction (up to nanoseconds, no
// trailing zeros) when there is one. ParseRfc3339 reads it back to the same time.
std::string FormatRfc3339(std::chrono::system_clock::time_point t);

}  // namespace capwatch

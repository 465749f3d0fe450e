#pragma once

#include <optional>
#include <string_view>

namespace capwatch {

// Ordered so that a larger value is worse; kNone means "no finding".
enum class Severity { kNone = 0, kLow = 1, kMedium = 2, kHigh = 3, kCritical = 4 };

std::string_view SeverityName(Severity severity);
// Accepts the lower-case names used in policies and on the command line.
std::optional<Severity> ParseSeverity(std::string_view name);

}  // namespace capwatch

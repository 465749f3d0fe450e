#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace capwatch::kube {

// metav1.MicroTime as the API server writes it: 2026-11-29T13:51:30.123456Z.
std::string FormatMicroTime(std::chrono::system_clock::time_point t);
// RFC 3339 (Time and MicroTime, a Z or a numeric offset, optional fraction).
std::optional<std::chrono::system_clock::time_point> ParseRfc3339(std::string_view s);

}  // namespace capwatch::kube

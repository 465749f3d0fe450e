#pragma once

#include <chrono>
#include <string>

namespace capwatch::kube {

// metav1.MicroTime as the API server writes it: 2026-11-29T13:51:30.123456Z.
std::string FormatMicroTime(std::chrono::system_clock::time_point t);
// Parsing is capwatch::ParseRfc3339 (base/rfc3339.h), one parser for every module.

}  // namespace capwatch::kube

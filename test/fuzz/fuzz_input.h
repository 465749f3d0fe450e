#pragma once

// What every fuzz target shares: the input as text, and logs off (a codec logs each object
// it skips; at thousands of executions a second that is all the output would show).

#include <spdlog/spdlog.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace capwatch::fuzz {

inline std::string_view AsText(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

inline void QuietLogs() { spdlog::set_level(spdlog::level::off); }

}  // namespace capwatch::fuzz
